"""Elementwise kernels: relu and its adjoint, a per-channel bias, a difference, a scaling.

Fast versions (NumPy): one pass into an array laid out in memory like the input (so a
channel-major conv output stays channel-major), split over minigrad's threads when large;
a bias is added in place into the fresh array it is given. CuPy arrays take the reference.
"""
import numpy as np

from . import threads
from .dispatch import kernel, numpy_arrays
from .layout import empty_like_order
from ..backend import get_array_module


@kernel
def relu(x):
    """max(x, 0)."""
    return get_array_module(x).maximum(x, 0)


@kernel
def relu_backward(g, x):
    """g where x > 0, else 0: the adjoint of relu."""
    return g * (x > 0)


@kernel
def add_channel_bias(y, b):
    """y (N, C, *S) + b (C,) on every channel. Fast: in place, so pass a fresh array you give up."""
    return y + b.reshape((-1,) + (1,) * (y.ndim - 2))


@kernel
def difference(a, b):
    """a - b for arrays of one shape."""
    return a - b


@kernel
def scale(a, factor):
    """a * factor, factor a scalar or a 0-d array."""
    return a * factor


@relu.fast
def _relu_fast(x):
    if not numpy_arrays(x):
        return relu.reference(x)
    return threads.elementwise(lambda o, v: np.maximum(v, 0, out=o), empty_like_order(x), x)


@relu_backward.fast
def _relu_backward_fast(g, x):
    if not numpy_arrays(g, x):
        return relu_backward.reference(g, x)
    # in one pass without the mask array
    return threads.elementwise(lambda o, gg, v: np.multiply(gg, v > 0, out=o),
                               empty_like_order(x, dtype=g.dtype), g, x)


@add_channel_bias.fast
def _add_channel_bias_fast(y, b):
    return add_into(y, b.reshape((-1,) + (1,) * (y.ndim - 2)))


def add_into(y, b):
    """y += b in place (b broadcast), split over threads when y is a large NumPy array; returns y."""
    if not numpy_arrays(y, b):
        y += b
        return y
    return threads.elementwise(lambda o, bias: np.add(o, bias, out=o), y, b)


@difference.fast
def _difference_fast(a, b):
    if not numpy_arrays(a, b) or threads.parts_for(a.nbytes) == 1:
        return difference.reference(a, b)
    return threads.elementwise(lambda o, x, y: np.subtract(x, y, out=o), empty_like_order(a), a, b)


@scale.fast
def _scale_fast(a, factor):
    if not numpy_arrays(a) or threads.parts_for(a.nbytes) == 1:
        return scale.reference(a, factor)
    return threads.elementwise(lambda o, x, f: np.multiply(x, f, out=o), empty_like_order(a), a, factor)
