"""Elementwise functions: exp, log, sqrt, relu, tanh, sigmoid, gelu.

Each op is its derivative rule; relu and GELU call kernels (minigrad/kernels/elementwise.py,
erf.py) whose fast versions split large arrays over threads.
"""
from ._util import result
from .. import backend
from ..kernels import elementwise as kernels
from ..kernels.erf import erf, gelu as gelu_kernel, gelu_backward


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
    """max(x, 0); its adjoint passes g where x > 0."""
    x = a.data
    return result(kernels.relu(x), (a,), lambda g: (kernels.relu_backward(g, x),))


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


def gelu(a):
    """Exact GELU x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (PyTorch's default, approximate='none');
    its adjoint is g (Phi(x) + x phi(x)), phi the standard normal density."""
    x = a.data
    out, cdf = gelu_kernel(x)
    return result(out, (a,), lambda g: (gelu_backward(g, x, cdf),))


__all__ = ["exp", "log", "sqrt", "relu", "tanh", "sigmoid", "gelu", "erf", "sigmoid_array"]
