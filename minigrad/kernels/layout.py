"""Memory layout of new arrays: laid out like an existing one.

Conv outputs are channel-major in memory ((C, N, *S) seen as (N, C, *S)); arrays computed
from them run elementwise passes several times faster when they share that order.
"""
from ..backend import get_array_module


def memory_order(a):
    """a's axes from outermost to innermost in memory."""
    return sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]))


def empty_like_order(a, shape=None, dtype=None, fill=None):
    """An array of ``shape`` (default a's) whose axes lie in memory in a's order: uninitialized,
    or filled with ``fill``."""
    xp = get_array_module(a)
    shape = a.shape if shape is None else tuple(shape)
    dtype = a.dtype if dtype is None else dtype
    order = memory_order(a)
    stored = tuple(shape[i] for i in order)
    buf = xp.empty(stored, dtype=dtype) if fill is None else xp.full(stored, fill, dtype=dtype)
    return buf.transpose(tuple(order.index(i) for i in range(a.ndim)))


def in_layout_of(g, a):
    """``g`` laid out in memory like ``a`` (same shape): itself when it already is, else one copy."""
    if g.ndim < 2 or memory_order(g) == memory_order(a):
        return g
    out = empty_like_order(a, dtype=g.dtype)
    out[...] = g
    return out
