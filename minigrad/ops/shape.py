"""Shape ops: reshape, transpose/permute, squeeze, indexing, concatenate/stack, device moves."""
import numbers

import numpy as np

from ._util import normalize_axis, result, scatter_add
from .. import backend
from ..tensor import Tensor


def reshape(a, shape):
    shape = (shape,) if isinstance(shape, numbers.Integral) else tuple(shape)
    old = a.shape
    try:
        out = a.data.reshape(shape)
    except ValueError:
        raise ValueError(f"cannot reshape a tensor of shape {old} ({a.size} elements) into shape {shape}") from None
    return result(out, (a,), lambda g: (g.reshape(old),))


def flatten(a, start_axis=0, end_axis=-1):
    if a.ndim == 0:
        return reshape(a, (1,))
    s, e = normalize_axis((start_axis, end_axis), a.ndim)
    shape = a.shape
    new = shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:]
    return reshape(a, new)


def transpose(a, axes=None):
    """Permute axes (reverse them when ``axes`` is None)."""
    if axes is None:
        axes = tuple(reversed(range(a.ndim)))
    given = tuple(axes)
    try:
        axes = normalize_axis(given, a.ndim)  # rejects out-of-range and repeated axes
    except (ValueError, TypeError):
        axes = None
    if axes is None or len(axes) != a.ndim:
        raise ValueError(f"axes {given} are not a permutation of the {a.ndim} axes of a tensor of shape {a.shape}")
    inverse = tuple(int(i) for i in np.argsort(axes))
    return result(a.data.transpose(axes), (a,), lambda g: (g.transpose(inverse),))


def swapaxes(a, i, j):
    axes = list(range(a.ndim))
    i, j = normalize_axis((i, j), a.ndim)
    axes[i], axes[j] = axes[j], axes[i]
    return transpose(a, axes)


def squeeze(a, axis=None):
    if axis is None:
        new = tuple(n for n in a.shape if n != 1)
    else:
        axes = normalize_axis(axis, a.ndim)
        for ax in axes:
            if a.shape[ax] != 1:
                raise ValueError(f"cannot squeeze axis {ax} of size {a.shape[ax]} (shape {a.shape})")
        new = tuple(n for i, n in enumerate(a.shape) if i not in axes)
    return reshape(a, new)


def unsqueeze(a, axis):
    nd = a.ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"axis {axis} out of range for unsqueeze of a {a.ndim}-D tensor")
    axis %= nd
    return reshape(a, a.shape[:axis] + (1,) + a.shape[axis:])


def _raw_index(index, xp):
    """The index with tensors replaced by their arrays and lists/arrays moved to ``xp``."""
    def raw(i):
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, (list, np.ndarray)):
            i = xp.asarray(i)  # (a NumPy index array stays itself on NumPy)
        return i

    if isinstance(index, tuple):
        return tuple(raw(i) for i in index)
    return raw(index)


def _has_integer_array(index):
    """True when the index holds an integer array, whose entries may repeat."""
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "dtype") and i.dtype.kind in "iu" and i.ndim > 0 for i in items)


def getitem(a, index):
    """Indexing and slicing (basic and advanced); adjoints scatter back, repeats accumulate."""
    xp = a.xp
    index = _raw_index(index, xp)
    ad = a.data
    try:
        out = ad[index]
    except IndexError as exc:
        raise IndexError(f"index {index!r} is invalid for a tensor of shape {a.shape}: {exc}") from None
    repeats_possible = _has_integer_array(index)

    def backward(g):
        full = xp.zeros(ad.shape, dtype=g.dtype)
        if repeats_possible:
            scatter_add(full, index, g)
        else:  # slices, integers, None, Ellipsis, boolean masks: every element picked at most once
            full[index] = g
        return (full,)

    return result(out, (a,), backward)


def _tensor_list(op, tensors):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op} needs at least one tensor")
    bad = [type(t).__name__ for t in tensors if not isinstance(t, Tensor)]
    if bad:
        raise TypeError(f"{op} takes a sequence of Tensors, got {bad[0]}: wrap arrays with minigrad.tensor()")
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"{op}: tensors are on different devices {sorted(devices)}")
    return tensors


def concatenate(tensors, axis=0):
    """Join tensors along an existing axis."""
    tensors = _tensor_list("concatenate", tensors)
    xp = tensors[0].xp
    ax = normalize_axis(axis, tensors[0].ndim)[0]
    for t in tensors[1:]:
        if t.ndim != tensors[0].ndim or any(t.shape[i] != tensors[0].shape[i] for i in range(t.ndim) if i != ax):
            raise ValueError(f"cannot concatenate shapes {[x.shape for x in tensors]} along axis {axis}: "
                             f"all sizes but the axis' must match")
    out = xp.concatenate([t.data for t in tensors], axis=ax)
    bounds = [int(b) for b in np.cumsum([t.shape[ax] for t in tensors])[:-1]]
    return result(out, tuple(tensors), lambda g: tuple(xp.split(g, bounds, axis=ax)))


def stack(tensors, axis=0):
    """Join tensors along a new axis."""
    tensors = _tensor_list("stack", tensors)
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack needs tensors of one shape, got {sorted(shapes)}")
    return concatenate([unsqueeze(t, axis) for t in tensors], axis=axis)


def to_device_dtype(a, device=None, dtype=None):
    """Move/cast a tensor; the adjoint is moved/cast back. Casting to a non-float dtype detaches."""
    data = a.data
    src_dev, src_dtype = a.device, a.dtype
    if device is not None:
        data = backend.to_device(data, device)
    if dtype is not None:
        data = data.astype(np.dtype(dtype), copy=False)
    if data is a.data:
        return a
    if data.dtype.kind not in "fc":
        return Tensor.wrap(data)

    def backward(g):
        return (backend.to_device(g, src_dev).astype(src_dtype, copy=False),)

    return result(data, (a,), backward)
