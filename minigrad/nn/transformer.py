"""Transformer encoder layers (post-LN as in BERT, or pre-LN) with PyTorch's parameter names."""
import copy

import numpy as np

from .activation import activation as activation_by_name
from .attention import MultiheadAttention
from .layers import Dropout, LayerNorm
from .linear import Linear
from .module import Module, ModuleList
from ..tensor import Tensor


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual connection and LayerNorm.

    Post-LN (``norm_first=False``, BERT):
        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))
    Pre-LN (``norm_first=True``): x = x + dropout1(self_attn(norm1(x))), and likewise for the
    feed-forward block. Submodules are named like PyTorch's (self_attn, linear1, linear2, norm1,
    norm2), so a PyTorch state_dict loads as is. ``activation``: "gelu", "relu" (or any name
    ``nn.activation`` knows) or a callable on tensors.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="gelu", layer_norm_eps=1e-5,
                 batch_first=True, norm_first=False, bias=True, device=None, dtype=None, generator=None):
        super().__init__()
        if isinstance(dim_feedforward, bool) or not isinstance(dim_feedforward, (int, np.integer)) \
                or dim_feedforward < 1:
            raise ValueError(f"dim_feedforward must be a positive integer, got {dim_feedforward!r}")
        factory = dict(device=device, dtype=dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True,
                                            generator=generator, **factory)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, generator=generator, **factory)
        self.dropout = Dropout(dropout, generator=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, generator=generator, **factory)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, **factory)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)
        if isinstance(activation, str):
            self.activation = activation_by_name(activation)
        elif callable(activation):
            self.activation = activation
        else:
            raise TypeError(f"activation must be a name such as 'gelu' or 'relu', or a callable, got {activation!r}")
        self.d_model, self.batch_first, self.norm_first = int(d_model), bool(batch_first), bool(norm_first)

    def _self_attention_block(self, x, key_padding_mask):
        out, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False)
        return self.dropout1(out)

    def _feed_forward_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, *, src_key_padding_mask=None):
        """src (N, L, d_model) (or (L, N, d_model) without batch_first); mask bool (N, L), True = padding."""
        if not isinstance(src, Tensor):
            raise TypeError(f"TransformerEncoderLayer expects a minigrad Tensor, got {type(src).__name__}")
        if src.ndim != 3 or src.shape[2] != self.d_model:
            layout = "(N, L, d_model)" if self.batch_first else "(L, N, d_model)"
            raise ValueError(f"TransformerEncoderLayer expects input {layout} with d_model={self.d_model}, "
                             f"got shape {src.shape}")
        x = src if self.batch_first else src.transpose(1, 0, 2)
        if self.norm_first:
            x = x + self._self_attention_block(self.norm1(x), src_key_padding_mask)
            x = x + self._feed_forward_block(self.norm2(x))
        else:
            x = self.norm1(x + self._self_attention_block(x, src_key_padding_mask))
            x = self.norm2(x + self._feed_forward_block(x))
        return x if self.batch_first else x.transpose(1, 0, 2)

    def extra_repr(self):
        return f"d_model={self.d_model}, norm_first={self.norm_first}, batch_first={self.batch_first}"


class TransformerEncoder(Module):
    """A stack of ``num_layers`` encoder layers named layers.0, layers.1, ... (PyTorch's names).

    ``encoder_layer``: a layer, deep-copied ``num_layers`` times as PyTorch does (all layers
    start equal), or a zero-argument factory called once per layer (independent inits).
    ``norm``: optional module applied to the output (PyTorch's ``norm``).
    """

    def __init__(self, encoder_layer, num_layers, norm=None):
        super().__init__()
        if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if isinstance(encoder_layer, Module):
            # share (not copy) random generators, so that copies draw different dropout masks
            shared = {id(v): v for m in encoder_layer.modules() for v in vars(m).values()
                      if isinstance(v, np.random.Generator)}
            layers = [copy.deepcopy(encoder_layer, dict(shared)) for _ in range(num_layers)]
        elif callable(encoder_layer):
            layers = [encoder_layer() for _ in range(num_layers)]
            bad = [type(m).__name__ for m in layers if not isinstance(m, Module)]
            if bad:
                raise TypeError(f"the encoder layer factory must return Modules, got {bad}")
        else:
            raise TypeError(f"encoder_layer must be a Module or a factory of Modules, "
                            f"got {type(encoder_layer).__name__}")
        self.layers = ModuleList(layers)
        self.num_layers = int(num_layers)
        self.norm = norm

    def forward(self, src, *, src_key_padding_mask=None):
        x = src
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=src_key_padding_mask)
        return self.norm(x) if self.norm is not None else x
