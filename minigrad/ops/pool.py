"""Pooling over 1-3 spatial dimensions (max, average) and nearest-neighbour upsampling.

The window maxima and sums and their adjoints are kernels
(minigrad/kernels/pooling.py). Semantics follow PyTorch (floor mode): max pooling pads
with -inf and routes the gradient to the first maximum of each window (a NaN counts
as the maximum and propagates); average pooling divides by prod(kernel)
(``count_include_pad=True``) or by the number of non-padding elements.
"""
import math
import numbers

from ._util import result
from .im2col import Window, as_padding_pairs, as_tuple, output_shape
from .shape import squeeze, unsqueeze
from ..kernels import pooling
from ..tensor import Tensor

_DIM_NAMES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _pool_geometry(x, d, kernel_size, stride, padding, dilation, op):
    """Validate the input and window parameters; returns the :class:`Window`."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a minigrad Tensor, got {type(x).__name__}")
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{op} expects a {d + 2}-D input {_DIM_NAMES[d]} (or {d + 1}-D unbatched), "
                         f"got shape {x.shape}")
    if x.data.dtype.kind != "f":
        raise TypeError(f"{op} needs a float input, got dtype {x.dtype}")
    kernel = as_tuple(kernel_size, d, "kernel_size", minimum=1)
    stride = kernel if stride is None else as_tuple(stride, d, "stride", minimum=1)
    dilation = as_tuple(dilation, d, "dilation", minimum=1)
    pad = as_tuple(padding, d, "padding")
    if any(2 * p > dl * (k - 1) + 1 for p, k, dl in zip(pad, kernel, dilation)):
        raise ValueError(f"{op}: padding {pad} must be at most half the (dilated) kernel size {kernel}")
    pads = as_padding_pairs(pad, d)
    in_shape = x.shape[-d:]
    out_shape = output_shape(in_shape, kernel, stride, pads, dilation)
    if any(o < 1 for o in out_shape):
        raise ValueError(f"{op}: kernel {kernel} (dilation {dilation}) is larger than the padded input "
                         f"(spatial size {in_shape}, padding {pad}); the output would be empty")
    return Window(kernel, stride, pads, dilation, tuple(in_shape), out_shape)


def _batched(fn, x, d, *args):
    """Apply ``fn`` to (N, C, *S) data, adding and removing the batch axis of unbatched (C, *S) input."""
    if x.ndim == d + 1:
        return squeeze(fn(unsqueeze(x, 0), *args), 0)
    return fn(x, *args)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, *, dims):
    """Max pooling over the last ``dims`` axes of x (N, C, *S) (PyTorch's max_pool{dims}d)."""
    window = _pool_geometry(x, dims, kernel_size, stride, padding, dilation, f"max_pool{dims}d")
    return _batched(_max_pool, x, dims, window)


def _max_pool(x, window):
    best, argmax = pooling.window_max(x.data, window)     # each window's maximum and the offset holding it
    return result(best, (x,), lambda g: (pooling.window_max_backward(g, argmax, window),))   # g to the argmax


def avg_pool(x, kernel_size, stride=None, padding=0, count_include_pad=True, *, dims):
    """Average pooling over the last ``dims`` axes of x (N, C, *S) (PyTorch's avg_pool{dims}d, floor mode)."""
    window = _pool_geometry(x, dims, kernel_size, stride, padding, 1, f"avg_pool{dims}d")
    return _batched(_avg_pool, x, dims, window, bool(count_include_pad))


def _avg_pool(x, window, count_include_pad):
    xd = x.data
    if count_include_pad or not any(lo or hi for lo, hi in window.padding):
        scale = xd.dtype.type(1 / math.prod(window.kernel))
    else:  # 1 / (number of real elements in each window): the window sums of a mask of ones
        ones = x.xp.ones((1, 1) + tuple(window.in_shape), dtype=xd.dtype)
        scale = (1 / pooling.window_sum(ones, window)).astype(xd.dtype)
    out = pooling.window_sum(xd, window) * scale
    return result(out, (x,), lambda g: (pooling.window_sum_backward(g * scale, window),))


def upsample_nearest(x, scale_factor, *, dims=None):
    """Nearest-neighbour upsampling of x (N, C, *S) by integer factors along the spatial axes.

    ``dims`` (spatial dimensions) defaults to x.ndim - 2. Output (N, C, *(S * scale)).
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"upsample: input must be a minigrad Tensor, got {type(x).__name__}")
    d = x.ndim - 2 if dims is None else dims
    if d not in (1, 2, 3) or x.ndim != d + 2:
        raise ValueError(f"upsample expects an input (N, C, *S) with 1 to 3 spatial axes, got shape {x.shape}")
    scales = integer_scales(scale_factor, d)
    out = pooling.upsample_nearest(x.data, scales)      # every element repeated scales[i] times along axis i
    return result(out, (x,), lambda g: (pooling.upsample_nearest_backward(g, scales),))   # sum over the copies


def integer_scales(scale_factor, d):
    """``scale_factor`` (a number or ``d`` numbers) as ``d`` positive ints; non-integers raise."""
    values = (scale_factor,) * d if not isinstance(scale_factor, (tuple, list)) else tuple(scale_factor)
    if len(values) != d:
        raise ValueError(f"scale_factor must be a number or {d} numbers, got {scale_factor!r}")
    scales = []
    for v in values:
        if (isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v)
                or v != int(v) or v < 1):
            raise ValueError(f"nearest upsampling supports positive integer scale factors only, got {scale_factor!r}")
        scales.append(int(v))
    return tuple(scales)


def _fixed_dim(fn, d, name):
    def op(x, *args, **kwargs):
        return fn(x, *args, dims=d, **kwargs)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{fn.__name__} with {d} spatial dimension{'s' if d > 1 else ''}; see :func:`{fn.__name__}`."
    return op


max_pool1d, max_pool2d, max_pool3d = (_fixed_dim(max_pool, d, f"max_pool{d}d") for d in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_fixed_dim(avg_pool, d, f"avg_pool{d}d") for d in (1, 2, 3))
