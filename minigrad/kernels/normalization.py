"""Layer normalization over the rows of a matrix, forward and backward.

Reference: the textbook formulas. Fast (NumPy): row means as BLAS matrix-vector
products, every pass over a block of rows that stays in cache, the blocks split over
minigrad's threads (each on one BLAS thread), no temporaries beyond the outputs.
"""
import numpy as np

from . import threads
from .dispatch import kernel, numpy_arrays
from ..backend import get_array_module

# blocks of rows of at most about this many elements (they stay in cache across the passes;
# much smaller blocks cost more in per-call overhead than they save), as many blocks as a
# multiple of minigrad's threads, which split them
_BLOCK_ELEMENTS = 1 << 16


@kernel
def layer_norm_rows(x2, w, b, eps):
    """Each row of x2 (rows, width) normalized, xhat = (x - mean) / sqrt(var + eps), then
    scaled and shifted: returns (xhat w + b, xhat, 1 / sqrt(var + eps) as (rows, 1)). w, b: (width,) or None."""
    xp = get_array_module(x2)
    centered = x2 - x2.mean(axis=1, keepdims=True)
    rstd = 1 / xp.sqrt((centered * centered).mean(axis=1, keepdims=True) + x2.dtype.type(eps))
    xhat = centered * rstd
    out = xhat if w is None else xhat * w
    return (out if b is None else out + b), xhat, rstd


@kernel
def layer_norm_rows_backward(g2, xhat, rstd, w, want_x, want_w, want_b):
    """The adjoints of :func:`layer_norm_rows` for the output adjoint g2: with gxhat = g2 w,
    gx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat)) (means over each row),
    gw = sum over rows of g2 xhat, gb = sum over rows of g2 (None where not wanted)."""
    gx = gw = gb = None
    if want_x:
        gxhat = g2 if w is None else g2 * w
        gx = rstd * (gxhat - gxhat.mean(axis=1, keepdims=True) - xhat * (gxhat * xhat).mean(axis=1, keepdims=True))
    if want_w:
        gw = (g2 * xhat).sum(axis=0)
    if want_b:
        gb = g2.sum(axis=0)
    return gx, gw, gb


def _row_blocks(x2):
    rows = x2.shape[0]
    parts = threads.parts_for(x2.nbytes)
    count = -(-x2.size // _BLOCK_ELEMENTS)
    count = max(1, min(rows, -(-count // parts) * parts))
    step = -(-rows // count)
    return [slice(a, min(rows, a + step)) for a in range(0, rows, step)], step


@layer_norm_rows.fast
def _layer_norm_rows_fast(x2, w, b, eps):
    if not numpy_arrays(x2, w, b):
        return layer_norm_rows.reference(x2, w, b, eps)
    x2 = np.ascontiguousarray(x2)
    rows, width = x2.shape
    dt = x2.dtype
    inv_width = np.full(width, 1.0 / width, dtype=dt)
    eps = dt.type(eps)
    blocks, _ = _row_blocks(x2)
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
        if w is not None:
            np.multiply(xh, w, out=out[sl])
        else:
            out[sl] = xh
        if b is not None:
            out[sl] += b

    threads.run_blocks(forward, blocks, x2.nbytes)
    return out, xhat, rstd


@layer_norm_rows_backward.fast
def _layer_norm_rows_backward_fast(g2, xhat, rstd, w, want_x, want_w, want_b):
    if not numpy_arrays(g2, xhat, w):
        return layer_norm_rows_backward.reference(g2, xhat, rstd, w, want_x, want_w, want_b)
    dt = xhat.dtype
    g2 = np.ascontiguousarray(g2, dtype=dt)
    width = xhat.shape[1]
    inv_width = np.full(width, 1.0 / width, dtype=dt)
    blocks, step = _row_blocks(xhat)
    gx = np.empty_like(xhat) if want_x else None
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
            gxh = gs * w if w is not None else gs.copy()
            mean_g = gxh @ inv_width
            mean_gx = np.multiply(gxh, xh, out=gx[sl]) @ inv_width    # gx[sl] as scratch
            # rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat))
            gxh -= mean_g[:, None]
            np.multiply(xh, mean_gx[:, None], out=gx[sl])
            np.subtract(gxh, gx[sl], out=gx[sl])
            gx[sl] *= rstd[sl]

    threads.run_blocks(work, range(len(blocks)), xhat.nbytes)
    return (gx, gw_parts.sum(axis=0) if want_w else None, gb_parts.sum(axis=0) if want_b else None)
