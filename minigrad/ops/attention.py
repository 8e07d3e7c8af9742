"""Scaled dot-product attention, multi-head attention and packed self-attention, one op each.

Over (N, heads, L, d) arrays, forward and backward (``attend``):

    S  = q k^T / sqrt(d)   (-inf on masked keys)     dP~ = g v^T,       dv = P~^T g
    P  = softmax(S)        (over the keys)           dP  = dP~ * M
    P~ = P * M             (M: dropout keep-mask     dS  = P * (dP - rowsum(dP * P))   (softmax backward)
    out = P~ v              scaled by 1 / (1 - p))   dq  = dS k / sqrt(d),   dk = dS^T q / sqrt(d)

(no L x L tensor in the graph: the op is one node). Entry points:

- ``scaled_dot_product_attention(q, k, v)``: q (N, H, Lq, d), k (N, H, Lk, d), v (N, H, Lk, dv);
- ``multi_head_attention(q, k, v, num_heads)``: projected (N, L, E) tensors, heads split off the
  feature axis (E = heads * d, head j holds features j*d:(j+1)*d as in PyTorch) and merged back;
- ``packed_self_attention(qkv, num_heads)``: the (N, L, 3E) output of one packed in-projection.

The fast versions of ``attend`` and ``merge_heads`` are in minigrad/kernels/attention.py (no
normalized P formed, scores in cache-sized chunks over threads, views instead of copies).
"""
import math

import numpy as np

from ._util import result
from .. import backend
from ..backend import get_array_module
from ..kernels import attention as fast_attention
from ..kernels.dispatch import kernel
from ..random import default_generator
from ..tensor import Tensor


# ------------------------------------------------------------------------------ the maths
@kernel
def attend(q, k, v, keep=None, drop=None, wanted=(True, True, True)):
    """Attention of q (N, H, Lq, d) over k (N, H, Lk, d) and v (N, H, Lk, dv).

    ``keep``: (N, Lk) 1/0 weights of the keys, or None; ``drop``: (N, H, Lq, Lk) dropout
    multipliers (0 or 1 / (1 - p)), or None. Returns ``(out, weights, backward)``: out
    (N, H, Lq, dv); ``weights()`` the weights P~ as applied to v; ``backward(g_out=None,
    g_weights=None)`` -> (dq, dk, dv) from the adjoints of out and/or of the weights
    (dv None without g_out). ``wanted`` names the adjoints the caller needs (a fast version
    may skip the others and return None for them).
    """
    xp = get_array_module(q)
    scale = 1 / math.sqrt(q.shape[-1])
    s = (q @ k.swapaxes(-1, -2)) * scale                     # S = q k^T / sqrt(d)
    if keep is not None:
        s = xp.where(keep[:, None, None, :] > 0, s, -xp.inf)
    e = xp.exp(s - s.max(axis=-1, keepdims=True))           # softmax; the row max keeps exp finite
    p = e / e.sum(axis=-1, keepdims=True)
    p_kept = p if drop is None else p * drop                 # P~ = P * M
    out = p_kept @ v

    def backward(g_out=None, g_weights=None):
        dp_kept, dv = g_weights, None                        # dP~
        if g_out is not None:
            dp_out = g_out @ v.swapaxes(-1, -2)
            dp_kept = dp_out if dp_kept is None else dp_kept + dp_out
            dv = p_kept.swapaxes(-1, -2) @ g_out
        dp = dp_kept if drop is None else dp_kept * drop
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))  # softmax backward
        return (ds @ k) * scale, (ds.swapaxes(-1, -2) @ q) * scale, dv

    return out, (lambda: p_kept), backward


@kernel
def merge_heads(*heads):
    """(N, H, L, d) arrays -> one (N, L, H * d) array each, joined along the features."""
    xp = get_array_module(heads[0])
    n, _, length, _ = heads[0].shape
    return xp.concatenate([a.transpose(0, 2, 1, 3).reshape(n, length, -1) for a in heads], axis=-1)


attend.fast(fast_attention.attend)
merge_heads.fast(fast_attention.merge_heads)


def split_heads(a, num_heads):
    """(N, L, H * d) array -> (N, H, L, d) view (head j holds features j*d:(j+1)*d, as in PyTorch)."""
    n, length, e = a.shape
    return a.reshape(n, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)


# ------------------------------------------------------------------------------------ the ops
def scaled_dot_product_attention(q, k, v, key_padding_mask=None, dropout_p=0.0, training=True,
                                 need_weights=False, generator=None):
    """softmax(q k^T / sqrt(d)) v with q (N, H, Lq, d), k (N, H, Lk, d), v (N, H, Lk, dv).

    ``key_padding_mask``: bool (N, Lk), True = ignore that key (PyTorch's convention).
    ``dropout_p``: dropout on the attention weights, applied only when ``training``.
    Returns the output (N, H, Lq, dv), or (output, weights (N, H, Lq, Lk)) with ``need_weights``.
    """
    _check_same((q, k, v), ("q", "k", "v"))
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        if t.ndim != 4:
            raise ValueError(f"scaled_dot_product_attention expects 4-D (N, heads, L, d) inputs, "
                             f"got {name} of shape {t.shape}")
    n, h, lq, d = q.shape
    if k.shape[:2] != (n, h) or k.shape[3] != d:
        raise ValueError(f"k must have shape (N, heads, Lk, d) = ({n}, {h}, Lk, {d}) to match q {q.shape}, "
                         f"got {k.shape}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v must have shape (N, heads, Lk, dv) with (N, heads, Lk) = {k.shape[:3]} like k, "
                         f"got {v.shape}")
    keep, drop = _prepare(q, n, h, lq, k.shape[2], key_padding_mask, dropout_p, training, generator)
    attention = attend(q.data, k.data, v.data, keep, drop, _wanted(q, k, v))
    return _attention_result((q, k, v), attention, need_weights, lambda a: a, lambda g: g,
                             lambda dq, dk, dv: (dq, dk, dv))


def multi_head_attention(q, k, v, num_heads, key_padding_mask=None, dropout_p=0.0, training=True,
                         need_weights=False, generator=None):
    """Attention of projected q (N, Lq, E), k (N, Lk, E), v (N, Lk, Ev) split into ``num_heads`` heads.

    Returns the heads merged back (N, Lq, Ev), or with ``need_weights`` also the per-head
    weights (N, H, Lq, Lk).
    """
    _check_same((q, k, v), ("q", "k", "v"))
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        if t.ndim != 3:
            raise ValueError(f"multi_head_attention expects 3-D (N, L, E) inputs, got {name} of shape {t.shape}")
    n, lq, e = q.shape
    if k.shape[0] != n or k.shape[2] != e:
        raise ValueError(f"k must have shape (N, Lk, E) = ({n}, Lk, {e}) to match q {q.shape}, got {k.shape}")
    if v.shape[:2] != k.shape[:2]:
        raise ValueError(f"v must have shape (N, Lk, Ev) with (N, Lk) = {k.shape[:2]} like k, got {v.shape}")
    _check_heads(e, num_heads, "q/k feature")
    _check_heads(v.shape[2], num_heads, "v feature")
    keep, drop = _prepare(q, n, num_heads, lq, k.shape[1], key_padding_mask, dropout_p, training, generator)
    attention = attend(*(split_heads(t.data, num_heads) for t in (q, k, v)), keep, drop, _wanted(q, k, v))

    def merged(*adjoints):
        return tuple(None if a is None else merge_heads(a) for a in adjoints)

    return _attention_result((q, k, v), attention, need_weights, merge_heads,
                             lambda g: split_heads(g, num_heads), merged)


def packed_self_attention(qkv, num_heads, key_padding_mask=None, dropout_p=0.0, training=True,
                          need_weights=False, generator=None):
    """Self-attention on the output of a packed in-projection: qkv (N, L, 3E) = [q, k, v] -> (N, L, E).

    q, k and v are views of qkv; its adjoint is [dq, dk, dv] merged back to (N, L, 3E).
    ``need_weights`` adds the weights (N, H, L, L).
    """
    _check_same((qkv,), ("qkv",))
    if qkv.ndim != 3 or qkv.shape[2] % 3:
        raise ValueError(f"packed_self_attention expects qkv of shape (N, L, 3E), got {qkv.shape}")
    n, length, e3 = qkv.shape
    _check_heads(e3 // 3, num_heads, "embedding")
    keep, drop = _prepare(qkv, n, num_heads, length, length, key_padding_mask, dropout_p, training, generator)
    q, k, v = (split_heads(block, num_heads) for block in qkv.data.reshape(n, length, 3, -1).transpose(2, 0, 1, 3))
    attention = attend(q, k, v, keep, drop)

    def merged(dq, dk, dv):
        return (merge_heads(dq, dk, qkv.xp.zeros_like(v) if dv is None else dv),)  # weights do not depend on v

    return _attention_result((qkv,), attention, need_weights, merge_heads,
                             lambda g: split_heads(g, num_heads), merged)


def _attention_result(parents, attention, need_weights, merge, split, parent_adjoints):
    """The output tensor (and with ``need_weights`` the weights tensor) of one ``attend`` call.

    ``merge`` lays the (N, H, Lq, dv) output out as the op returns it and ``split`` turns the
    output's adjoint back into heads; ``parent_adjoints(dq, dk, dv)`` maps the head adjoints
    to one adjoint per parent.
    """
    out, weights, backward = attention
    out_t = result(merge(out), parents, lambda g: parent_adjoints(*backward(g_out=split(g))))
    if not need_weights:
        return out_t
    return out_t, result(weights(), parents, lambda gw: parent_adjoints(*backward(g_weights=gw)))


# --------------------------------------------------------------------------- argument checks
def _wanted(*tensors):
    return tuple(t.requires_grad for t in tensors)


def _prepare(q_like, n, h, lq, lk, key_padding_mask, dropout_p, training, generator):
    """Validated keep weights of the keys and dropout multipliers (each None when not needed)."""
    if not 0 <= dropout_p < 1:
        raise ValueError(f"attention dropout probability must be in [0, 1), got {dropout_p}")
    keep = _keep_weights(key_padding_mask, n, lk, q_like.xp, q_like.dtype, q_like.device)
    drop = None
    if training and dropout_p > 0:
        drop = _dropout_multipliers(generator, dropout_p, (n, h, lq, lk), q_like.dtype, q_like.device)
    return keep, drop


def _keep_weights(key_padding_mask, n, lk, xp, dtype, device):
    """Validate a bool (N, Lk) key padding mask (True = ignore); 1/0 keep weights or None."""
    if key_padding_mask is None:
        return None
    mask = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask
    if not hasattr(mask, "dtype"):
        mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"key_padding_mask must be a bool array (True = ignore that key, as in PyTorch), "
                        f"got dtype {mask.dtype}")
    if tuple(mask.shape) != (n, lk):
        raise ValueError(f"key_padding_mask must have shape (batch, key length) = {(n, lk)}, "
                         f"got {tuple(mask.shape)}")
    mask = backend.to_device(mask, device)
    if not mask.any():
        return None
    full = mask.all(axis=1)
    if full.any():
        rows = [int(i) for i in backend.to_numpy(xp.nonzero(full)[0])[:10]]
        raise ValueError(f"key_padding_mask ignores every key of sample(s) {rows}: attention over no key "
                         f"is undefined (PyTorch returns NaN there); leave at least one key per sample")
    return (~mask).astype(dtype)


def _check_same(tensors, names):
    first = tensors[0]
    for t, name in zip(tensors, names):
        if not isinstance(t, Tensor):
            raise TypeError(f"attention input {name} must be a minigrad Tensor, got {type(t).__name__}")
        if t.dtype.kind != "f":
            raise TypeError(f"attention input {name} must be float, got dtype {t.dtype}")
        if t.dtype != first.dtype:
            raise TypeError(f"attention inputs must share one dtype, got {[x.dtype for x in tensors]} "
                            f"for {names}")
        if t.device != first.device:
            raise ValueError(f"attention inputs are on different devices {[x.device for x in tensors]}")


def _dropout_multipliers(generator, p, shape, dtype, device):
    """Inverted-dropout multipliers (0 or 1/(1-p)) drawn from ``generator`` on the host."""
    gen = generator or default_generator()
    draw_dtype = np.float32 if np.dtype(dtype) == np.float32 else np.float64
    keep = gen.random(shape, dtype=draw_dtype) >= p
    return backend.to_device((keep * (1.0 / (1.0 - p))).astype(dtype), device)


def _check_heads(e, num_heads, what):
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
    if e % num_heads:
        raise ValueError(f"{what} size {e} is not divisible by num_heads={num_heads}")
