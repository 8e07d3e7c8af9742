"""Helpers shared by the op modules."""
import numbers

import numpy as np

from .. import autograd, backend
from ..tensor import Tensor, as_tensor


def result(data, parents, backward):
    """The output tensor of an op (graph recorded only when some parent requires grad)."""
    if isinstance(data, np.generic):  # NumPy reductions return scalars; tensors hold arrays
        data = np.asarray(data)
    return autograd.make_result(Tensor, data, parents, backward)


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes NumPy broadcasting added or stretched, back to ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def pair(a, b):
    """Two operands as tensors, scalars/arrays taking the tensor operand's dtype and device."""
    if isinstance(a, Tensor):
        b = as_tensor(b, like=a)
    else:
        a = as_tensor(a, like=b)
    if a.device != b.device:
        raise ValueError(f"operands are on different devices ({a.device} and {b.device}): move one with .to()")
    # integer/bool with float: the float dtype wins (PyTorch's rule; NumPy would give int64 + float32 -> float64)
    ka, kb = a.dtype.kind, b.dtype.kind
    if ka in "biu" and kb in "fc":
        a = Tensor.wrap(a.data.astype(b.dtype))
    elif kb in "biu" and ka in "fc":
        b = Tensor.wrap(b.data.astype(a.dtype))
    return a, b


def broadcast_shapes(op, *shapes):
    """The broadcast shape of ``shapes``, or a ValueError naming the op and the shapes."""
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(f"{op}: shapes {', '.join(str(tuple(s)) for s in shapes)} cannot be broadcast together "
                         f"(NumPy broadcasting: trailing sizes must match or be 1)") from None


def normalize_axis(axis, ndim):
    """Axis or tuple of axes as a tuple of non-negative ints (None -> all)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, numbers.Integral):
            raise TypeError(f"axes must be integers, got {a!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(out)


def scatter_add(target, index, values):
    """``target[index] += values`` in place, repeated indices adding up.

    NumPy: ``np.add.at``. CuPy: ``cupy.add.at`` (CuPy >= 13), else ``cupyx.scatter_add``
    (the older spelling, deprecated since).
    """
    if backend.is_cupy_array(target):
        cp = backend.get_array_module(target)
        add_at = getattr(cp.add, "at", None)
        if add_at is not None:
            add_at(target, index, values)
        else:  # pragma: no cover - CuPy < 13
            import cupyx

            cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)
