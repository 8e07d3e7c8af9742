"""One switch between the reference kernels and the fast ones.

Every kernel is written first as its reference: a few lines of the array module
(NumPy or CuPy) that read as the maths. A fast version may be registered beside
it; which one runs is decided here, in one place:

    mg.use_kernels("reference")          # for the rest of the process
    with mg.use_kernels("reference"):    # or for a block
        loss.backward()

The environment variable ``MINIGRAD_KERNELS=reference|fast`` sets the start value
(default ``fast``). A fast version that does not apply to its arguments (a CuPy
array, a dtype it does not handle) hands them on to the reference.
"""
import os
import threading

import numpy as np

PATHS = ("reference", "fast")
ENVIRONMENT_VARIABLE = "MINIGRAD_KERNELS"


def _path_from_environment():
    value = os.environ.get(ENVIRONMENT_VARIABLE, "fast").strip().lower() or "fast"
    if value not in PATHS:
        raise ValueError(f"{ENVIRONMENT_VARIABLE}={value!r} is not a kernel path: use one of {', '.join(PATHS)}")
    return value


_state = {"path": _path_from_environment()}
_lock = threading.Lock()


def active_kernels():
    """The kernel path in use: "reference" or "fast"."""
    return _state["path"]


class use_kernels:  # noqa: N801 - reads as a function call, also a context manager
    """Switch every op to the "reference" or the "fast" kernels.

    Takes effect at once; used as a context manager, the previous path comes back on exit.
    """

    def __init__(self, path):
        if path not in PATHS:
            raise ValueError(f"unknown kernel path {path!r}: use one of {', '.join(PATHS)}")
        with _lock:
            self.previous = _state["path"]
            _state["path"] = path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state["path"] = self.previous
        return False


class Kernel:
    """A primitive with its reference implementation and, optionally, a fast one.

    Calling it runs the fast version when the fast path is active and one is
    registered, else the reference. Register the fast one with ``@name.fast``.
    """

    def __init__(self, reference):
        self.reference = reference
        self.fast_version = None
        self.__name__ = reference.__name__
        self.__qualname__ = reference.__qualname__
        self.__doc__ = reference.__doc__
        self.__module__ = reference.__module__
        self.__wrapped__ = reference

    def fast(self, implementation):
        """Decorator: register ``implementation`` as this kernel's fast version."""
        self.fast_version = implementation
        return self

    def __call__(self, *args, **kwargs):
        if self.fast_version is not None and _state["path"] == "fast":
            return self.fast_version(*args, **kwargs)
        return self.reference(*args, **kwargs)

    def __repr__(self):
        return f"<kernel {self.__module__}.{self.__name__}{' (+fast)' if self.fast_version else ''}>"


def numpy_arrays(*arrays, dtype=None, floats=False):
    """True when every array (None skipped) is a NumPy array, of ``dtype`` when given and of a
    float dtype with ``floats``. A fast version checks this first and hands anything else (CuPy
    arrays, dtypes it does not handle) to its reference."""
    for a in arrays:
        if a is None:
            continue
        if not isinstance(a, np.ndarray) or (floats and a.dtype.kind != "f") or (dtype is not None and a.dtype != dtype):
            return False
    return True


def kernel(reference):
    """Decorator: make ``reference`` (plain array-module maths) a dispatchable kernel."""
    return Kernel(reference)
