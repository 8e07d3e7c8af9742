"""Sliding-window geometry shared by convolution and pooling: parsing the arguments into a
:class:`~minigrad.kernels.unfold.Window`.

The patches themselves (im2col, ``unfold``) and their adjoint (col2im, ``fold``) are
kernels: :mod:`minigrad.kernels.unfold`.
"""
import numbers

from ..kernels.unfold import Window, output_shape

__all__ = ["Window", "as_padding_pairs", "as_tuple", "output_shape"]


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
