"""Pooling over 1-3 spatial dimensions (max, average) and nearest-neighbour upsampling.

Like im2col, pooling loops over the prod(kernel) offsets of the window, each a
strided slice of the (padded) input covering every window at once; no loop runs
over positions or samples. Semantics follow PyTorch (floor mode): max pooling pads
with -inf and routes the gradient to the first maximum of each window (a NaN counts
as the maximum and propagates); average pooling divides by prod(kernel)
(``count_include_pad=True``) or by the number of non-padding elements.
"""
import itertools
import math
import numbers

import numpy as np

from ..kernels import threads
from ..backend import get_array_module
from ..tensor import Tensor
from ._util import result
from .im2col import as_padding_pairs, as_tuple, output_shape, window_slices
from .shape import squeeze, unsqueeze

_DIM_NAMES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _pool_geometry(x, d, kernel_size, stride, padding, dilation, op):
    """Validate the input and window parameters; returns (kernel, stride, pads, dilation, out_shape)."""
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
    return kernel, stride, pads, dilation, out_shape


def _batched(fn, x, d, *args):
    """Apply ``fn`` to (N, C, *S) data, adding and removing the batch axis of unbatched (C, *S) input."""
    if x.ndim == d + 1:
        return squeeze(fn(unsqueeze(x, 0), *args), 0)
    return fn(x, *args)


def _memory_order(a):
    """a's axes from outermost to innermost in memory."""
    return sorted(range(a.ndim), key=lambda i: -a.strides[i])


def _alloc_like(a, shape, zero=False, fill=None, dtype=None):
    """An array of ``shape`` whose axes lie in memory in the same order as ``a``'s (e.g. the
    channel-major order of conv outputs), so that elementwise work between the two runs in step."""
    xp = get_array_module(a)
    order = _memory_order(a)
    alloc_shape = tuple(shape[i] for i in order)
    dtype = a.dtype if dtype is None else dtype
    if fill is not None:
        buf = xp.full(alloc_shape, fill, dtype=dtype)
    else:
        buf = (xp.zeros if zero else xp.empty)(alloc_shape, dtype=dtype)
    return buf.transpose(tuple(order.index(i) for i in range(a.ndim)))


def _in_layout_of(g, a):
    """``g`` laid out in memory like ``a`` (same shape): itself when it already is, else one copy.
    Elementwise work over arrays in different layouts runs several times slower."""
    if g.ndim < 2 or _memory_order(g) == _memory_order(a):
        return g
    out = _alloc_like(a, g.shape, dtype=g.dtype)
    out[...] = g
    return out


def _pad(a, pads, fill):
    """(N, C, *S) padded by ``pads`` with ``fill`` (the array itself when there is no padding)."""
    if not any(lo or hi for lo, hi in pads):
        return a
    shape = a.shape[:2] + tuple(n + lo + hi for n, (lo, hi) in zip(a.shape[2:], pads))
    buf = _alloc_like(a, shape, zero=False, fill=fill)
    buf[_interior(a.shape[2:], pads)] = a
    return buf


def _interior(in_shape, pads):
    return (slice(None), slice(None)) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(in_shape, pads))


def _tiles(in_shape, kernel, stride, pads, dilation):
    """True when the windows tile the input exactly (no overlap, no gap, no padding)."""
    return (kernel == stride and all(dl == 1 for dl in dilation) and not any(lo or hi for lo, hi in pads)
            and all(n % k == 0 for n, k in zip(in_shape, kernel)))


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, *, dims):
    """Max pooling over the last ``dims`` axes of x (N, C, *S) (PyTorch's max_pool{dims}d)."""
    op = f"max_pool{dims}d"
    geometry = _pool_geometry(x, dims, kernel_size, stride, padding, dilation, op)
    return _batched(_max_pool, x, dims, *geometry)


def _split_lead(a, xp):
    """Slices of the batch or channel axis (whichever is outer in memory) to split pooling work
    over minigrad's threads, as index tuples; one full slice when the work is not split."""
    parts = threads.parts_for(a.nbytes, xp)
    whole = [(slice(None), slice(None))]
    if parts == 1:
        return whole
    for ax in sorted((0, 1), key=lambda i: -a.strides[i]):
        if a.shape[ax] >= parts:
            return [(sl, slice(None)) if ax == 0 else (slice(None), sl) for sl in threads.ranges(a.shape[ax], parts)]
    return whole


def _run_split(work, parts):
    if len(parts) == 1:
        work(parts[0])
    else:
        threads.run_items(work, parts)


def _max_pool(x, kernel, stride, pads, dilation, out_shape):
    xp = x.xp
    xd = x.data
    in_shape = xd.shape[2:]
    src = _pad(xd, pads, -np.inf)
    windows = [win for _, win in window_slices(kernel, stride, dilation, out_shape)]
    idx_dtype = np.dtype(np.uint8 if len(windows) <= 255 else np.int32)
    full_out = xd.shape[:2] + tuple(out_shape)
    best = _alloc_like(xd, full_out)
    idx = _alloc_like(xd, full_out, zero=True, dtype=idx_dtype)
    lead_parts = _split_lead(src, xp)

    def forward(lead):
        # Running maximum (xp.maximum propagates NaN) and the offset that holds it: offset k
        # takes over where it is strictly larger, so ties keep the first maximum, as PyTorch.
        # The winner is the last offset that took over: idx = max_k k * [k took over].
        b, ix = best[lead], idx[lead]
        b[...] = src[lead + windows[0]]
        for k, win in enumerate(windows[1:], start=1):
            v = src[lead + win]
            took = v > b
            # bool is one byte of 0/1: view it as uint8 instead of converting it
            took = took.view(idx_dtype) if idx_dtype == np.uint8 else took.astype(idx_dtype)
            if k > 1:
                took *= idx_dtype.type(k)
            xp.maximum(ix, took, out=ix)
            xp.maximum(b, v, out=b)

    _run_split(forward, lead_parts)
    nan = xp.isnan(best)
    if nan.any():  # PyTorch's `val > max || isnan(val)`: the last NaN of a window is its argmax
        lead = (slice(None), slice(None))
        last_nan = xp.zeros(best.shape, dtype=idx_dtype)
        for k, win in enumerate(windows):
            last_nan = xp.maximum(last_nan, xp.isnan(src[lead + win]).astype(idx_dtype) * idx_dtype.type(k))
        idx = xp.where(nan, last_nan, idx)

    def backward(g):
        g = _in_layout_of(g, idx)
        tiles = _tiles(in_shape, kernel, stride, pads, dilation)
        buf = _alloc_like(xd, src.shape, zero=not tiles)

        def scatter(lead):
            gl, il, bl = g[lead], idx[lead], buf[lead]
            for k, win in enumerate(windows):
                if tiles:  # every input element is in exactly one window
                    xp.multiply(gl, il == k, out=bl[(slice(None), slice(None)) + win])
                else:
                    bl[(slice(None), slice(None)) + win] += gl * (il == k)

        _run_split(scatter, _split_lead(buf, xp))
        return (buf[_interior(in_shape, pads)] if src is not xd else buf,)

    return result(best, (x,), backward)


def avg_pool(x, kernel_size, stride=None, padding=0, count_include_pad=True, *, dims):
    """Average pooling over the last ``dims`` axes of x (N, C, *S) (PyTorch's avg_pool{dims}d, floor mode)."""
    op = f"avg_pool{dims}d"
    geometry = _pool_geometry(x, dims, kernel_size, stride, padding, 1, op)
    return _batched(_avg_pool, x, dims, *geometry, bool(count_include_pad))


def _avg_pool(x, kernel, stride, pads, dilation, out_shape, count_include_pad):
    xp = x.xp
    xd = x.data
    in_shape = xd.shape[2:]
    src = _pad(xd, pads, 0)
    lead = (slice(None), slice(None))
    windows = [lead + win for _, win in window_slices(kernel, stride, dilation, out_shape)]
    total = src[windows[0]] + src[windows[1]] if len(windows) > 1 else src[windows[0]].copy()
    for win in windows[2:]:
        total += src[win]
    if count_include_pad or not any(lo or hi for lo, hi in pads):
        scale = xd.dtype.type(1.0 / len(windows))
    else:  # 1 / (number of real elements in each window), by pooling a padded mask of ones
        ones = _pad(xp.ones((1, 1) + tuple(in_shape), dtype=xd.dtype), pads, 0)
        counts = sum(ones[win] for win in windows)
        scale = (1 / counts).astype(xd.dtype)
    total *= scale

    def backward(g):
        share = _in_layout_of(g, total) * scale
        tiles = _tiles(in_shape, kernel, stride, pads, dilation)
        buf = _alloc_like(xd, src.shape, zero=not tiles)
        for win in windows:
            if tiles:
                buf[win] = share
            else:
                buf[win] += share
        return (buf[_interior(in_shape, pads)] if src is not xd else buf,)

    return result(total, (x,), backward)


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
    xd = x.data
    n, c, spatial = xd.shape[0], xd.shape[1], xd.shape[2:]
    out = _alloc_like(xd, (n, c) + tuple(size * s for size, s in zip(spatial, scales)))
    # output element (i1 * s1 + o1, ...) copies input element (i1, ...): one strided slice per offset o
    copies = [tuple(slice(o, None, s) for o, s in zip(offset, scales))
              for offset in itertools.product(*(range(s) for s in scales))]
    xp = x.xp

    def spread(lead):
        src, dst = xd[lead], out[lead]
        for win in copies:
            dst[(slice(None), slice(None)) + win] = src

    _run_split(spread, _split_lead(out, xp))

    def backward(g):
        gx = _alloc_like(xd, xd.shape, dtype=g.dtype)

        def gather(lead):
            gl, dst = g[lead], gx[lead]
            wins = [(slice(None), slice(None)) + win for win in copies]
            if len(wins) == 1:
                dst[...] = gl[wins[0]]
                return
            xp.add(gl[wins[0]], gl[wins[1]], out=dst)
            for win in wins[2:]:
                dst += gl[win]

        _run_split(gather, _split_lead(gx, xp))
        return (gx,)

    return result(out, (x,), backward)


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
