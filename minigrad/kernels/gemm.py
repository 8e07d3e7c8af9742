"""Matrix products with a bias: y = x W^T + b and the bias gradient's column sums.

Reference: the one-line maths. Fast (NumPy on the CPU): the bias folded into the GEMM
for narrow inputs and wide outputs, else added over threads into the GEMM's fresh
output; column sums as one BLAS product with a ones vector.
"""
import numpy as np

from . import threads
from .dispatch import kernel


def _is_numpy_float(*arrays):
    return all(isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays)


@kernel
def affine(x2, w, b=None):
    """x2 (n, in) @ w (out, in)^T + b (out,)."""
    y = x2 @ w.T
    return y if b is None else y + b


@affine.fast
def _affine_fast(x2, w, b=None):
    if b is None or not _is_numpy_float(x2, w, b):
        return affine.reference(x2, w, b)
    fan_out, fan_in = w.shape
    if fan_in < fan_out:
        return _affine_augmented(x2, w, b)
    y = x2 @ w.T
    # into the fresh GEMM output, no extra array (split over threads when large)
    return threads.elementwise(lambda o, bias: np.add(o, bias, out=o), y, b)


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


@kernel
def column_sums(g2):
    """Sum of the rows of g2 (n, k): the (k,) gradient of a bias added to every row."""
    return g2.sum(0)


@column_sums.fast
def _column_sums_fast(g2):
    if not _is_numpy_float(g2) or g2.ndim != 2:
        return column_sums.reference(g2)
    # one BLAS product: NumPy's axis-0 sum is slower for few columns
    return g2.T @ np.ones(g2.shape[0], dtype=g2.dtype)
