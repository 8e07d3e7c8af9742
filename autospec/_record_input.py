"""Input checks of :mod:`autospec.record`: turn what a user passes to ``Record.append`` into
validated NumPy values, or raise a clear one-line error naming the argument."""
import json
import os
import sys
from collections.abc import Mapping

import numpy as np

from minigrad.backend import to_numpy

QUANTITIES = ("G", "A", "D")


def host(x):
    """A NumPy array from NumPy/CuPy arrays, minigrad Tensors, scalars (CuPy is never imported)."""
    if type(x) is np.ndarray:
        return x
    if hasattr(x, "__cuda_array_interface__") and callable(getattr(x, "get", None)):
        return x.get()  # a CuPy device array, even when minigrad did not import CuPy itself
    return to_numpy(x)


def batch_to_host(values):
    """Copy many CuPy arrays to the host in one transfer (one sync instead of one per array)."""
    cupy = sys.modules.get("cupy")  # loaded whenever CuPy arrays exist; never imported here
    if cupy is None:
        return values
    device = [i for i, v in enumerate(values) if isinstance(v, cupy.ndarray)]
    if len(device) < 2:
        return values
    f64 = cupy.dtype(np.float64)
    parts = [values[i] for i in device]
    try:
        parts = [p if p.ndim == 1 and p.dtype == f64 else p.reshape(-1).astype(f64, copy=False) for p in parts]
        flat = cupy.concatenate(parts).get()
    except (TypeError, ValueError):
        return values  # odd dtypes: the per-array path reports what is wrong
    values = list(values)
    at = 0
    for i in device:
        shape = values[i].shape
        size = values[i].size
        values[i] = flat[at: at + size] if len(shape) == 1 else flat[at: at + size].reshape(shape)
        at += size
    return values


def floats(x, what):
    try:
        return np.asarray(host(x), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a real array or number, got {type(x).__name__} ({exc})") from None


def scalar(x, what):
    if x is None:
        return np.nan
    a = floats(x, what)
    if a.size != 1:
        raise ValueError(f"{what} must be a single number, got an array of shape {a.shape}")
    return float(a.reshape(()))


def check_name(x, what):
    if not isinstance(x, str):
        raise TypeError(f"{what} must be a str, got {type(x).__name__} ({x!r})")
    return str(x)


def check_group(group):
    if group is None:
        return None
    if isinstance(group, str):
        return str(group)
    if isinstance(group, (int, np.integer)) and not isinstance(group, (bool, np.bool_)):
        return str(int(group))
    raise TypeError(f"group must be None (whole batch) or a str label, got {type(group).__name__} ({group!r})")


def check_position(position):
    if position is None:
        return None
    if isinstance(position, (int, np.integer)) and not isinstance(position, (bool, np.bool_)):
        if position < 0:
            raise ValueError(f"position must be a tied position >= 0 (or None for the sum), got {position}")
        return int(position)
    raise TypeError(f"position must be None (sum over positions) or an int, got {type(position).__name__} "
                    f"({position!r})")


def check_quantity(quantity):
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {quantity!r}")
    return str(quantity)


def normalize_key(key):
    if not isinstance(key, tuple) or len(key) != 4:
        raise TypeError(f"spectra keys must be tuples (layer, quantity, group, position), got {key!r}")
    layer, quantity, group, position = key
    layer = check_name(layer, "layer name")
    if not layer:
        raise ValueError("layer name must not be empty")
    return (layer, check_quantity(quantity), check_group(group), check_position(position))


def json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"metadata must be JSON-serializable, but holds a {type(obj).__name__} ({obj!r})")


def as_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    return json.loads(json.dumps(dict(metadata), default=json_default))


def check_labels(labels):
    arr = np.asarray(host(labels))
    if arr.ndim != 1:
        raise ValueError(f"sample group labels must be a 1-D array (one label per sample), got shape {arr.shape}")
    return arr.astype(str)


def choices(values):
    return ", ".join("None" if v is None else repr(v) for v in values) or "(none recorded)"


def check_sample_ids(ids):
    """Dataset indices of a step's samples: a 1-D array of ints >= 0, as int64."""
    arr = np.asarray(host(ids))
    if arr.ndim != 1:
        raise ValueError(f"sample_ids must be a 1-D array (one dataset index per sample), got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TypeError(f"sample_ids must be integer dataset indices, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"sample_ids must be dataset indices >= 0, got {int(arr.min())}")
    return arr.astype(np.int64)
