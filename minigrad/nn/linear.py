"""Linear layer: y = x W^T + b on (N, in) or (N, ..., in) inputs."""
from . import init
from .module import Module, new_parameter
from ..ops.linear import linear


class Linear(Module):
    """Affine layer with PyTorch's layout (weight (out, in)) and default init."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None, generator=None):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear sizes must be positive, got in={in_features}, out={out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        shape = (self.out_features, self.in_features)
        self.weight = new_parameter(init.kaiming_uniform(shape, generator=generator), dtype, device)
        self.register_parameter(
            "bias", new_parameter(init.bias_uniform((self.out_features,), self.in_features, generator), dtype, device)
            if bias else None)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
