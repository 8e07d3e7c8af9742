"""Multi-head attention with PyTorch's parameters (packed in_proj_weight (3E, E), out_proj)."""
import numpy as np

from . import init
from .linear import Linear
from .module import Module, new_parameter
from ..ops.attention import multi_head_attention, packed_self_attention
from ..ops.linear import linear
from ..tensor import Tensor


class MultiheadAttention(Module):
    """softmax(Q K^T / sqrt(d)) V over ``num_heads`` heads of size d = embed_dim / num_heads.

    Parameters (PyTorch's names, layouts and init): ``in_proj_weight`` (3E, E) holding the q, k
    and v projections stacked, ``in_proj_bias`` (3E,), and ``out_proj`` a Linear(E, E).

    Factors of ``in_proj_weight`` are per token (P = L). Self-attention (query, key and value
    the same tensor) uses one linear with the packed weight: A = tokens (N, L, E), D (N, L, 3E).
    With distinct inputs each is projected by the whole packed weight and keeps its block (q, k
    or v; three times the projection's work, for the sake of one plain linear op), so each use
    hands out A = its input and D = its block's adjoint zero-padded to 3E; ``capture_factors``
    joins the uses along P (P = Lq + 2 Lk), so that einsum("npo,npi->oi", D, A) still equals the
    gradient.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=True, device=None, dtype=None,
                 generator=None):
        super().__init__()
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, (int, np.integer)) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive integer, got {embed_dim!r}")
        if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1:
            raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        if not 0 <= dropout < 1:
            raise ValueError(f"attention dropout probability must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads = int(embed_dim), int(num_heads)
        self.head_dim = self.embed_dim // self.num_heads
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        self.generator = generator
        e = self.embed_dim
        self.in_proj_weight = new_parameter(init.xavier_uniform((3 * e, e), generator=generator), dtype, device)
        self.register_parameter("in_proj_bias", new_parameter(np.zeros(3 * e), dtype, device) if bias else None)
        self.out_proj = Linear(e, e, bias=bias, device=device, dtype=dtype, generator=generator)
        if bias:  # PyTorch zeroes both biases
            self.out_proj.bias.data = self.out_proj.bias.xp.zeros_like(self.out_proj.bias.data)

    def _check_input(self, x, name):
        if not isinstance(x, Tensor):
            raise TypeError(f"MultiheadAttention {name} must be a minigrad Tensor, got {type(x).__name__}")
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        if x.ndim != 3:
            raise ValueError(f"MultiheadAttention expects 3-D {name} {layout}, got shape {x.shape}")
        if x.shape[2] != self.embed_dim:
            raise ValueError(f"MultiheadAttention {name} must have {self.embed_dim} features (embed_dim), "
                             f"got shape {x.shape}")

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, average_attn_weights=True):
        """Attend ``query`` to ``key``/``value``; returns (output, weights or None) like PyTorch.

        Shapes with batch_first: query (N, Lq, E), key and value (N, Lk, E), key_padding_mask
        bool (N, Lk) with True = ignore that key. Output (N, Lq, E). Weights (after dropout, as
        PyTorch returns them): (N, Lq, Lk) averaged over heads, or (N, H, Lq, Lk) with
        ``average_attn_weights=False``; None unless ``need_weights``.
        """
        for x, name in ((query, "query"), (key, "key"), (value, "value")):
            self._check_input(x, name)
        self_attention = query is key and key is value
        if not self.batch_first:
            query = query.transpose(1, 0, 2)
            key = query if self_attention else key.transpose(1, 0, 2)
            value = query if self_attention else value.transpose(1, 0, 2)
        n, lk = key.shape[0], key.shape[1]
        if query.shape[0] != n or value.shape[0] != n:
            raise ValueError(f"query, key and value must share the batch size, got shapes "
                             f"{query.shape}, {key.shape}, {value.shape}")
        if value.shape[1] != lk:
            raise ValueError(f"key and value must have the same length, got shapes {key.shape} and {value.shape}")
        options = dict(key_padding_mask=key_padding_mask, dropout_p=self.dropout, training=self.training,
                       need_weights=need_weights, generator=self.generator)
        w, b, e = self.in_proj_weight, self.in_proj_bias, self.embed_dim
        if self_attention:
            result = packed_self_attention(linear(query, w, b), self.num_heads, **options)
        else:
            # block j of the packed projection of each input: its adjoint is D zero-padded to 3E
            q, k, v = (linear(x, w, b)[..., j * e:(j + 1) * e] for j, x in enumerate((query, key, value)))
            result = multi_head_attention(q, k, v, self.num_heads, **options)
        context, weights = result if need_weights else (result, None)
        out = self.out_proj(context)
        if not self.batch_first:
            out = out.transpose(1, 0, 2)
        if weights is not None and average_attn_weights:
            weights = weights.mean(axis=1)
        return out, weights

    def extra_repr(self):
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, "
                f"bias={self.in_proj_bias is not None}, batch_first={self.batch_first}")
