"""Activation modules."""
from .module import Module
from ..ops import elementwise as E
from ..ops import reduction as R


class ReLU(Module):
    def forward(self, x):
        return E.relu(x)


class Tanh(Module):
    def forward(self, x):
        return E.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return E.sigmoid(x)


class GELU(Module):
    """Exact (erf) GELU, PyTorch's default."""

    def forward(self, x):
        return E.gelu(x)


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return R.softmax(x, self.dim)


class Identity(Module):
    def forward(self, x):
        return x


ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid, "gelu": GELU, "identity": Identity}


def activation(name):
    """An activation module by name: relu, tanh, sigmoid, gelu or identity."""
    try:
        return ACTIVATIONS[str(name).lower()]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: choose one of {sorted(ACTIVATIONS)}") from None
