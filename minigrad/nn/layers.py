"""Small layers: Dropout, LayerNorm, Embedding, Flatten."""
import numpy as np

from .module import Module, new_parameter
from . import init
from ..ops import norm as N
from ..ops.shape import flatten
from ..random import default_generator


class Dropout(Module):
    """Inverted dropout, active in train mode only; seeded by minigrad.manual_seed."""

    def __init__(self, p=0.5, generator=None):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.generator = generator

    def forward(self, x):
        return N.dropout(x, self.p, self.training, self.generator or default_generator())

    def extra_repr(self):
        return f"p={self.p}"


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, device=None, dtype=None):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.eps = eps
        if elementwise_affine:
            self.weight = new_parameter(np.ones(self.normalized_shape), dtype, device)
            self.bias = new_parameter(np.zeros(self.normalized_shape), dtype, device)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return N.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Embedding(Module):
    def __init__(self, num_embeddings, embedding_dim, device=None, dtype=None, generator=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = new_parameter(init.normal((num_embeddings, embedding_dim), generator=generator), dtype, device)

    def forward(self, indices):
        return N.embedding(indices, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Flatten(Module):
    """Flatten axes start_dim..end_dim (default: all but the batch axis)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)
