"""Array backends: NumPy by default, CuPy on ``device="cuda"``.

Every op is written once against the array module returned here (chainer's
``get_array_module`` idea). CuPy is imported only when a GPU is asked for.
"""
import os

import numpy as np

_cupy = None


class DeviceError(RuntimeError):
    """Raised when a device is unknown or unavailable."""


def _import_cupy():
    global _cupy
    if _cupy is None:
        try:
            import cupy
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise DeviceError(
                "device 'cuda' needs CuPy, which is not installed: "
                "pip install 'autospec[gpu]' (or a cupy-cudaXX wheel matching your CUDA)"
            ) from exc
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # pragma: no cover
            raise DeviceError(f"device 'cuda' was asked for but no usable GPU was found ({exc})") from exc
        if n < 1:  # pragma: no cover
            raise DeviceError("device 'cuda' was asked for but no GPU is visible")
        _cupy = cupy
    return _cupy


def normalize_device(device):
    """Map ``None``/"cpu"/"cuda"/"cuda:0"/"gpu" to "cpu" or "cuda"."""
    if device is None:
        return default_device()
    d = str(device).lower()
    if d in ("cpu", "numpy"):
        return "cpu"
    if d in ("cuda", "gpu", "cupy") or d.startswith("cuda:"):
        return "cuda"
    raise DeviceError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def default_device():
    """The device new tensors go to: ``MINIGRAD_DEVICE`` (cpu or cuda), else cpu."""
    env = os.environ.get("MINIGRAD_DEVICE", "cpu")
    if env.lower() in ("", "cpu", "numpy"):
        return "cpu"
    try:
        return normalize_device(env)
    except DeviceError:
        raise DeviceError(f"environment variable MINIGRAD_DEVICE={env!r} is not a device: "
                          f"set it to 'cpu' or 'cuda' (or unset it)") from None


def xp_for(device):
    """Array module (numpy or cupy) for a device name."""
    if normalize_device(device) == "cuda":
        return _import_cupy()
    return np


def is_cupy_array(x):
    return _cupy is not None and isinstance(x, _cupy.ndarray)


_tensor_types = ()  # (Tensor,) once minigrad/tensor.py, which builds on this module, has defined it


def register_tensor_type(cls):
    """Let the helpers below take a Tensor wherever they take an array (called by minigrad/tensor.py)."""
    global _tensor_types
    _tensor_types = (cls,)


def _raw(x):
    """The backend array behind a Tensor, or ``x`` itself."""
    return x.data if isinstance(x, _tensor_types) else x


def get_array_module(x):
    """numpy or cupy, whichever ``x`` (array or Tensor) lives on."""
    return _cupy if is_cupy_array(_raw(x)) else np


def device_of(x):
    """"cuda" for a CuPy array, else "cpu"."""
    return "cuda" if is_cupy_array(_raw(x)) else "cpu"


def to_numpy(x):
    """A host NumPy array from a NumPy or CuPy array (or Tensor)."""
    x = _raw(x)
    if is_cupy_array(x):
        return _cupy.asnumpy(x)
    return np.asarray(x)


def to_device(x, device):
    """Move an array to ``device`` ("cpu" or "cuda"), copying only when needed."""
    if normalize_device(device) == "cuda":
        cp = _import_cupy()
        return x if isinstance(x, cp.ndarray) else cp.asarray(x)
    return to_numpy(x)


def synchronize(device="cpu"):
    """Wait for queued GPU work (no-op on CPU); for honest timings."""
    if normalize_device(device) == "cuda":
        _import_cupy().cuda.Device().synchronize()
