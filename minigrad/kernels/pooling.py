"""Pooling kernels: the maximum and the sum over every window, their adjoints, and
nearest-neighbour upsampling.

All loop over the prod(kernel) offsets of the window (each a strided slice of the padded
input covering every window at once), never over positions or samples.

Fast versions (NumPy and CuPy): results laid out in memory like the input, so a
channel-major conv output stays channel-major (:mod:`.layout`); the running maximum kept
with a one-byte offset index; windows that tile the input written without zero-filling;
on the CPU the batch or channel axis split over minigrad's threads.
"""
import itertools

import numpy as np

from . import threads
from .dispatch import kernel
from .layout import empty_like_order, in_layout_of
from .unfold import interior, offsets, padded_shape, tiles
from ..backend import get_array_module


def _padded(x, window, fill):
    xp = get_array_module(x)
    return xp.pad(x, ((0, 0), (0, 0)) + tuple(window.padding), constant_values=fill)


# ------------------------------------------------------------------ reference
@kernel
def window_max(x, window):
    """The maximum of every window of x (N, C, *S) and the offset k < prod(kernel) holding it:
    the first maximum (as PyTorch), or the last NaN where a window holds one (NaN propagates)."""
    xp = get_array_module(x)
    padded = _padded(x, window, -np.inf)
    values = xp.stack([padded[off] for off in offsets(window)])            # (K, N, C, *out)
    best = values.max(axis=0)
    first_max = values.argmax(axis=0)
    nan = xp.isnan(values)
    last_nan = len(values) - 1 - nan[::-1].argmax(axis=0)
    return best, xp.where(nan.any(axis=0), last_nan, first_max)


@kernel
def window_max_backward(g, argmax, window):
    """The adjoint of :func:`window_max`: each window's g goes to the input element at its argmax."""
    xp = get_array_module(g)
    n, c = g.shape[:2]
    padded = xp.zeros((n, c) + padded_shape(window), dtype=g.dtype)
    for k, win in enumerate(offsets(window)):
        padded[win] += g * (argmax == k)
    return padded[interior(window)]


@kernel
def window_sum(x, window):
    """The sum of every window of x (N, C, *S), zero padded."""
    padded = _padded(x, window, 0)
    return sum(padded[off] for off in offsets(window))


@kernel
def window_sum_backward(g, window):
    """The adjoint of :func:`window_sum`: g added onto every element of its window."""
    xp = get_array_module(g)
    padded = xp.zeros(g.shape[:2] + padded_shape(window), dtype=g.dtype)
    for win in offsets(window):
        padded[win] += g
    return padded[interior(window)]


@kernel
def upsample_nearest(x, scales):
    """x (N, C, *S) with every element repeated ``scales[i]`` times along spatial axis i."""
    xp = get_array_module(x)
    for axis, s in enumerate(scales, start=2):
        x = xp.repeat(x, s, axis=axis)
    return x


@kernel
def upsample_nearest_backward(g, scales):
    """The adjoint of :func:`upsample_nearest`: the sum over each block of copies."""
    n, c = g.shape[:2]
    blocks = (n, c)
    for size, s in zip(g.shape[2:], scales):
        blocks += (size // s, s)
    return g.reshape(blocks).sum(axis=tuple(range(3, len(blocks), 2)))


# ------------------------------------------------------------------ fast
def _pad_like(a, window, fill):
    """(N, C, *S) padded with ``fill``, in a's memory order (a itself when there is no padding)."""
    if not any(lo or hi for lo, hi in window.padding):
        return a
    buf = empty_like_order(a, a.shape[:2] + padded_shape(window), fill=fill)
    buf[interior(window)] = a
    return buf


def _split_lead(a):
    """Slices of the batch or channel axis (whichever is outer in memory) to split work over
    minigrad's threads, as index tuples; one full slice when the work is not split."""
    parts = threads.parts_for(a.nbytes, get_array_module(a))
    if parts > 1:
        for ax in sorted((0, 1), key=lambda i: -a.strides[i]):
            if a.shape[ax] >= parts:
                return [(sl, slice(None)) if ax == 0 else (slice(None), sl)
                        for sl in threads.ranges(a.shape[ax], parts)]
    return [(slice(None), slice(None))]


@window_max.fast
def _window_max_fast(x, window):
    xp = get_array_module(x)
    src = _pad_like(x, window, -np.inf)
    windows = offsets(window)
    idx_dtype = np.dtype(np.uint8 if len(windows) <= 255 else np.int32)
    full_out = x.shape[:2] + tuple(window.out_shape)
    best = empty_like_order(x, full_out)
    idx = empty_like_order(x, full_out, dtype=idx_dtype, fill=0)

    def forward(lead):
        # Running maximum (xp.maximum propagates NaN) and the offset that holds it: offset k
        # takes over where it is strictly larger, so ties keep the first maximum, as PyTorch.
        # The winner is the last offset that took over: idx = max_k k * [k took over].
        b, ix, sl = best[lead], idx[lead], src[lead]
        b[...] = sl[windows[0]]
        for k, win in enumerate(windows[1:], start=1):
            v = sl[win]
            took = v > b
            # bool is one byte of 0/1: view it as uint8 instead of converting it
            took = took.view(idx_dtype) if idx_dtype == np.uint8 else took.astype(idx_dtype)
            if k > 1:
                took *= idx_dtype.type(k)
            xp.maximum(ix, took, out=ix)
            xp.maximum(b, v, out=b)

    threads.run_items(forward, _split_lead(src))
    nan = xp.isnan(best)
    if nan.any():  # PyTorch's `val > max || isnan(val)`: the last NaN of a window is its argmax
        last_nan = xp.zeros(best.shape, dtype=idx_dtype)
        for k, win in enumerate(windows):
            last_nan = xp.maximum(last_nan, xp.isnan(src[win]).astype(idx_dtype) * idx_dtype.type(k))
        idx = xp.where(nan, last_nan, idx)
    return best, idx


@window_max_backward.fast
def _window_max_backward_fast(g, argmax, window):
    xp = get_array_module(g)
    g = in_layout_of(g, argmax)
    tiled = tiles(window)
    buf = empty_like_order(argmax, g.shape[:2] + padded_shape(window), dtype=g.dtype, fill=None if tiled else 0)
    windows = offsets(window)

    def scatter(lead):
        gl, il, bl = g[lead], argmax[lead], buf[lead]
        for k, win in enumerate(windows):
            if tiled:  # every input element is in exactly one window
                xp.multiply(gl, il == k, out=bl[win])
            else:
                bl[win] += gl * (il == k)

    threads.run_items(scatter, _split_lead(buf))
    return buf[interior(window)]


@window_sum.fast
def _window_sum_fast(x, window):
    src = _pad_like(x, window, 0)
    windows = offsets(window)
    total = src[windows[0]] + src[windows[1]] if len(windows) > 1 else src[windows[0]].copy()
    for win in windows[2:]:
        total += src[win]
    return total


@window_sum_backward.fast
def _window_sum_backward_fast(g, window):
    tiled = tiles(window)
    buf = empty_like_order(g, g.shape[:2] + padded_shape(window), fill=None if tiled else 0)
    for win in offsets(window):
        if tiled:
            buf[win] = g
        else:
            buf[win] += g
    return buf[interior(window)]


def _copies(scales):
    """Output element (i1 * s1 + o1, ...) copies input element (i1, ...): one strided slice per offset o."""
    return [(slice(None), slice(None)) + tuple(slice(o, None, s) for o, s in zip(offset, scales))
            for offset in itertools.product(*(range(s) for s in scales))]


@upsample_nearest.fast
def _upsample_nearest_fast(x, scales):
    out = empty_like_order(x, x.shape[:2] + tuple(size * s for size, s in zip(x.shape[2:], scales)))
    copies = _copies(scales)

    def spread(lead):
        src, dst = x[lead], out[lead]
        for win in copies:
            dst[win] = src

    threads.run_items(spread, _split_lead(out))
    return out


@upsample_nearest_backward.fast
def _upsample_nearest_backward_fast(g, scales):
    xp = get_array_module(g)
    gx = empty_like_order(g, g.shape[:2] + tuple(size // s for size, s in zip(g.shape[2:], scales)))
    scaled = [axis for axis, s in enumerate(scales) if s > 1]

    def gather(lead):
        # the sum over each block of copies, one spatial axis at a time, outermost first: the
        # copies along an outer axis are whole rows, so that sum runs on contiguous memory
        # (0.70 -> 0.49 ms for 2x2 blocks of (256, 16, 14, 14) against all four strided copies at once)
        acc, dst = g[lead], gx[lead]
        if not scaled:
            dst[...] = acc
        for axis in scaled:
            index = (slice(None),) * (2 + axis)
            parts = [acc[index + (slice(o, None, scales[axis]),)] for o in range(scales[axis])]
            acc = xp.add(parts[0], parts[1], out=dst if axis == scaled[-1] else None)
            for part in parts[2:]:
                acc += part

    threads.run_items(gather, _split_lead(gx))
    return gx
