"""unfold (im2col) and fold (its adjoint, col2im) over 1-3 spatial dimensions.

A sliding window is described by a :class:`Window`. ``unfold`` cuts x (N, C, *S) into
its patches A (N, P, C * prod(kernel)), one row per output position p, the columns in
a conv weight's (c, *kernel) order; ``fold`` adds such rows back onto (N, C, *S)
(overlapping windows add up), so <unfold(x), c> = <x, fold(c)>.

Both loop over the prod(kernel) offsets of the window, never over positions or samples:
each offset picks one strided slice of the padded input, that offset's element of every
window at once (chainer's im2col).

Fast versions (NumPy and CuPy): the patches are written channel-major, as a C-contiguous
(C * prod(kernel) [+ 1], N * P) matrix whose transpose A is a free view, so the GEMMs
of a convolution run on contiguous memory and produce channel-major outputs (C, N, *S)
seen as (N, C, *S) views; the extra row of ones lets :mod:`.gemm` fold a bias into the
GEMM. On the CPU the work is split over minigrad's threads; at stride 1 a kernel offset
moves every window by one fixed amount in the flattened (padded) input, so 2-D patches
whose rows are as wide as the input are copied as one long run per offset, and
``fold_product`` adds each offset's columns back as one long run per sample (in
cache-sized blocks of samples) or, when it moves less data, runs as a correlation
with the flipped kernel.
"""
import itertools
import math
from collections import namedtuple

import numpy as np

from . import gemm, threads
from .dispatch import kernel
from ..backend import get_array_module

Window = namedtuple("Window", "kernel stride padding dilation in_shape out_shape")
Window.__doc__ = """Geometry of a sliding window over the spatial axes: ``kernel``, ``stride``,
``dilation`` (tuples of ints), ``padding`` ((before, after) pairs), the input's spatial
``in_shape`` and the ``out_shape`` of window positions (P = prod(out_shape))."""


def output_shape(in_shape, kernel, stride, padding, dilation):
    """Spatial output shape of a sliding window: floor((S + lo + hi - dl (k - 1) - 1) / s) + 1 per axis."""
    return tuple((n + lo + hi - dl * (k - 1) - 1) // s + 1
                 for n, k, s, (lo, hi), dl in zip(in_shape, kernel, stride, padding, dilation))


def window_slices(window):
    """(offset, slices) for every kernel offset in C order over ``window.kernel``.

    ``slices`` index the padded spatial axes: they pick the element at ``offset``
    of every window, a strided block of shape ``window.out_shape``.
    """
    for offset in itertools.product(*(range(k) for k in window.kernel)):
        yield offset, tuple(slice(o * dl, o * dl + s * (n - 1) + 1, s)
                            for o, dl, s, n in zip(offset, window.dilation, window.stride, window.out_shape))


def offsets(window):
    """For every kernel offset, the index of its element of every window in a padded (N, C, *S_pad) array."""
    return [(slice(None), slice(None)) + win for _, win in window_slices(window)]


def padded_shape(window):
    return tuple(n + lo + hi for n, (lo, hi) in zip(window.in_shape, window.padding))


def interior(window):
    """Index of the unpadded input inside a padded (N, C, *S_pad) array."""
    return (slice(None), slice(None)) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(window.in_shape, window.padding))


# ------------------------------------------------------------------ reference
@kernel
def unfold(x, window):
    """The patches of x (N, C, *S): A (N, P, C * prod(kernel)), A[n, p] the window at position p."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    padded = xp.pad(x, ((0, 0), (0, 0)) + tuple(window.padding))
    elements = [padded[off] for off in offsets(window)]
    patches = xp.stack(elements, axis=2).reshape(n, c * len(elements), -1)  # (N, C * K, P)
    return xp.ascontiguousarray(patches.transpose(0, 2, 1))


def fold(cols, window):
    """The adjoint of unfold: add the rows of cols (N, P, C * prod(kernel)) back onto (N, C, *in_shape)."""
    xp = get_array_module(cols)
    n = cols.shape[0]
    k = math.prod(window.kernel)
    c = cols.shape[2] // k
    cols = cols.transpose(0, 2, 1).reshape((n, c, k) + tuple(window.out_shape))
    padded = xp.zeros((n, c) + padded_shape(window), dtype=cols.dtype)
    for i, off in enumerate(offsets(window)):
        padded[off] += cols[:, :, i]
    return padded[interior(window)]


@kernel
def fold_product(d, w, window):
    """fold(d @ w): d (N, P, F), w (F, C * prod(kernel)) -> (N, C, *in_shape)."""
    return fold(d @ w, window)


# ------------------------------------------------------------------ fast
def _pad_channel_major(x, window):
    """(N, C, *in_shape) -> (C, N, *padded), zero-filled around; a view when there is no padding."""
    xp = get_array_module(x)
    xc = xp.swapaxes(x, 0, 1)
    if not any(lo or hi for lo, hi in window.padding):
        return xc
    buf = xp.zeros(xc.shape[:2] + padded_shape(window), dtype=x.dtype)
    buf[interior(window)] = xc
    return buf


def unfold_channel_major(x, window, out=None):
    """The patches of x (N, C, *S) as col (C, *kernel, N, *out), C-contiguous (into ``out`` if given)."""
    xp = get_array_module(x)
    n, c = x.shape[:2]
    shape = (c,) + tuple(window.kernel) + (n,) + tuple(window.out_shape)
    col = xp.empty(shape, dtype=x.dtype) if out is None else out
    windows = list(window_slices(window))
    lead = (slice(None),) * (1 + len(window.kernel))

    def fill(samples):
        src = _pad_channel_major(x[samples], window)
        dst = col[lead + (samples,)]
        for offset, win in windows:
            dst[(slice(None),) + offset] = src[(slice(None), slice(None)) + win]

    if xp is np and rows_run_on(window):
        threads.run_ranges(lambda samples: _fill_by_flat_shifts(x[samples], window, col[lead + (samples,)]),
                           n, col.nbytes, xp)
    else:
        threads.run_ranges(fill, n, col.nbytes, xp)
    return col


def rows_run_on(window):
    """True for a 2-D window at stride 1 whose output rows are as wide as the input's
    ("same" padding along the width): then :func:`_fill_by_flat_shifts` applies."""
    return (len(window.kernel) == 2 and all(s == 1 for s in window.stride)
            and window.out_shape[1] == window.in_shape[1])


def _fill_by_flat_shifts(x, window, dst):
    """dst (C, kh, kw, n, out_h, W) = the patches of x (n, C, H, W), each kernel offset one
    contiguous copy per channel and sample instead of one short copy per output row.

    The input is laid out with zero rows above and below (the height padding) and flattened:
    at stride 1 with rows as wide as the input, offset (i, j) then reads a contiguous run
    shifted by i dl_h W + j dl_w, one run for all the output rows; its first and last
    lo_w - j dl_w or j dl_w - lo_w columns fall in the width padding (the run reads there
    the neighbouring row's ends) and are zeroed after the copy.
    """
    c, n = x.shape[1], x.shape[0]
    height, width = window.in_shape
    (lo_h, hi_h), (lo_w, hi_w) = window.padding
    dl_h, dl_w = window.dilation
    out_h = window.out_shape[0]
    top = lo_w + lo_h * width                                # zeros before the first input row
    length = top + (height + hi_h) * width + hi_w
    flat = np.empty((c, n, length), dtype=x.dtype)
    flat[:, :, :top] = 0
    flat[:, :, top + height * width:] = 0
    flat[:, :, top:top + height * width].reshape(c, n, height, width)[...] = np.swapaxes(x, 0, 1)
    run = out_h * width
    for i, j in itertools.product(range(window.kernel[0]), range(window.kernel[1])):
        target = dst[:, i, j]                                # (C, n, out_h, W)
        shift = i * dl_h * width + j * dl_w
        target.reshape(c, n, run)[...] = flat[:, :, shift:shift + run]
        rows = target.reshape(c, n * out_h, width)           # one long strided run per column to zero
        before = lo_w - j * dl_w                             # columns left of the input
        if before > 0:
            rows[..., :before] = 0
        after = width + lo_w - j * dl_w                      # first column right of the input
        if after < width:
            rows[..., after:] = 0


@unfold.fast
def _unfold_fast(x, window):
    n, c = x.shape[:2]
    fan_in = c * math.prod(window.kernel)
    rows = gemm.empty_with_ones_row(fan_in, n * math.prod(window.out_shape), x.dtype, get_array_module(x))
    unfold_channel_major(x, window, out=rows.reshape((c,) + tuple(window.kernel) + (n,) + tuple(window.out_shape)))
    return rows.reshape(fan_in, n, -1).transpose(1, 2, 0)          # (N, P, fan_in), a view


def tiles(window):
    """True when the windows tile the input exactly: no overlap, no gap, no padding."""
    return (tuple(window.kernel) == tuple(window.stride) and all(dl == 1 for dl in window.dilation)
            and not any(lo or hi for lo, hi in window.padding)
            and all(n == o * k for n, o, k in zip(window.in_shape, window.out_shape, window.kernel)))


def _padded_buffer(xp, c, n, window, dtype):
    """The (C, n, *S_pad) buffer a fold adds into: zeros, or uninitialized where the windows tile it."""
    make = xp.empty if tiles(window) else xp.zeros
    return make((c, n) + padded_shape(window), dtype=dtype)


def _cropped(buf, window):
    """(C, N, *S_pad) buffer -> (N, C, *S) view without the padding."""
    return get_array_module(buf).swapaxes(buf, 0, 1)[interior(window)]


def _fold_into(buf, col, windows, tiled):
    """buf (C, n, *S_pad) += the windows of col (C, *kernel, n, *out), one strided add per kernel offset
    (a copy where the windows tile buf: every element then gets exactly one)."""
    for offset, win in windows:
        if tiled:
            buf[(slice(None), slice(None)) + win] = col[(slice(None),) + offset]
        else:
            buf[(slice(None), slice(None)) + win] += col[(slice(None),) + offset]


CACHE_BLOCK_BYTES = 1 << 21  # columns produced and folded per block on the CPU (about an L2/L3 share)


@fold_product.fast
def _fold_product_fast(d, w, window):
    n, f = d.shape[0], d.shape[2]
    m = d.reshape(-1, f).T                                   # (F, N * P): contiguous for channel-major d
    return fold_of_product(w.T, m, n, w.shape[1] // math.prod(window.kernel), window)


def fold_of_product(w, m, n, channels, window):
    """fold of (w @ m) given as col (channels, *kernel, n, *out), without the big temporary.

    w (channels * prod(kernel), F), m (F, n * P). On the CPU the product is formed and
    folded block by block of samples, so that each block of columns is added back while
    it is still in cache, the blocks split over minigrad's threads (each then running its
    products on one BLAS thread); at stride 1 it may run as a flipped-kernel correlation
    (:func:`correlation_pays`) or else as shifted runs (:func:`shifted_fold_of_product`);
    on a GPU in one go. Returns (n, channels, *in_shape), a channel-major view.
    """
    xp = get_array_module(m)
    kernel_shape, out_shape = tuple(window.kernel), tuple(window.out_shape)
    if xp is np:
        pads = adjoint_padding(window)
        if correlation_pays(w, channels, window.stride, pads):
            return flipped_correlation(w, m, n, channels, window, pads)
        if all(s == 1 for s in window.stride):
            return shifted_fold_of_product(w, m, n, channels, window)
    per_sample = w.shape[0] * math.prod(out_shape) * m.dtype.itemsize
    block = n if xp is not np else max(1, min(n, CACHE_BLOCK_BYTES // max(per_sample, 1)))
    buf = _padded_buffer(xp, channels, n, window, np.result_type(w, m))
    m3 = m.reshape(m.shape[0], n, -1)
    windows = list(window_slices(window))
    tiled = tiles(window)

    def fold_block(start):
        stop = min(n, start + block)
        cols = (w @ m3[:, start:stop].reshape(m.shape[0], -1)).reshape(
            (channels,) + kernel_shape + (stop - start,) + out_shape)
        _fold_into(buf[:, start:stop], cols, windows, tiled)

    threads.run_blocks(fold_block, list(range(0, n, block)), per_sample * n, xp)
    return _cropped(buf, window)


def shifted_fold_of_product(w, m, n, channels, window):
    """:func:`fold_of_product` at stride 1 (NumPy), each kernel offset one long add per sample.

    At stride 1 the window offset k moves every column of the product by one fixed amount in
    the flattened padded input, ``shift_k = sum_i offset_i dl_i pitch_i`` (pitch_i: the padded
    input's C-order stride), provided the columns are laid out with the padded input's pitches
    too. So ``m`` gets zero columns up to those pitches (their products are zero and add
    nothing), and the fold adds each offset's columns as one contiguous run per sample and
    channel instead of one short run per row of the output.
    """
    kernel_shape, out_shape = tuple(window.kernel), tuple(window.out_shape)
    padded = padded_shape(window)
    pitches = [math.prod(padded[i + 1:]) for i in range(len(padded))]
    pitched = out_shape[:1] + padded[1:]           # the output positions, laid out with the padded pitches
    span, f, dtype = math.prod(pitched), m.shape[0], np.result_type(w, m)
    if pitched == out_shape:
        mp = m.reshape(f, n, span)
    else:
        mp = np.empty((f, n) + pitched, dtype=m.dtype)
        mp[(slice(None), slice(None)) + tuple(slice(0, o) for o in out_shape)] = m.reshape((f, n) + out_shape)
        for axis in range(1, len(out_shape)):      # zero columns beyond the output along the inner axes
            mp[(slice(None),) * (2 + axis) + (slice(out_shape[axis], None),)] = 0
        mp = mp.reshape(f, n, span)
    shifts = [sum(o * dl * p for o, dl, p in zip(offset, window.dilation, pitches))
              for offset, _ in window_slices(window)]
    size = math.prod(padded)
    buf = np.empty((channels, n, max(size, shifts[-1] + span)), dtype=dtype)
    per_sample = w.shape[0] * span * dtype.itemsize
    block = max(1, min(n, CACHE_BLOCK_BYTES // max(per_sample, 1)))

    def fold_block(start):
        stop = min(n, start + block)
        cols = (w @ mp[:, start:stop].reshape(f, -1)).reshape(channels, len(shifts), stop - start, span)
        dst = buf[:, start:stop]
        dst[:, :, :span] = cols[:, 0]              # the first offset's shift is 0
        dst[:, :, span:] = 0
        for k, shift in enumerate(shifts[1:], start=1):
            dst[:, :, shift:shift + span] += cols[:, k]

    threads.run_blocks(fold_block, list(range(0, n, block)), per_sample * n)
    return _cropped(buf[:, :, :size].reshape((channels, n) + padded), window)


def adjoint_padding(window):
    """Padding of the correlation that equals the fold at stride 1: dl (k - 1) - lo before and
    in - out + lo after (dl (k - 1) - hi when the windows cover the padded input exactly)."""
    return tuple((dl * (k - 1) - lo, i - o + lo) for (lo, _), k, dl, i, o in
                 zip(window.padding, window.kernel, window.dilation, window.in_shape, window.out_shape))


def correlation_pays(w, channels, stride, adjoint_pads):
    """True when :func:`flipped_correlation` can stand in for the fold and moves less data.

    It needs stride 1 and a non-negative adjoint padding; it unfolds the F rows of ``m``
    (F * prod(kernel) values per position) where the fold writes and adds back
    ``channels * prod(kernel)``, so it pays when F <= channels (measured: 2.2x faster for
    16 -> 8 channels, 1.5x slower for 8 -> 16).
    """
    return (w.shape[1] <= channels and all(s == 1 for s in stride)
            and all(lo >= 0 and hi >= 0 for lo, hi in adjoint_pads))


def flipped_correlation(w, m, n, channels, window, pads):
    """:func:`fold_of_product` at stride 1 as a correlation: the fold of w @ m is ``m`` (as F
    channels over out_shape) correlated with the flipped kernel, padded by ``pads``
    (:func:`adjoint_padding`), with weights w2f[c, (f, k)] = w[(c, flip(k)), f].

    On the CPU: unfold and one GEMM per block of samples, each block's columns staying in
    cache, the blocks split over minigrad's threads.
    """
    kernel_shape, in_shape, out_shape = tuple(window.kernel), tuple(window.in_shape), tuple(window.out_shape)
    d, f = len(kernel_shape), m.shape[0]
    spatial_axes = tuple(range(1, d + 1))
    w2f = np.ascontiguousarray(np.flip(w.reshape((channels,) + kernel_shape + (f,)), spatial_axes)
                               .transpose((0, d + 1) + spatial_axes).reshape(channels, -1))
    src = np.swapaxes(m.reshape((f, n) + out_shape), 0, 1)        # (n, F, *out), a view
    size = math.prod(in_shape)
    out = np.empty((channels, n * size), dtype=np.result_type(w, m))
    per_sample = f * math.prod(kernel_shape) * size * m.dtype.itemsize
    block = max(1, min(n, CACHE_BLOCK_BYTES // max(per_sample, 1)))
    correlation = Window(kernel_shape, (1,) * d, pads, window.dilation, out_shape, in_shape)

    def correlate_block(start):
        stop = min(n, start + block)
        col = unfold_channel_major(src[start:stop], correlation)
        np.matmul(w2f, col.reshape(w2f.shape[1], -1), out=out[:, start * size:stop * size])

    threads.run_blocks(correlate_block, list(range(0, n, block)), per_sample * n)
    return np.swapaxes(out.reshape((channels, n) + in_shape), 0, 1)
