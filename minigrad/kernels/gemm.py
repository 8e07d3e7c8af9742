"""Matrix products with a bias: y = x W^T + b, and its parameter gradients D^T A and sum D.

Reference: the one-line maths. Fast (NumPy and CuPy arrays):
- inputs seen channel-major (x2.T C-contiguous, as :mod:`.unfold` makes its patches) are
  multiplied as W x2^T, so the output is channel-major too (conv's (C, N, *S) layout);
  when x2 sits on a buffer with a row of ones below it (:func:`empty_with_ones_row`), the
  bias rides along in the GEMM, [W, b] [x2^T; 1], and in backward [x2^T; 1] D gives
  [grad W^T; grad b] in one product, summed over long inner dimensions in cache-sized blocks;
- row-major NumPy inputs: the bias folded into the GEMM for narrow inputs and wide outputs,
  else added over threads into the GEMM's fresh output; bias gradients as one BLAS product
  with a ones vector.
"""
import weakref

import numpy as np

from . import threads
from ..backend import get_array_module
from .dispatch import kernel, numpy_arrays
from .elementwise import add_into


@kernel
def affine(x2, w, b=None):
    """x2 (n, in) @ w (out, in)^T + b (out,)."""
    y = x2 @ w.T
    return y if b is None else y + b


@kernel
def affine_gradients(x2, g2, with_bias):
    """The gradients of ``affine(x2, w, b)`` for its output adjoint g2 (n, out):
    grad w = g2^T x2 (out, in) (the paper's eq. 1) and grad b = the column sums of g2 (None without bias)."""
    return g2.T @ x2, (g2.sum(0) if with_bias else None)


@kernel
def column_sums(g2):
    """Sum of the rows of g2 (n, k): the (k,) gradient of a bias added to every row."""
    return g2.sum(0)


# ------------------------------------------------------------------ fast
def _is_channel_major(x2):
    return x2.ndim == 2 and x2.T.flags.c_contiguous


# buffers (rows + 1, cols) whose last row is ones, by id (weakly held: an entry goes with its buffer)
_with_ones_row = weakref.WeakValueDictionary()


def empty_with_ones_row(rows, cols, dtype, xp=np):
    """An uninitialized (rows, cols) C-contiguous matrix with a row of ones below it in memory,
    for :func:`affine` and :func:`affine_gradients` to fold a bias into their GEMMs."""
    if xp is not np:  # the GPU runs the bias as its own pass
        return xp.empty((rows, cols), dtype=dtype)
    buf = np.empty((rows + 1, cols), dtype=dtype)
    buf[rows] = 1
    _with_ones_row[id(buf)] = buf
    return buf[:rows]


def _augmented(m):
    """[m; 1] when the C-contiguous matrix m is the top of a buffer from :func:`empty_with_ones_row`, else None."""
    base = getattr(m, "base", None)
    if base is None or _with_ones_row.get(id(base)) is not base:
        return None
    starts_together = m.__array_interface__["data"][0] == base.__array_interface__["data"][0]
    if base.shape != (m.shape[0] + 1, m.shape[1]) or not m.flags.c_contiguous or not starts_together:
        return None
    return base


@affine.fast
def _affine_fast(x2, w, b=None):
    if _is_channel_major(x2) and x2.dtype.kind == "f":
        m = x2.T                                              # (in, n), C-contiguous
        aug = _augmented(m) if b is not None else None
        if aug is not None:
            return (get_array_module(m).concatenate([w, b[:, None]], axis=1) @ aug).T
        y = w @ m                                             # (out, n): channel-major output
        if b is not None:
            add_into(y, b[:, None])
        return y.T
    if b is None or not numpy_arrays(x2, w, b, floats=True):
        return affine.reference(x2, w, b)
    fan_out, fan_in = w.shape
    if fan_in < fan_out:
        return _affine_augmented(x2, w, b)
    return add_into(x2 @ w.T, b)                       # into the fresh GEMM output, no extra array


def _affine_augmented(x2, w, b):
    """x2 @ w.T + b as one GEMM, [x2, 1] @ [w.T; b]: for narrow inputs and wide outputs, copying
    x2 with a column of ones costs less than a separate pass adding b over the output."""
    n, fan_in = x2.shape
    x_aug = np.empty((n, fan_in + 1), dtype=np.result_type(x2, w))
    x_aug[:, :fan_in] = x2
    x_aug[:, fan_in] = 1
    w_aug = np.empty((fan_in + 1, w.shape[0]), dtype=x_aug.dtype)
    w_aug[:fan_in] = w.T
    w_aug[fan_in] = b
    return x_aug @ w_aug


@affine_gradients.fast
def _affine_gradients_fast(x2, g2, with_bias):
    if _is_channel_major(x2) and x2.dtype.kind == "f":
        m = x2.T                                              # (in, n)
        aug = _augmented(m) if with_bias else None
        # (in [+ 1], out); this operand order is the faster GEMM
        prod = matmul_long_inner(m if aug is None else aug, g2)
        fan_in = m.shape[0]
        if aug is not None:
            return prod[:fan_in].T, prod[fan_in].copy()
        return prod.T, (column_sums(g2) if with_bias else None)
    return g2.T @ x2, (column_sums(g2) if with_bias else None)


@column_sums.fast
def _column_sums_fast(g2):
    if not numpy_arrays(g2, floats=True) or g2.ndim != 2:
        return column_sums.reference(g2)
    # one BLAS product: NumPy's axis-0 sum is slower for few columns
    return g2.T @ np.ones(g2.shape[0], dtype=g2.dtype)


@kernel
def matmul_long_inner(a, b):
    """a @ b for 2-D a (m, k), b (k, n) with a long inner dimension k and a small result
    (e.g. a weight gradient summed over every position)."""
    return a @ b


@matmul_long_inner.fast
def _matmul_long_inner_fast(a, b):
    if threads.pool_threads() == 1:
        # one BLAS call: with the pool standing down, splitting k only adds the partial sums
        # (measured on the CNN's weight gradients, 1 and 2 threads: 10-15% faster than in blocks)
        return a @ b
    return threads.matmul_split_inner(a, b)  # cache-sized blocks of k, split over threads (NumPy only)
