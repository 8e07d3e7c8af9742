"""Reductions over axes (sum, mean, max, min, var), softmax / log_softmax and logsumexp."""
from ._util import normalize_axis, result
from ..backend import get_array_module
from ..kernels.reductions import max_keepdims, sum_keepdims


def _expand(g, axes, keepdims):
    """Put reduced axes back (as size 1) so that ``g`` broadcasts against the input."""
    if not keepdims:
        for ax in sorted(axes):
            g = g.reshape(g.shape[:ax] + (1,) + g.shape[ax:])
    return g


def _count(shape, axes):
    count = 1
    for ax in axes:
        count *= shape[ax]
    return count


def sum(a, axis=None, keepdims=False):
    axes = normalize_axis(axis, a.ndim)
    shape = a.shape
    xp = a.xp
    out = a.data.sum(axis=axes, keepdims=keepdims)
    # the adjoint is a read-only broadcast view (no copy); leaves copy it into .grad
    return result(out, (a,), lambda g: (xp.broadcast_to(_expand(g, axes, keepdims), shape),))


def mean(a, axis=None, keepdims=False):
    axes = normalize_axis(axis, a.ndim)
    shape = a.shape
    count = _count(shape, axes)
    xp = a.xp
    out = a.data.mean(axis=axes, keepdims=keepdims)

    def backward(g):
        scaled = g * (1.0 / count) if count else g * float("nan")
        return (xp.broadcast_to(_expand(scaled, axes, keepdims), shape),)

    return result(out, (a,), backward)


def _extreme(a, axis, keepdims, fn):
    axes = normalize_axis(axis, a.ndim)
    ad = a.data
    if ad.size == 0:
        raise ValueError(f"max/min of an empty tensor (shape {a.shape}) is undefined")
    out_keep = fn(ad, axis=axes, keepdims=True)
    out = out_keep if keepdims else out_keep.reshape(tuple(n for i, n in enumerate(ad.shape) if i not in axes))

    def backward(g):
        # ties share the adjoint equally (PyTorch's amax/amin rule)
        share = (ad == out_keep).astype(g.dtype)
        share /= share.sum(axis=axes, keepdims=True)
        return (_expand(g, axes, keepdims) * share,)

    return result(out, (a,), backward)


def max(a, axis=None, keepdims=False):
    return _extreme(a, axis, keepdims, a.xp.max)


def min(a, axis=None, keepdims=False):
    return _extreme(a, axis, keepdims, a.xp.min)


def var(a, axis=None, keepdims=False, ddof=0):
    """Variance (``ddof=0`` biased, as LayerNorm uses; ``ddof=1`` unbiased)."""
    axes = normalize_axis(axis, a.ndim)
    ad = a.data
    count = _count(ad.shape, axes)
    if count - ddof <= 0:
        raise ValueError(f"var over {count} elements with ddof={ddof} is undefined")
    centered = ad - ad.mean(axis=axes, keepdims=True)
    out = (centered * centered).sum(axis=axes, keepdims=keepdims) / (count - ddof)
    scale = 2.0 / (count - ddof)
    # d/dx sum((x - mu)^2) = 2 (x - mu): the mean's own derivative cancels since sum(x - mu) = 0
    return result(out, (a,), lambda g: (_expand(g * scale, axes, keepdims) * centered,))


def softmax_array(x, axis=-1):
    """Softmax on a backend array (max-shifted for stability)."""
    e = get_array_module(x).exp(x - max_keepdims(x, axis))
    e /= sum_keepdims(e, axis)
    return e


def softmax(a, axis=-1):
    normalize_axis(axis, a.ndim)
    out = softmax_array(a.data, axis)

    def backward(g):
        return (out * (g - sum_keepdims(g * out, axis)),)

    return result(out, (a,), backward)


def log_softmax_array(x, axis=-1):
    """log(softmax(x)) on a backend array, computed stably."""
    xp = get_array_module(x)
    shifted = x - max_keepdims(x, axis)
    shifted -= xp.log(sum_keepdims(xp.exp(shifted), axis))
    return shifted


def log_softmax(a, axis=-1):
    normalize_axis(axis, a.ndim)
    out = log_softmax_array(a.data, axis)
    xp = a.xp

    def backward(g):
        return (g - xp.exp(out) * sum_keepdims(g, axis),)

    return result(out, (a,), backward)


def logsumexp(a, axis=-1, keepdims=False):
    """log(sum(exp(a))) over ``axis`` (int or tuple), computed stably."""
    axes = normalize_axis(axis, a.ndim)
    ad = a.data
    xp = a.xp
    m = ad.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or inf) rows: no shift, no nan
    s = xp.log(xp.exp(ad - m).sum(axis=axes, keepdims=True)) + m
    out = s if keepdims else s.reshape(tuple(n for i, n in enumerate(ad.shape) if i not in axes))

    def backward(g):
        return (_expand(g, axes, keepdims) * xp.exp(ad - s),)

    return result(out, (a,), backward)
