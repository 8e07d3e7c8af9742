"""LayerNorm, dropout and embedding lookup."""
import math

import numpy as np

from ._util import result, scatter_add
from .. import backend
from ..kernels import threads

# LayerNorm on the CPU works on blocks of rows of at most about this many elements (they stay in
# cache across the passes; much smaller blocks cost more in per-call overhead than they save),
# as many blocks as a multiple of minigrad's threads, which split them.
_LN_BLOCK_ELEMENTS = 1 << 16


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
    if xp is np:
        return _layer_norm_cpu(x, normalized_shape, weight, bias, eps)
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


def _layer_norm_cpu(x, normalized_shape, weight, bias, eps):
    """layer_norm on NumPy data: row means as BLAS matrix-vector products, blocks of rows over threads."""
    xd = x.data
    width = math.prod(normalized_shape)
    x2 = np.ascontiguousarray(xd).reshape(-1, width)
    rows, dt = x2.shape[0], x2.dtype
    wd = weight.data.reshape(width) if weight is not None else None
    bd = bias.data.reshape(width) if bias is not None else None
    inv_width = np.full(width, 1.0 / width, dtype=dt)
    eps = dt.type(eps)
    parts = threads.parts_for(x2.nbytes)
    count = -(-x2.size // _LN_BLOCK_ELEMENTS)
    count = max(1, min(rows, -(-count // parts) * parts))
    step = -(-rows // count)
    blocks = [slice(a, min(rows, a + step)) for a in range(0, rows, step)]
    xhat = np.empty_like(x2)
    rstd = np.empty((rows, 1), dt)
    out = np.empty_like(x2)

    def forward(sl):
        xs, xh = x2[sl], xhat[sl]
        np.subtract(xs, (xs @ inv_width)[:, None], out=xh)          # x - mean
        var = np.square(xh, out=out[sl]) @ inv_width                   # out[sl] as scratch
        var += eps
        np.sqrt(var, out=var)
        np.divide(1, var[:, None], out=rstd[sl])
        xh *= rstd[sl]
        if wd is not None:
            np.multiply(xh, wd, out=out[sl])
        else:
            out[sl] = xh
        if bd is not None:
            out[sl] += bd

    threads.run_blocks(forward, blocks, x2.nbytes)
    parents = tuple(t for t in (x, weight, bias) if t is not None)

    def backward(g):
        g2 = np.ascontiguousarray(g, dtype=dt).reshape(-1, width)
        want_x = x.requires_grad
        want_w = weight is not None and weight.requires_grad
        want_b = bias is not None and bias.requires_grad
        gx = np.empty_like(x2) if want_x else None
        # per-block column sums of g * xhat and g (for the weight and bias), added up at the end
        gw_parts = np.zeros((len(blocks), width), dt) if want_w else None
        gb_parts = np.zeros((len(blocks), width), dt) if want_b else None
        ones = np.ones(step, dt)

        def work(i):
            sl = blocks[i]
            gs, xh = g2[sl], xhat[sl]
            ones_rows = ones[:gs.shape[0]]
            if want_b:
                gb_parts[i] = ones_rows @ gs
            if want_w:
                gw_parts[i] = ones_rows @ (gs * xh)
            if want_x:
                gxh = gs * wd if wd is not None else gs.copy()
                mean_g = gxh @ inv_width
                mean_gx = np.multiply(gxh, xh, out=gx[sl]) @ inv_width    # gx[sl] as scratch
                # rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat))
                gxh -= mean_g[:, None]
                np.multiply(xh, mean_gx[:, None], out=gx[sl])
                np.subtract(gxh, gx[sl], out=gx[sl])
                gx[sl] *= rstd[sl]

        threads.run_blocks(work, range(len(blocks)), x2.nbytes)
        grads = [gx.reshape(xd.shape) if want_x else None]
        if weight is not None:
            grads.append(gw_parts.sum(axis=0).reshape(normalized_shape) if want_w else None)
        if bias is not None:
            grads.append(gb_parts.sum(axis=0).reshape(normalized_shape) if want_b else None)
        return tuple(grads)

    return result(out.reshape(xd.shape), parents, backward)


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
