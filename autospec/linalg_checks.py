"""Input checks and the dtype policy shared by the linalg modules.

Arrays come in as NumPy or CuPy (or minigrad tensors) and leave as float32 when they were
float32 (or narrower floats), float64 otherwise; the "work dtype" of several inputs is
float32 only when all of them are. Non-finite input raises :class:`NonFiniteError` naming
the input, from one ``sum`` over it (a NaN or Inf anywhere makes the sum non-finite) and an
exact count only when that sum is not finite.
"""
import numbers

import numpy as np

from minigrad import Tensor
from minigrad.backend import get_array_module

from .errors import AutoSpecError

SVDVALS_METHODS = ("auto", "exact", "gram", "topk")
GRADIENT_METHODS = ("auto", "direct", "factored", "gram", "topk")

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


class NonFiniteError(AutoSpecError, ValueError):
    """An input to a singular-value routine holds NaN or Inf."""



def as_float_array(x, name):
    """x as a NumPy/CuPy float array (float32 stays float32), with a clear error otherwise."""
    xp = get_array_module(x)
    if isinstance(x, Tensor):
        x = x.data
    try:
        x = xp.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    kind = x.dtype.kind
    if kind == "c":
        raise TypeError(f"{name} is complex ({x.dtype}); only real arrays are supported")
    if kind not in "fiub":
        raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if kind == "f" and x.dtype.itemsize <= 4:
        return x.astype(xp.float32, copy=False), xp
    return x.astype(xp.float64, copy=False), xp


def check_finite(x, name, where):
    """Raise NonFiniteError naming input ``name`` if x holds NaN or Inf (one sum, exact count only then)."""
    xp = get_array_module(x)
    with np.errstate(over="ignore", invalid="ignore"):  # an overflowing sum is checked below
        total = x.sum()
    if x.size == 0 or bool(xp.isfinite(total)):
        return
    bad = int(x.size - int(xp.isfinite(x).sum()))
    if bad:  # else the sum merely overflowed
        raise NonFiniteError(
            f"{where}: input {name!r} contains NaN or Inf ({bad} of {x.size} entries); "
            "its singular values are undefined"
        )


def check_result(s, where):
    """Raise if s (a result, or an intermediate formed from finite inputs) is not finite."""
    xp = get_array_module(s)
    if s.size and not bool(xp.isfinite(s).all()):
        raise NonFiniteError(
            f"{where}: the inputs are finite but an intermediate overflowed "
            "(values too large for the work dtype); rescale them or pass float64 arrays"
        )


def resolve_k(k, bound, where):
    """k as an int in 1..bound (None: bound), with a clear error otherwise."""
    if k is None:
        return bound
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{where}: k must be an int or None, got {k!r}")
    k = int(k)
    if k < 1 or k > bound:
        raise ValueError(f"{where}: k={k} is out of range; expected 1 <= k <= {bound} (the rank bound)")
    return k


def check_method(method, allowed, where):
    """Raise ValueError naming the allowed methods unless ``method`` is one of them."""
    if method not in allowed:
        raise ValueError(f"{where}: unknown method {method!r}; expected one of {', '.join(map(repr, allowed))}")


def work_dtype(*arrays):
    """float32 when every array is float32, else float64: the dtype products run in."""
    xp = get_array_module(arrays[0])
    if all(a.dtype == xp.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def linalg_errors(xp):
    """The exception types by which ``xp.linalg`` reports a failed factorization."""
    errs = (np.linalg.LinAlgError,)
    other = getattr(getattr(xp, "linalg", None), "LinAlgError", None)
    if isinstance(other, type) and issubclass(other, Exception) and other is not np.linalg.LinAlgError:
        errs = errs + (other,)
    return errs


def check_factors(A, D, where):
    """(A2, D2, xp): checked factors of G = A^T D, tied positions flattened into M rows."""
    A, xa = as_float_array(A, "A")
    D, xd = as_float_array(D, "D")
    if xa is not xd:
        raise ValueError(f"{where}: A and D live on different backends (move both to one device)")
    if A.ndim not in (2, 3) or D.ndim not in (2, 3):
        raise ValueError(
            f"{where}: A and D must be (M, features) or (N, P, features) arrays; "
            f"got A {tuple(A.shape)}, D {tuple(D.shape)}"
        )
    if A.ndim != D.ndim or A.shape[:-1] != D.shape[:-1]:
        raise ValueError(
            f"{where}: A and D must share their leading (sample, position) dimensions; "
            f"got A {tuple(A.shape)}, D {tuple(D.shape)}"
        )
    A2 = A.reshape(-1, A.shape[-1])
    D2 = D.reshape(-1, D.shape[-1])
    check_finite(A2, "A", where)
    check_finite(D2, "D", where)
    return A2, D2, xa

