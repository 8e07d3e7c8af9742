"""Arithmetic with NumPy broadcasting, matmul, pow, abs, clip, maximum/minimum, where."""
import numbers

from ._util import broadcast_shapes, pair, result, unbroadcast
from ..tensor import Tensor, as_tensor


def _elementwise(name, fn, a, b):
    """fn(a, b) on arrays, turning NumPy's broadcasting error into one that names the op."""
    try:
        return fn(a, b)
    except ValueError:
        broadcast_shapes(name, a.shape, b.shape)  # raises the clear error when shapes clash
        raise


def add(a, b):
    a, b = pair(a, b)
    sa, sb = a.shape, b.shape

    def backward(g):
        return (unbroadcast(g, sa) if a.requires_grad else None,
                unbroadcast(g, sb) if b.requires_grad else None)

    return result(_elementwise("add", lambda x, y: x + y, a.data, b.data), (a, b), backward)


def sub(a, b):
    a, b = pair(a, b)
    sa, sb = a.shape, b.shape

    def backward(g):
        return (unbroadcast(g, sa) if a.requires_grad else None,
                -unbroadcast(g, sb) if b.requires_grad else None)

    return result(_elementwise("sub", lambda x, y: x - y, a.data, b.data), (a, b), backward)


def mul(a, b):
    a, b = pair(a, b)
    ad, bd = a.data, b.data

    def backward(g):
        return (unbroadcast(g * bd, ad.shape) if a.requires_grad else None,
                unbroadcast(g * ad, bd.shape) if b.requires_grad else None)

    return result(_elementwise("mul", lambda x, y: x * y, ad, bd), (a, b), backward)


def div(a, b):
    a, b = pair(a, b)
    ad, bd = a.data, b.data
    out = _elementwise("div", lambda x, y: x / y, ad, bd)

    def backward(g):
        ga = unbroadcast(g / bd, ad.shape) if a.requires_grad else None
        gb = unbroadcast(-g * out / bd, bd.shape) if b.requires_grad else None
        return ga, gb

    return result(out, (a, b), backward)


def neg(a):
    return result(-a.data, (a,), lambda g: (-g,))


def _is_scalar(x):
    return isinstance(x, numbers.Number) or (hasattr(x, "shape") and not isinstance(x, Tensor) and x.shape == ())


def pow(a, b):
    """a ** b for tensors or scalars (either side). A scalar exponent keeps ``a``'s dtype."""
    if isinstance(a, Tensor) and _is_scalar(b):
        exponent = float(b)  # a Python scalar: no dtype drift (NumPy scalars would promote float32)
        if exponent.is_integer():
            exponent = int(exponent)
        ad = a.data
        if exponent == 2:
            return result(ad * ad, (a,), lambda g: (g * (ad + ad),))

        def backward(g):
            if exponent == 0:
                return (a.xp.zeros_like(g),)
            return (g * (exponent * ad ** (exponent - 1)),)

        return result(ad ** exponent, (a,), backward)
    a, b = pair(a, b)
    ad, bd = a.data, b.data
    out = _elementwise("pow", lambda x, y: x ** y, ad, bd)
    xp = a.xp

    def backward(g):
        ga = unbroadcast(g * bd * ad ** (bd - 1), ad.shape) if a.requires_grad else None
        gb = None
        if b.requires_grad:
            # d(a^b)/db = a^b log a; taken as 0 where a <= 0 (PyTorch gives 0 at a = 0)
            safe_log = xp.log(xp.where(ad > 0, ad, 1))
            gb = unbroadcast(g * out * safe_log, bd.shape)
        return ga, gb

    return result(out, (a, b), backward)


def abs(a):
    ad = a.data
    xp = a.xp
    return result(xp.abs(ad), (a,), lambda g: (g * xp.sign(ad),))


def clip(a, lo=None, hi=None):
    """Clamp to [lo, hi] (either may be None); the adjoint passes where the value was inside."""
    if lo is None and hi is None:
        raise ValueError("clip needs at least one of lo and hi")
    ad = a.data
    xp = a.xp
    out = ad
    if lo is not None:
        out = xp.maximum(out, float(lo) if ad.dtype.kind == "f" else lo)
    if hi is not None:
        out = xp.minimum(out, float(hi) if ad.dtype.kind == "f" else hi)
    return result(out, (a,), lambda g: (g * (out == ad),))


def _extremum(name, a, b, take_a_fn):
    a, b = pair(a, b)
    xp = a.xp
    ad, bd = a.data, b.data
    out = _elementwise(name, lambda x, y: xp.where(take_a_fn(x, y), x, y), ad, bd)

    def backward(g):
        # ties split the adjoint equally between both sides (PyTorch's rule)
        share_a = take_a_fn(ad, bd).astype(g.dtype)
        share_a[ad == bd] = 0.5
        ga = unbroadcast(g * share_a, ad.shape) if a.requires_grad else None
        gb = unbroadcast(g * (1 - share_a), bd.shape) if b.requires_grad else None
        return ga, gb

    return result(out, (a, b), backward)


def maximum(a, b):
    """Elementwise max; where both are equal each side gets half the adjoint."""
    return _extremum("maximum", a, b, lambda x, y: x >= y)


def minimum(a, b):
    """Elementwise min; where both are equal each side gets half the adjoint."""
    return _extremum("minimum", a, b, lambda x, y: x <= y)


def where(condition, a, b):
    """``a`` where ``condition`` else ``b`` (condition: bool array or tensor, no grad)."""
    a, b = pair(a, b)
    xp = a.xp
    cond = condition.data if isinstance(condition, Tensor) else xp.asarray(condition)
    if cond.dtype != bool:
        raise TypeError(f"where: condition must be boolean, got dtype {cond.dtype}")
    broadcast_shapes("where", cond.shape, a.shape, b.shape)

    def backward(g):
        ga = unbroadcast(xp.where(cond, g, 0), a.shape) if a.requires_grad else None
        gb = unbroadcast(xp.where(cond, 0, g), b.shape) if b.requires_grad else None
        return ga, gb

    return result(xp.where(cond, a.data, b.data), (a, b), backward)


def _matmul_arrays(x, y):
    """x @ y; a batched x against a 2-D y is folded into one GEMM when x is contiguous."""
    if x.ndim > 2 and y.ndim == 2 and x.flags.c_contiguous:
        return (x.reshape(-1, x.shape[-1]) @ y).reshape(x.shape[:-1] + (y.shape[-1],))
    return x @ y


def matmul(a, b):
    """Matrix product with NumPy's rules (1-D operands, batched broadcasting)."""
    a, b = pair(a, b)
    ad, bd = a.data, b.data
    if ad.ndim == 0 or bd.ndim == 0:
        raise ValueError("matmul needs operands with at least one dimension; use * for scalars")
    inner_b = bd.shape[-2 if bd.ndim > 1 else 0]
    if ad.shape[-1] != inner_b:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape} "
                         f"(inner dimensions {ad.shape[-1]} and {inner_b} differ)")
    if ad.ndim > 2 and bd.ndim > 2:
        broadcast_shapes("matmul (batch axes)", ad.shape[:-2], bd.shape[:-2])
    xp = a.xp
    out = _matmul_arrays(ad, bd)

    def backward(g):
        a2 = ad[None, :] if ad.ndim == 1 else ad
        b2 = bd[:, None] if bd.ndim == 1 else bd
        g2 = g  # put back the axes NumPy dropped for 1-D operands (last first: g may be 0-d)
        if bd.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if ad.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = gb = None
        if a.requires_grad:
            ga = _matmul_arrays(g2, xp.swapaxes(b2, -1, -2))
            ga = unbroadcast(ga, a2.shape).reshape(ad.shape)
        if b.requires_grad:
            if a2.ndim == 2 and g2.ndim == 2:
                gb = a2.T @ g2
            elif b2.ndim == 2:  # batched a, shared b: fold the batch into rows (one GEMM)
                gb = a2.reshape(-1, a2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])
            else:
                gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = unbroadcast(gb, b2.shape).reshape(bd.shape)
        return ga, gb

    return result(out, (a, b), backward)


__all__ = ["add", "sub", "mul", "div", "neg", "pow", "abs", "clip", "maximum", "minimum", "where", "matmul",
           "as_tensor"]
