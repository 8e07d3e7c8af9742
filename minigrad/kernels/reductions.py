"""Reductions along one axis, kept as a size-1 axis (softmax's row maxima and sums), and sums of squares.

Fast (NumPy): NumPy reduces short contiguous last axes slowly (a per-row loop overhead), so
for a class axis of at most ``SHORT_AXIS`` entries the maxima run on a transposed copy and the
sums as one BLAS matrix-vector product; a sum of squares is one dot product, no squared temporary.
"""
import numpy as np

from .dispatch import kernel

SHORT_AXIS = 32


@kernel
def max_keepdims(x, axis):
    """x.max(axis, keepdims=True)."""
    return x.max(axis=axis, keepdims=True)


@kernel
def sum_keepdims(x, axis):
    """x.sum(axis, keepdims=True)."""
    return x.sum(axis=axis, keepdims=True)


@kernel
def sum_of_squares(a):
    """sum(a * a) over every element."""
    return (a * a).sum()


def _is_short_last_axis(x, axis):
    return (isinstance(x, np.ndarray) and x.ndim >= 2 and axis in (-1, x.ndim - 1)
            and x.shape[-1] <= SHORT_AXIS and x.flags.c_contiguous)


@max_keepdims.fast
def _max_keepdims_fast(x, axis):
    if not _is_short_last_axis(x, axis):
        return max_keepdims.reference(x, axis)
    # classes first, contiguous: the max then runs over whole rows of memory
    return np.ascontiguousarray(np.moveaxis(x, -1, 0)).max(axis=0)[..., None]


@sum_keepdims.fast
def _sum_keepdims_fast(x, axis):
    if not _is_short_last_axis(x, axis):
        return sum_keepdims.reference(x, axis)
    return (x @ np.ones(x.shape[-1], dtype=x.dtype))[..., None]


@sum_of_squares.fast
def _sum_of_squares_fast(a):
    flat = a.reshape(-1)
    return flat @ flat
