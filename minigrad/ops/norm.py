"""LayerNorm, dropout and embedding lookup."""
import math

import numpy as np

from ._util import result, scatter_add
from .. import backend
from ..tensor import Tensor
from ..kernels.normalization import layer_norm_rows, layer_norm_rows_backward


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalize over the trailing ``normalized_shape`` axes, then scale and shift:
    y = xhat w + b with xhat = (x - mean) / sqrt(var + eps) per row of width prod(normalized_shape).

    Backward (Ba et al. 2016), per row with gxhat = g w: gx = (gxhat - mean(gxhat)
    - xhat mean(gxhat xhat)) / sqrt(var + eps); gw = sum g xhat; gb = sum g.
    """
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or x.shape[-k:] != normalized_shape:
        raise ValueError(f"layer_norm over {normalized_shape} needs input ending in those sizes, got {x.shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != normalized_shape:
            raise ValueError(f"layer_norm {name} must have shape {normalized_shape}, got {p.shape}")
    width = math.prod(normalized_shape)
    w = weight.data.reshape(width) if weight is not None else None
    b = bias.data.reshape(width) if bias is not None else None
    out, xhat, rstd = layer_norm_rows(x.data.reshape(-1, width), w, b, eps)
    parents = tuple(t for t in (x, weight, bias) if t is not None)

    def backward(g):
        gx, gw, gb = layer_norm_rows_backward(g.reshape(-1, width), xhat, rstd, w, x.requires_grad,
                                              weight is not None and weight.requires_grad,
                                              bias is not None and bias.requires_grad)
        grads = [gx.reshape(x.shape) if gx is not None else None]
        for p, gp in ((weight, gw), (bias, gb)):
            if p is not None:
                grads.append(gp.reshape(normalized_shape) if gp is not None else None)
        return tuple(grads)

    return result(out.reshape(x.shape), parents, backward)


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
    raw = indices.data if isinstance(indices, Tensor) else indices
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
