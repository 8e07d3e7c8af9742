"""LayerNorm, dropout and embedding lookup."""
import numpy as np

from ._util import result, scatter_add
from .. import backend


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing ``normalized_shape`` axes, then scale and shift (fused adjoint)."""
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or x.shape[-k:] != normalized_shape:
        raise ValueError(f"layer_norm over {normalized_shape} needs input ending in those sizes, got {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != normalized_shape:
            raise ValueError(f"layer_norm {name} must have shape {normalized_shape}, got {p.shape}")
    xp = x.xp
    xd = x.data
    axes = tuple(range(xd.ndim - k, xd.ndim))
    mu = xd.mean(axis=axes, keepdims=True)
    xc = xd - mu
    var = (xc * xc).mean(axis=axes, keepdims=True)
    rstd = 1 / xp.sqrt(var + xd.dtype.type(eps))
    xhat = xc * rstd
    out = xhat
    wd = weight.data if weight is not None else None
    if weight is not None:
        out = out * wd
    if bias is not None:
        out = out + bias.data
    lead = tuple(range(xd.ndim - k))
    parents = tuple(t for t in (x, weight, bias) if t is not None)

    def backward(g):
        gx = gw = gb = None
        gxhat = g * wd if wd is not None else g
        if x.requires_grad:
            mean_g = gxhat.mean(axis=axes, keepdims=True)
            mean_gx = (gxhat * xhat).mean(axis=axes, keepdims=True)
            gx = rstd * (gxhat - mean_g - xhat * mean_gx)
        if weight is not None and weight.requires_grad:
            gw = (g * xhat).sum(axis=lead)
        if bias is not None and bias.requires_grad:
            gb = g.sum(axis=lead)
        grads = [gx]
        if weight is not None:
            grads.append(gw)
        if bias is not None:
            grads.append(gb)
        return tuple(grads)

    return result(out, parents, backward)


def dropout(x, p, training, generator):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted dropout).

    The mask is drawn on the host from ``generator`` (reproducible under ``manual_seed``
    on every backend) and moved to the tensor's device.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    keep = generator.random(x.shape, dtype=np.float32) >= p
    mask = backend.to_device(keep.astype(x.dtype) * x.dtype.type(1 / (1 - p)), x.device)
    return result(x.data * mask, (x,), lambda g: (g * mask,))


def embedding(indices, weight):
    """Rows of ``weight`` (num, dim) picked by integer ``indices`` (any shape)."""
    raw = indices.data if getattr(indices, "_is_minigrad_tensor", False) else indices
    idx = backend.to_device(raw, weight.device) if hasattr(raw, "shape") else weight.xp.asarray(raw)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got dtype {idx.dtype}")
    num = weight.shape[0]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= num):
        raise IndexError(f"embedding indices must lie in [0, {num}), "
                         f"got values in [{int(idx.min())}, {int(idx.max())}]")
    wd = weight.data
    xp = weight.xp

    def backward(g):
        full = xp.zeros_like(wd)
        scatter_add(full, idx.reshape(-1), g.reshape(-1, wd.shape[1]))  # repeated tokens add up
        return (full,)

    return result(wd[idx], (weight,), backward)
