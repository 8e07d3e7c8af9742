"""N-dimensional im2col / col2im, written once against the array module.

The chainer way: instead of looping over output positions or samples, loop over
the prod(kernel) offsets of the kernel; each offset picks one strided slice of
the (padded) input, i.e. that offset's element of every window at once.

Layout. ``im2col`` returns ``col`` of shape (C, *kernel, N, *out), C-contiguous
("channel-major"): ``col.reshape(C * prod(kernel), N * P)`` (P = prod(out)) is a free
view whose columns are the unfolded patches in PyTorch's weight order (c, *kernel),
so the convolution is ONE contiguous GEMM ``weight.reshape(c_out, -1) @ col2``,
and ``col.reshape(C * prod(kernel), N, P).transpose(1, 2, 0)`` is the factor A
(N, P, C * prod(kernel)) of the paper's eq. (1) as a view. Each kernel offset
fills one contiguous block col[c, offset] of N * P values from a strided slice
of the padded input, staged as (C, N, *S_pad): both sides run along the rows of
the image, and col2im adds them back block by block (on the CPU also in blocks of
samples small enough to stay in cache while they are added back).
"""
import itertools
import math
import numbers

import numpy as np

from ..kernels import threads
from ..backend import get_array_module


def as_tuple(value, d, name, minimum=0):
    """``value`` (int or length-``d`` sequence of ints) as a tuple of ``d`` ints >= ``minimum``."""
    if _is_int(value):
        values = (int(value),) * d
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise TypeError(f"{name} must be an int or a sequence of {d} ints, got {value!r}") from None
        if len(values) != d or not all(_is_int(v) for v in values):
            raise ValueError(f"{name} must be an int or a sequence of {d} ints, got {value!r}")
        values = tuple(int(v) for v in values)
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum} in every dimension, got {value!r}")
    return values


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def as_padding_pairs(padding, d):
    """Padding as ``d`` (before, after) pairs from an int, ``d`` ints, or ``d`` (before, after) pairs."""
    if _is_int(padding):
        items = (padding,) * d
    else:
        try:
            items = tuple(padding)
        except TypeError:
            raise TypeError(f"padding must be an int or a sequence of {d} ints, got {padding!r}") from None
    pairs = []
    for p in items:
        pair = (p, p) if _is_int(p) else tuple(p) if isinstance(p, (tuple, list)) else None
        if len(items) != d or pair is None or len(pair) != 2 or not all(_is_int(v) and v >= 0 for v in pair):
            raise ValueError(f"padding must be a non-negative int, {d} such ints or {d} (before, after) pairs, "
                             f"got {padding!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def output_shape(in_shape, kernel, stride, padding, dilation):
    """Spatial output shape of a sliding window: floor((S + lo + hi - dl (k - 1) - 1) / s) + 1 per axis."""
    return tuple((n + lo + hi - dl * (k - 1) - 1) // s + 1
                 for n, k, s, (lo, hi), dl in zip(in_shape, kernel, stride, padding, dilation))


def window_slices(kernel, stride, dilation, out_shape):
    """(offset, slices) for every kernel offset in C order over ``kernel``.

    ``slices`` index the padded spatial axes: they pick the element at ``offset``
    of every window, a strided block of shape ``out_shape``.
    """
    for offset in itertools.product(*(range(k) for k in kernel)):
        yield offset, tuple(slice(o * dl, o * dl + s * (n - 1) + 1, s)
                            for o, dl, s, n in zip(offset, dilation, stride, out_shape))


def _pad_channel_major(x, padding):
    """(N, C, *S) -> (C, N, *S_pad), zero-filled around; a view when there is no padding."""
    xp = get_array_module(x)
    xc = xp.swapaxes(x, 0, 1)
    if not any(lo or hi for lo, hi in padding):
        return xc
    shape = (x.shape[1], x.shape[0]) + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], padding))
    buf = xp.zeros(shape, dtype=x.dtype)
    buf[(slice(None), slice(None)) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(x.shape[2:], padding))] = xc
    return buf


def im2col(x, kernel, stride, padding, dilation, out_shape=None, out=None):
    """Unfold ``x`` (N, C, *S) into ``col`` (C, *kernel, N, *out), C-contiguous.

    ``padding`` is a tuple of (before, after) pairs. ``out_shape`` may name fewer
    output positions than fit (ConvTranspose with large output_padding needs that).
    ``out``: a C-contiguous array of that shape to fill (else a new one).
    On the CPU, large unfoldings are split over minigrad's threads by samples.
    """
    xp = get_array_module(x)
    if out_shape is None:
        out_shape = output_shape(x.shape[2:], kernel, stride, padding, dilation)
    n, c = x.shape[0], x.shape[1]
    shape = (c,) + tuple(kernel) + (n,) + tuple(out_shape)
    if out is not None and (tuple(out.shape) != shape or out.dtype != x.dtype):
        raise ValueError(f"im2col: out must have shape {shape} and dtype {x.dtype}, got {out.shape} {out.dtype}")
    col = xp.empty(shape, dtype=x.dtype) if out is None else out
    windows = list(window_slices(kernel, stride, dilation, out_shape))
    lead = (slice(None),) * (1 + len(kernel))

    def fill(samples):
        src = _pad_channel_major(x[samples], padding)
        dst = col[lead + (samples,)]
        for offset, win in windows:
            dst[(slice(None),) + offset] = src[(slice(None), slice(None)) + win]

    _over_samples(fill, n, col.nbytes, xp)
    return col


def _over_samples(work, n, nbytes, xp):
    """``work(slice of samples)`` once for all samples, or on one range of samples per thread."""
    parts = threads.parts_for(nbytes, xp)
    if parts > 1 and n > 1:
        chunks = threads.ranges(n, parts)
        threads.run_parts(lambda i: work(chunks[i]), len(chunks))
    else:
        work(slice(None))


def _fold_into(buf, col, windows):
    """buf (C, n, *S_pad) += the windows of col (C, *kernel, n, *out), one strided add per kernel offset.

    ``windows``: the list of :func:`window_slices` for the geometry."""
    for offset, win in windows:
        buf[(slice(None), slice(None)) + win] += col[(slice(None),) + offset]


def _padded_buffer(xp, c, n, in_shape, padding, dtype):
    return xp.zeros((c, n) + tuple(s + lo + hi for s, (lo, hi) in zip(in_shape, padding)), dtype=dtype)


def _cropped(xp, buf, in_shape, padding):
    """(C, N, *S_pad) buffer -> (N, C, *S) view without the padding."""
    if any(lo or hi for lo, hi in padding):
        buf = buf[(slice(None), slice(None)) + tuple(slice(lo, lo + s) for s, (lo, _) in zip(in_shape, padding))]
    return xp.swapaxes(buf, 0, 1)


def col2im(col, in_shape, stride, padding, dilation):
    """The adjoint of :func:`im2col`: fold ``col`` (C, *kernel, N, *out) back onto (N, C, *in_shape).

    Overlapping windows add up. The result is a view (channel-major in memory, like
    the outputs of conv), cropped from the padded buffer.
    """
    xp = get_array_module(col)
    d = len(in_shape)
    buf = _padded_buffer(xp, col.shape[0], col.shape[1 + d], in_shape, padding, col.dtype)
    _fold_into(buf, col, list(window_slices(col.shape[1:1 + d], stride, dilation, col.shape[2 + d:])))
    return _cropped(xp, buf, in_shape, padding)


CACHE_BLOCK_BYTES = 1 << 21  # columns produced and folded per block on the CPU (about an L2/L3 share)


def col2im_of_product(w, m, n, channels, kernel, in_shape, out_shape, stride, padding, dilation):
    """``col2im((w @ m).reshape(channels, *kernel, n, *out_shape), in_shape, ...)`` without the big temporary.

    w (channels * prod(kernel), F), m (F, n * prod(out_shape)). On the CPU the product is
    formed and folded block by block of samples, so that each block of columns is added
    back while it is still in cache (NumPy), the blocks split over minigrad's threads
    (each then running its products on one BLAS thread); on a GPU in one go.
    """
    xp = get_array_module(m)
    if xp is np:
        pads = _adjoint_padding(padding, kernel, dilation, in_shape, out_shape)
        if _adjoint_correlation_pays(w, channels, stride, pads):
            return _adjoint_correlation(w, m, n, channels, kernel, in_shape, out_shape, pads, dilation)
    per_sample = w.shape[0] * math.prod(out_shape) * m.dtype.itemsize
    block = n if xp is not np else max(1, min(n, CACHE_BLOCK_BYTES // max(per_sample, 1)))
    buf = _padded_buffer(xp, channels, n, in_shape, padding, m.dtype)
    m3 = m.reshape(m.shape[0], n, -1)
    windows = list(window_slices(kernel, stride, dilation, out_shape))
    starts = list(range(0, n, block))

    def fold_block(start):
        stop = min(n, start + block)
        cols = (w @ m3[:, start:stop].reshape(m.shape[0], -1)).reshape(
            (channels,) + tuple(kernel) + (stop - start,) + tuple(out_shape))
        _fold_into(buf[:, start:stop], cols, windows)

    threads.run_blocks(fold_block, starts, per_sample * n, xp)
    return _cropped(xp, buf, in_shape, padding)


def _adjoint_padding(padding, kernel, dilation, in_shape, out_shape):
    """Padding of the correlation that equals the fold at stride 1: dl (k - 1) - lo before and
    in - out + lo after (dl (k - 1) - hi when the windows cover the padded input exactly)."""
    return tuple((dl * (k - 1) - lo, i - o + lo)
                 for (lo, _), k, dl, i, o in zip(padding, kernel, dilation, in_shape, out_shape))


def _adjoint_correlation_pays(w, channels, stride, adjoint_padding):
    """True when :func:`_adjoint_correlation` can stand in for the fold and moves less data.

    It needs stride 1 and a non-negative ``adjoint_padding``; it unfolds the F rows
    of ``m`` (F * prod(kernel) values per position) where the fold writes and adds back
    ``channels * prod(kernel)``, so it pays when F <= channels (measured: 2.2x faster for
    16 -> 8 channels, 1.5x slower for 8 -> 16).
    """
    f = w.shape[1]
    return f <= channels and all(s == 1 for s in stride) and all(lo >= 0 and hi >= 0 for lo, hi in adjoint_padding)


def _adjoint_correlation(w, m, n, channels, kernel, in_shape, out_shape, pads, dilation):
    """:func:`col2im_of_product` for stride 1 as a correlation: fold(w @ m) is ``m`` (as F
    channels over ``out_shape``) correlated with the flipped kernel, padded by ``pads``
    (:func:`_adjoint_padding`), with weights w2f[c, (f, k)] = w[(c, flip(k)), f].

    On the CPU: im2col and one GEMM per block of samples, each block's columns staying in
    cache, the blocks split over minigrad's threads. Returns the (N, channels, *in_shape)
    result as a channel-major view, like :func:`col2im_of_product`.
    """
    d, f = len(kernel), m.shape[0]
    spatial_axes = tuple(range(1, d + 1))
    w2f = np.ascontiguousarray(np.flip(w.reshape((channels,) + tuple(kernel) + (f,)), spatial_axes)
                               .transpose((0, d + 1) + spatial_axes).reshape(channels, -1))
    src = np.swapaxes(m.reshape((f, n) + tuple(out_shape)), 0, 1)       # (n, F, *out), a view
    size = math.prod(in_shape)
    out = np.empty((channels, n * size), dtype=np.result_type(w, m))
    per_sample = f * math.prod(kernel) * size * m.dtype.itemsize
    block = max(1, min(n, CACHE_BLOCK_BYTES // max(per_sample, 1)))
    starts = list(range(0, n, block))
    unit = (1,) * d

    def correlate_block(start):
        stop = min(n, start + block)
        col = im2col(src[start:stop], kernel, unit, pads, dilation, in_shape)
        np.matmul(w2f, col.reshape(w2f.shape[1], -1), out=out[:, start * size:stop * size])

    threads.run_blocks(correlate_block, starts, per_sample * n)
    return np.swapaxes(out.reshape((channels, n) + tuple(in_shape)), 0, 1)
