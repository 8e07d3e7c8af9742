"""Elementwise functions: exp, log, sqrt, relu, tanh, sigmoid, gelu.

Large NumPy arrays are worked on in chunks split over minigrad's threads
(:mod:`minigrad.kernels.threads`); CuPy arrays in one go.
"""
import math
import threading

import numpy as np

from ._util import result
from .. import backend
from ..kernels import threads


def exp(a):
    out = a.xp.exp(a.data)
    return result(out, (a,), lambda g: (g * out,))


def log(a):
    ad = a.data
    return result(a.xp.log(ad), (a,), lambda g: (g / ad,))


def sqrt(a):
    out = a.xp.sqrt(a.data)
    return result(out, (a,), lambda g: (g / (2 * out),))


def relu(a):
    ad = a.data
    xp = a.xp
    if xp is not np:
        return result(xp.maximum(ad, 0), (a,), lambda g: (g * (ad > 0),))
    out = threads.elementwise(lambda o, x: np.maximum(x, 0, out=o), threads.empty_like_layout(ad), ad)

    def backward(g):
        # g where the input was positive, else 0 (as g * (x > 0), in one pass without the mask array)
        return (threads.elementwise(lambda o, gg, x: np.multiply(gg, x > 0, out=o),
                                     threads.empty_like_layout(ad, g.dtype), g, ad),)

    return result(out, (a,), backward)


def tanh(a):
    out = a.xp.tanh(a.data)
    return result(out, (a,), lambda g: (g * (1 - out * out),))


def sigmoid_array(x):
    """Numerically stable logistic function on a backend array."""
    xp = backend.get_array_module(x)
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid(a):
    out = sigmoid_array(a.data)
    return result(out, (a,), lambda g: (g * out * (1 - out),))


# erf(x) ~ x P(x^2) / Q(x^2) on |x| <= 3.9 (beyond it erf rounds to +-1 in float32): a (5, 5)
# rational fit (weighted least squares towards minimax), evaluated in float64, within 5e-8 of erf.
_ERF_P = (1.1283790328601764, 0.19193241151311086, 0.05296562297095941, 0.0038364569159051007,
          0.0002874393654256287, 2.0503473780484285e-06)
_ERF_Q = (1.0, 0.5034274538046698, 0.11475450049331351, 0.015108381515633672,
          0.0011816163914941276, 3.822938176376789e-05)
_ERF_CLIP = 3.9
# elements per chunk: big enough that the per-call overhead (and, over threads, the GIL hand-offs
# between NumPy calls) stays small, small enough that the float64 temporaries stay in cache
_CHUNK = 1 << 16
_scratch = threading.local()


def _float64_scratch(size):
    """Four float64 work arrays of at least ``size`` elements, kept per thread and reused."""
    bufs = getattr(_scratch, "bufs", None)
    if bufs is None or bufs[0].size < size:
        bufs = _scratch.bufs = tuple(np.empty(max(size, _CHUNK)) for _ in range(4))
    return tuple(b[:size] for b in bufs)


def _erf_rational(x, out):
    """out[:] = erf(x) for 1-D float32 arrays (the rational fit, in float64 temporaries)."""
    v, t, p, q = _float64_scratch(x.size)
    np.clip(x, -_ERF_CLIP, _ERF_CLIP, out=v)
    np.multiply(v, v, out=t)
    np.multiply(t, _ERF_P[5], out=p)
    np.multiply(t, _ERF_Q[5], out=q)
    for cp, cq in zip(_ERF_P[4:0:-1], _ERF_Q[4:0:-1]):
        p += cp
        p *= t
        q += cq
        q *= t
    p += _ERF_P[0]
    q += _ERF_Q[0]
    p *= v
    np.divide(p, q, out=out, casting="same_kind")


def _flat_chunks(size):
    return [slice(s, min(size, s + _CHUNK)) for s in range(0, size, _CHUNK)]


def _run_chunked(work, size, nbytes):
    """Call ``work(slice)`` on cache-sized chunks of a flat range, split over threads when large."""
    chunks = _flat_chunks(size)
    if threads.parts_for(nbytes) > 1:
        threads.run_items(work, chunks)
    else:
        for sl in chunks:
            work(sl)


def erf(x):
    """The error function on the array's own backend.

    float32 NumPy arrays use a fast rational approximation (within 5e-8 of the exact
    value, below float32's resolution near 1); other dtypes use SciPy (CuPy on GPUs).
    """
    if backend.is_cupy_array(x):
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(x)
    if x.dtype == np.float32:
        flat = np.ascontiguousarray(x).reshape(-1)
        out = np.empty(flat.shape, np.float32)
        _run_chunked(lambda sl: _erf_rational(flat[sl], out[sl]), flat.size, flat.nbytes)
        return out.reshape(x.shape)
    from scipy.special import erf as scipy_erf

    return scipy_erf(x)


_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT2PI = 1 / math.sqrt(2 * math.pi)


def _gelu_generic(a):
    x = a.data
    xp = a.xp
    cdf = 0.5 * (1 + erf(x * x.dtype.type(_INV_SQRT2)))
    out = x * cdf

    def backward(g):
        pdf = xp.exp(-0.5 * x * x) * x.dtype.type(_INV_SQRT2PI)
        return (g * (cdf + x * pdf),)

    return result(out.astype(x.dtype, copy=False), (a,), backward)


def _gelu_float32_cpu(a):
    """GELU on float32 NumPy data: every pass over one cache-sized chunk at a time, chunks over threads."""
    x = np.ascontiguousarray(a.data)
    flat = x.reshape(-1)
    cdf = np.empty_like(flat)
    out = np.empty_like(flat)
    half = np.float32(0.5)

    def forward(sl):
        c = cdf[sl]
        _erf_rational(flat[sl] * np.float32(_INV_SQRT2), c)
        c *= half
        c += half
        np.multiply(flat[sl], c, out=out[sl])

    _run_chunked(forward, flat.size, flat.nbytes)

    def backward(g):
        gf = np.ascontiguousarray(g, dtype=np.float32).reshape(-1)
        gx = np.empty_like(flat)

        def work(sl):
            xs = flat[sl]
            t = xs * xs
            t *= np.float32(-0.5)
            np.exp(t, out=t)
            t *= xs
            t *= np.float32(_INV_SQRT2PI)                  # x pdf(x)
            t += cdf[sl]
            np.multiply(gf[sl], t, out=gx[sl])             # g (Phi(x) + x pdf(x))

        _run_chunked(work, flat.size, flat.nbytes)
        return (gx.reshape(x.shape),)

    return result(out.reshape(x.shape), (a,), backward)


def gelu(a):
    """Exact GELU x * Phi(x) (PyTorch's default, approximate='none')."""
    if a.xp is np and a.data.dtype == np.float32:
        return _gelu_float32_cpu(a)
    return _gelu_generic(a)


__all__ = ["exp", "log", "sqrt", "relu", "tanh", "sigmoid", "gelu", "erf", "sigmoid_array"]
