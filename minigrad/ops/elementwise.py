"""Elementwise functions: exp, log, sqrt, relu, tanh, sigmoid, gelu."""
import math

from ._util import result
from .. import backend


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
    out = a.xp.maximum(ad, 0)
    return result(out, (a,), lambda g: (g * (ad > 0),))


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


def erf(x):
    """The error function on the array's own backend."""
    if backend.is_cupy_array(x):
        from cupyx.scipy.special import erf as cupy_erf

        return cupy_erf(x)
    from scipy.special import erf as scipy_erf

    return scipy_erf(x)


_INV_SQRT2 = 1 / math.sqrt(2)
_INV_SQRT2PI = 1 / math.sqrt(2 * math.pi)


def gelu(a):
    """Exact GELU x * Phi(x) (PyTorch's default, approximate='none')."""
    x = a.data
    xp = a.xp
    cdf = 0.5 * (1 + erf(x * x.dtype.type(_INV_SQRT2)))
    out = x * cdf

    def backward(g):
        pdf = xp.exp(-0.5 * x * x) * x.dtype.type(_INV_SQRT2PI)
        return (g * (cdf + x * pdf),)

    return result(out.astype(x.dtype, copy=False), (a,), backward)


__all__ = ["exp", "log", "sqrt", "relu", "tanh", "sigmoid", "gelu", "erf", "sigmoid_array"]
