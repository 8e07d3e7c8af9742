"""The error function and GELU's forward and backward.

Reference: SciPy's erf (CuPy's on GPUs) and GELU as its formula. Fast (float32 NumPy):
a hand-fitted rational erf evaluated in float64 scratch kept per thread, every pass over
one cache-sized chunk at a time, the chunks split over minigrad's threads.
"""
import math
import threading

import numpy as np

from . import threads
from .dispatch import kernel, numpy_arrays
from ..backend import get_array_module, is_cupy_array

_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT2PI = 1 / math.sqrt(2 * math.pi)


@kernel
def erf(x):
    """The error function on the array's own backend."""
    if is_cupy_array(x):
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(x)
    from scipy.special import erf as scipy_erf

    return scipy_erf(x)


@kernel
def gelu(x):
    """x Phi(x) and Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF."""
    cdf = 0.5 * (1 + erf(x * x.dtype.type(_INV_SQRT2)))
    return (x * cdf).astype(x.dtype, copy=False), cdf


@kernel
def gelu_backward(g, x, cdf):
    """g (Phi(x) + x phi(x)), phi the standard normal density: the adjoint of x Phi(x)."""
    pdf = get_array_module(x).exp(-0.5 * x * x) * x.dtype.type(_INV_SQRT2PI)
    return g * (cdf + x * pdf)


# ------------------------------------------------------------------ fast
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


def _run_chunked(work, size, nbytes):
    """Call ``work(slice)`` on cache-sized chunks of a flat range, split over threads when large."""
    chunks = [slice(s, min(size, s + _CHUNK)) for s in range(0, size, _CHUNK)]
    if threads.parts_for(nbytes) > 1:
        threads.run_items(work, chunks)
    else:
        for sl in chunks:
            work(sl)


@erf.fast
def _erf_fast(x):
    """float32: the rational fit (within 5e-8 of erf, below float32's resolution near 1)."""
    if not numpy_arrays(x, dtype=np.float32):
        return erf.reference(x)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape, np.float32)
    _run_chunked(lambda sl: _erf_rational(flat[sl], out[sl]), flat.size, flat.nbytes)
    return out.reshape(x.shape)


@gelu.fast
def _gelu_fast(x):
    if not numpy_arrays(x, dtype=np.float32):
        return gelu.reference(x)
    flat = np.ascontiguousarray(x).reshape(-1)
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
    return out.reshape(x.shape), cdf.reshape(x.shape)


@gelu_backward.fast
def _gelu_backward_fast(g, x, cdf):
    if not numpy_arrays(g, x, cdf, dtype=np.float32):
        return gelu_backward.reference(g, x, cdf)
    flat = np.ascontiguousarray(x).reshape(-1)
    cdf_flat = np.ascontiguousarray(cdf).reshape(-1)
    gf = np.ascontiguousarray(g).reshape(-1)
    gx = np.empty_like(flat)

    def work(sl):
        xs = flat[sl]
        t = xs * xs
        t *= np.float32(-0.5)
        np.exp(t, out=t)
        t *= xs
        t *= np.float32(_INV_SQRT2PI)                  # x pdf(x)
        t += cdf_flat[sl]
        np.multiply(gf[sl], t, out=gx[sl])             # g (Phi(x) + x pdf(x))

    _run_chunked(work, flat.size, flat.nbytes)
    return gx.reshape(x.shape)
