"""Singular values of matrices and of weight gradients G = A^T D, backend-generic.

Everything here runs on the backend of its input (NumPy or CuPy, via
``minigrad.backend.get_array_module``) and returns a float64 array on that backend,
in descending order.

Precision policy (the same for every function):

* The "work dtype" is float32 when every input is float32 (or float16), float64 otherwise.
* Steps that are backward stable -- matrix products, QR, the matrix-vector products of the
  top-k iteration -- run in the work dtype. Their error is about eps(work) * ||A|| ||D||,
  the rounding level the float32 data already carry, so float32 BLAS costs no accuracy
  the data could support.
* Steps that square the condition number -- Gram matrices -- are always formed in float64.
  Products of two float32 numbers are exact in float64, so for float32 inputs the Gram path
  is as accurate as the data (see ``svdvals``).
* Final small problems (SVD of a reduced core, eigenvalues of a Gram matrix, Rayleigh-Ritz)
  run in float64. ``method="exact"`` upcasts the whole matrix to float64: it returns the
  singular values of the matrix as given, to float64 accuracy.

Noise floors (:func:`noise_floor`, :func:`noise_floor_from`, :func:`gradient_noise_floor`): the
level below which the values of each route are numerically zero, from the data's dtype and,
for G, the size of its factors (see :func:`noise_floor_from` for the argument).

Non-finite input raises :class:`NonFiniteError` naming the input. The check is one
``sum`` over each input (a NaN or Inf anywhere makes the sum non-finite), with an exact
``isfinite`` count only when that sum is not finite; it costs one pass over the data,
less than any method here.
"""
import math
import numbers
import warnings
from typing import Callable, NamedTuple

import numpy as np

from minigrad.backend import get_array_module, to_numpy

from .errors import AutoSpecError

__all__ = [
    "NonFiniteError",
    "ConvergenceWarning",
    "Operator",
    "TopKResult",
    "TopKTracker",
    "svdvals",
    "gradient_svdvals",
    "gradient_operator",
    "topk_svdvals",
    "choose_svdvals_method",
    "choose_gradient_method",
    "eig_to_svdvals",
    "largest_svdval_estimate",
    "power_steps",
    "random_unit_vector",
    "noise_floor",
    "noise_floor_from",
    "gradient_noise_floor",
    "data_eps",
    "coarser_dtype",
]

SVDVALS_METHODS = ("auto", "exact", "gram", "topk")
GRADIENT_METHODS = ("auto", "direct", "factored", "gram", "topk")

_EPS64 = float(np.finfo(np.float64).eps)
_EPS32 = float(np.finfo(np.float32).eps)

# Default top-k tolerances: relative residual per singular triplet (see topk_svdvals).
_TOPK_TOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4}
_TOPK_MAX_ITER = 100
_KRYLOV_DEPTH = 4  # Krylov blocks per restart cycle (see topk_svdvals)
_WARM_DEPTH = 2  # Krylov blocks in the first cycle of a warm start (one more in the next)
_WARM_CYCLES = 2  # cycles of a warm start before the full depth is used
_AUTO_TOPK_COLD_ITERS = 5  # iterations the cost model assumes for a cold top-k start
AUTO_TOPK_WARM_ITERS = 2  # ... and for a warm start on a matrix that changed little (at least); public:
# autospec.spectra costs its warm-started trackers with it


class NonFiniteError(AutoSpecError, ValueError):
    """An input to a singular-value routine holds NaN or Inf."""


class ConvergenceWarning(RuntimeWarning):
    """The top-k iteration stopped at max_iter before every value met its tolerance."""


class Operator(NamedTuple):
    """A matrix-free linear map of ``shape`` (m, n) on backend ``xp``.

    ``matmat(X)`` maps an (n, b) block to (m, b); ``rmatmat(Y)`` maps (m, b) to (n, b)
    (the transpose). Blocks are passed in ``dtype``.
    """

    matmat: Callable
    rmatmat: Callable
    shape: tuple
    dtype: np.dtype
    xp: object


class TopKResult(NamedTuple):
    """Result of :func:`topk_svdvals`.

    values: (k,) float64, descending. basis: (n, b) orthonormal right singular subspace
    estimate (the top-b Ritz vectors, b = k + oversample), to pass as ``init`` next time.
    iterations: Rayleigh-Ritz steps used. converged: every top-k residual met its tolerance.
    residuals: (k,) float64, ||G^T u_i - s_i v_i|| of each returned triplet.
    """

    values: object
    basis: object
    iterations: int
    converged: bool
    residuals: object


# --------------------------------------------------------------------------- validation


def _as_array(x, name):
    """x as a NumPy/CuPy float array (float32 stays float32), with a clear error otherwise."""
    xp = get_array_module(x)
    if getattr(x, "_is_minigrad_tensor", False):
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


def _check_finite(x, name, where):
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


def _check_result(s, where):
    """Raise if s (a result, or an intermediate formed from finite inputs) is not finite."""
    xp = get_array_module(s)
    if s.size and not bool(xp.isfinite(s).all()):
        raise NonFiniteError(
            f"{where}: the inputs are finite but an intermediate overflowed "
            "(values too large for the work dtype); rescale them or pass float64 arrays"
        )


def _resolve_k(k, bound, where):
    if k is None:
        return bound
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{where}: k must be an int or None, got {k!r}")
    k = int(k)
    if k < 1 or k > bound:
        raise ValueError(f"{where}: k={k} is out of range; expected 1 <= k <= {bound} (the rank bound)")
    return k


def _check_method(method, allowed, where):
    if method not in allowed:
        raise ValueError(f"{where}: unknown method {method!r}; expected one of {', '.join(map(repr, allowed))}")


def _work_dtype(*arrays):
    xp = get_array_module(arrays[0])
    if all(a.dtype == xp.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _empty(xp):
    return xp.zeros(0, dtype=xp.float64)


# --------------------------------------------------------------------------- exact SVD


def _host_svdvals(M, tried_gesdd):
    """Singular values of a host float64 array, falling back from gesdd to gesvd."""
    if not tried_gesdd:
        try:
            s = np.linalg.svd(M, compute_uv=False)
            if np.isfinite(s).all():
                return s
        except np.linalg.LinAlgError:
            pass
    import scipy.linalg

    try:
        return scipy.linalg.svd(M, compute_uv=False, lapack_driver="gesvd", check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise np.linalg.LinAlgError(
            f"SVD did not converge for a {M.shape[0]}x{M.shape[1]} matrix with either LAPACK driver "
            "(gesdd, gesvd)"
        ) from exc


def _linalg_errors(xp):
    errs = (np.linalg.LinAlgError,)
    other = getattr(getattr(xp, "linalg", None), "LinAlgError", None)
    if isinstance(other, type) and issubclass(other, Exception) and other is not np.linalg.LinAlgError:
        errs = errs + (other,)
    return errs


def _exact_svdvals(M):
    """All min(m, n) singular values of M in float64, descending, on M's backend.

    LAPACK gesdd (via xp.linalg.svd) first; if it reports non-convergence (or, on CuPy,
    returns non-finite values, which is how cuSOLVER fails), recompute on the host,
    ending with scipy's gesvd driver (QR iteration: slower, but more robust).
    """
    xp = get_array_module(M)
    M64 = M.astype(xp.float64, copy=False)
    try:
        s = xp.linalg.svd(M64, compute_uv=False)
        if bool(xp.isfinite(s).all()):
            return s
    except _linalg_errors(xp):
        pass
    return xp.asarray(_host_svdvals(to_numpy(M64), tried_gesdd=xp is np))


def _thin_svd(Y):
    """Thin SVD (U, s, Vt) of a float64 (m, d) array; the small factor is done on the host."""
    xp = get_array_module(Y)
    if xp is np:
        try:
            return np.linalg.svd(Y, full_matrices=False)
        except np.linalg.LinAlgError:
            pass
    # QR on the backend, SVD of the small triangular factor on the host (robust and, on a
    # GPU, much faster than cuSOLVER's SVD for these sizes).
    Q, R = xp.linalg.qr(Y)
    R = to_numpy(R)
    try:
        u, s, vt = np.linalg.svd(R)
    except np.linalg.LinAlgError:
        import scipy.linalg

        u, s, vt = scipy.linalg.svd(R, lapack_driver="gesvd", check_finite=False)
    return Q @ xp.asarray(u), xp.asarray(s), xp.asarray(vt)


# --------------------------------------------------------------------------- Gram path


def eig_to_svdvals(C, k):
    """sqrt of the k largest eigenvalues of the symmetric PSD float64 matrix C."""
    xp = get_array_module(C)
    w = xp.linalg.eigvalsh(C)[::-1][:k]
    return xp.sqrt(xp.maximum(w, 0.0))


def _gram_svdvals(X, k):
    xp = get_array_module(X)
    X64 = X.astype(xp.float64, copy=False)
    C = X64.T @ X64 if X.shape[0] >= X.shape[1] else X64 @ X64.T  # smaller side, syrk
    return eig_to_svdvals(C, k)


# --------------------------------------------------------------------------- top-k


def _orthonormalize(X, against=None, dtype=None):
    """Orthonormal basis of span(X) orthogonal to the orthonormal columns of ``against``.

    SVQB (Stathopoulos & Wu 2002): scale the columns to unit length, take the eigenvectors
    of their float64 Gram matrix and drop directions whose eigenvalue is at rounding level
    (nearly dependent columns, or columns that were inside span(against)). Done twice with
    the projection ("twice is enough"). Only matrix products and a small eigh, so much
    faster than Householder QR for tall thin blocks. May return fewer columns than X has.
    A well-conditioned block (the usual case: random or warm-start columns) takes the
    Cholesky factor of the same Gram matrix instead of its eigenvectors (CholeskyQR2,
    several times cheaper than a small eigh); see :func:`_cholesky_inverse`.
    """
    xp = get_array_module(X)
    dtype = X.dtype if dtype is None else dtype
    eps = _EPS32 if dtype == np.float32 else _EPS64
    for _ in range(2):
        if against is not None:
            X = X - against @ (against.T @ X)
        norms = xp.linalg.norm(X, axis=0)
        X = X[:, norms > 0] / norms[norms > 0]
        if X.shape[1] == 0:
            return X
        X64 = X.astype(xp.float64, copy=False)
        C = X64.T @ X64
        T = _cholesky_inverse(C, 1600 * X.shape[1] * eps)
        if T is None:
            lam, W = xp.linalg.eigh(C)
            keep = lam > 16 * X.shape[1] * eps * float(lam[-1])
            T = W[:, keep] / xp.sqrt(lam[keep])
        X = X @ T.astype(dtype, copy=False)
    return X


def _cholesky_inverse(C, min_ratio):
    """L^-T for C = L L^T (so X L^-T has orthonormal columns when C = X^T X), or None.

    None unless C is safely positive definite: Cholesky succeeds and the bound
    lambda_min / lambda_max >= 1 / (||L^-1||_1 ||L^-1||_inf ||C||_inf) (lambda_min =
    1 / ||L^-1||_2^2, and Gershgorin for lambda_max) exceeds ``min_ratio``, set 100x above
    the level at which SVQB would drop a direction, so that both give the same span.
    """
    xp = get_array_module(C)
    try:
        L = xp.linalg.cholesky(C)
    except _linalg_errors(xp):
        return None
    Linv = xp.linalg.inv(L)  # CuPy signals a failed factorization with NaN, caught here
    absinv = xp.abs(Linv)
    bound = float(absinv.sum(axis=0).max()) * float(absinv.sum(axis=1).max()) * float(xp.abs(C).sum(axis=1).max())
    if not math.isfinite(bound) or bound * min_ratio >= 1.0:
        return None
    return Linv.T


def _rayleigh_ritz(images, b, gram_ok):
    """Top-b Ritz values of G on span(basis), from images = G @ basis (float64, m x d).

    Returns (W, s, GV, U): Ritz vectors basis @ W (W: d x b), values s, their images
    GV = G basis W, and left vectors U (None on the fast path).
    Fast path: eigenvectors W of the d x d Gram images^T images (a syrk and a small eigh),
    values recomputed as ||images w_i|| (accurate to eps * s_1, unlike the eigenvalues). Its
    vectors are accurate to ~eps64 (s_1 / s_i)^2, enough while ``gram_ok(s)`` holds;
    otherwise the thin SVD gives orthonormal U even for zero values.
    """
    xp = get_array_module(images)
    lam, W = xp.linalg.eigh(images.T @ images)
    lam, W = lam[::-1][:b], W[:, ::-1][:, :b]
    if gram_ok(xp.sqrt(xp.maximum(lam, 0.0))):
        GV = images @ W
        s = xp.linalg.norm(GV, axis=0)
        order = xp.argsort(-s)
        return W[:, order], s[order], GV[:, order], None
    U, s, Wt = _thin_svd(images)
    U, s = U[:, :b], s[:b]
    return Wt[:b].T, s, U * s, U


def _array_operator(M, dtype):
    Mw = M.astype(dtype, copy=False)
    return Operator(lambda X: Mw @ X, lambda Y: Mw.T @ Y, tuple(M.shape), np.dtype(dtype), get_array_module(M))


def gradient_operator(A, D, *, explicit=None):
    """G = A^T D (in x out) as an :class:`Operator`, for (M, in) / (M, out) or (N, P, *) factors.

    Matrix-free: ``G @ V = A^T (D V)`` and ``G^T @ U = D^T (A U)``, M (in + out) multiply-adds
    per column, G never formed. Explicit: G formed once (M in out), then in * out per column.
    ``explicit=None`` picks matrix-free when M (in + out) <= 2 in out (few rows: the
    matrix-free product is cheap, and G would be the largest array); otherwise forming G
    pays for itself within the ~8 block products of a warm-started top-k call.
    Products run in the work dtype (float32 when both factors are float32).
    """
    A2, D2, _ = _gradient_factors(A, D, "gradient_operator")
    return _gradient_operator(A2, D2, explicit)


def _gradient_operator(A2, D2, explicit=None):
    dtype = _work_dtype(A2, D2)
    Aw = A2.astype(dtype, copy=False)
    Dw = D2.astype(dtype, copy=False)
    M, fin, fout = A2.shape[0], A2.shape[1], D2.shape[1]
    if explicit is None:
        explicit = M * (fin + fout) > 2 * fin * fout
    if explicit:
        return _array_operator(Aw.T @ Dw, dtype)
    return Operator(
        lambda V: Aw.T @ (Dw @ V),
        lambda U: Dw.T @ (Aw @ U),
        (fin, fout),
        dtype,
        get_array_module(A2),
    )


def _as_operator(M, shape, init, where):
    if isinstance(M, Operator):
        return M
    if isinstance(M, (tuple, list)) and len(M) == 2 and all(callable(f) for f in M):
        if shape is None or len(shape) != 2:
            raise ValueError(f"{where}: a (matmat, rmatmat) pair needs shape=(m, n)")
        if init is not None:
            xp, dtype = get_array_module(init), np.dtype(init.dtype)
            if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
                dtype = np.dtype(np.float64)
        else:
            xp, dtype = np, np.dtype(np.float64)
        return Operator(M[0], M[1], (int(shape[0]), int(shape[1])), dtype, xp)
    arr, _ = _as_array(M, "M")
    if arr.ndim != 2:
        raise ValueError(f"{where}: M must be a 2-D array, got shape {tuple(arr.shape)}")
    _check_finite(arr, "M", where)
    return _array_operator(arr, arr.dtype)


def _default_oversample(k, r):
    return min(max(10, k // 2), r - k)


def topk_svdvals(
    M, k, init=None, *, shape=None, tol=None, max_iter=_TOPK_MAX_ITER, oversample=None, depth=_KRYLOV_DEPTH,
    warm_depth=_WARM_DEPTH, seed=0
):
    """Top-k singular values of a matrix or matrix-free operator, warm-startable.

    M: a 2-D array, an :class:`Operator` (e.g. :func:`gradient_operator`), or a pair of
    callables ``(matmat, rmatmat)`` with ``shape=(m, n)`` (backend and dtype then follow
    ``init``, else NumPy float64). ``init``: an (n, j) array, typically the ``basis`` of the
    previous call. Returns a :class:`TopKResult` (values, basis, iterations, converged,
    residuals).

    Method: block Krylov with thick restart. The search block has b = k + oversample
    columns: init's leading columns, then random ones (at least half of the oversampling
    columns are always random). Each iteration is a Rayleigh-Ritz step on
    span[V, H V, ..., H^(depth-1) V], H = G^T G, after which the b best Ritz vectors V are
    kept; it costs 2 (depth - 1) products of G or G^T with b columns plus small dense work.

    Convergence (ARPACK's criterion): every top-k Ritz triplet (s_i, u_i, v_i) has residual
    ||G^T u_i - s_i v_i|| <= max(tol * s_i, floor), floor = 4 sqrt(max(m, n)) eps(work) s_1
    (the rounding level). Each s_i then lies within tol * s_i of a true singular value; the
    actual value error is about residual^2 / gap, far smaller. Ritz values never exceed
    the true ones, and a warm start always does one expansion before it may stop, so that
    the random columns can reveal a direction that is new since init (a Krylov method never
    sees what its start block lacks entirely); that first expansion is done before any
    Rayleigh-Ritz step (one on the start block alone could not end the call). So an
    unchanged matrix converges in 2 iterations, a slowly changing one in 2-3, and one that
    changed completely costs about a cold start -- the values are converged in every case,
    or ``converged`` is False.

    If the residuals stop decreasing for 5 iterations (rounding error above the tolerance,
    e.g. float32 products of factors with heavy cancellation) it stops unconverged.

    tol: default 1e-6 for float64 work, 1e-4 for float32 work (float32 when M is float32).
    max_iter: default 100. oversample: default min(max(10, k // 2), min(m, n) - k).
    depth: Krylov blocks per iteration, default 4. warm_depth: Krylov blocks in the first
    iteration of a warm start, default 2, one more in the second, ``depth`` from the third
    on (a good init needs one cheap expansion, not a deep one: 4 products per call instead
    of 8). seed: for the random columns.
    """
    where = "topk_svdvals"
    op = _as_operator(M, shape, init, where)
    m, n = op.shape
    r = min(m, n)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{where}: k must be an int, got {k!r}")
    k = int(k)
    if k < 1 or k > r:
        raise ValueError(f"{where}: k={k} is out of range; expected 1 <= k <= min(m, n) = {r}")
    if max_iter < 1:
        raise ValueError(f"{where}: max_iter must be >= 1, got {max_iter}")
    p = _default_oversample(k, r) if oversample is None else int(oversample)
    if p < 0:
        raise ValueError(f"{where}: oversample must be >= 0, got {oversample}")
    b = min(k + p, r)
    tol = _TOPK_TOL[op.dtype] if tol is None else float(tol)
    if not tol > 0:
        raise ValueError(f"{where}: tol must be > 0, got {tol}")
    if depth < 2 or warm_depth < 2:
        raise ValueError(f"{where}: depth and warm_depth must be >= 2, got {depth} and {warm_depth}")
    return _topk(op, k, b, init, tol, int(max_iter), seed, where, int(depth), int(warm_depth))


def _start_block(op, k, b, init, seed, where):
    """b orthonormal columns: init's leading columns first, random ones to fill up.

    At least half of the oversampling columns are always fresh random ones, so a warm start
    can still find a direction that is new since init was computed (a Krylov method never
    sees a direction that its start block lacks).
    """
    xp, n = op.xp, op.shape[1]
    V = xp.zeros((n, 0), dtype=op.dtype)
    if init is not None:
        if get_array_module(init) is not xp:
            raise ValueError(f"{where}: init lives on a different backend than the operator")
        if init.ndim != 2 or init.shape[0] != n or init.shape[1] < 1:
            raise ValueError(f"{where}: init must have shape (n, j) = ({n}, j>=1), got {tuple(init.shape)}")
        _check_finite(init, "init", where)
        keep = b - (b - k + 1) // 2
        V = _orthonormalize(init[:, :keep].astype(op.dtype, copy=False))
    rng = np.random.default_rng(seed)
    while V.shape[1] < b:  # rarely more than once (only if random columns came out dependent)
        rand = xp.asarray(rng.standard_normal((n, b - V.shape[1])), dtype=op.dtype)
        V = xp.concatenate([V, _orthonormalize(rand, V if V.shape[1] else None, op.dtype)], axis=1)
    return V


def _topk(op, k, b, init, tol, max_iter, seed, where, depth, warm_depth=_WARM_DEPTH):
    xp, dtype = op.xp, op.dtype
    m, n = op.shape
    eps = _EPS32 if dtype == np.float32 else _EPS64
    # Ritz vectors from the Gram matrix resolve s_i to relative residual ~ eps64 (s_1/s_i)^2;
    # use them while that stays 10x below the tolerance (and below the floor's reach).
    gram_ratio = math.sqrt(10.0 * _EPS64 / tol)

    def gram_ok(s_est):
        s1, sk = float(s_est[0]), float(s_est[min(k, s_est.shape[0]) - 1])
        return s1 > 0 and sk >= gram_ratio * s1

    basis = _start_block(op, k, b, init, seed, where)   # (n, d) orthonormal
    images = op.matmat(basis)                         # G @ basis, (m, d)
    first = 1
    if init is not None and max_iter > 1:
        # A warm start is never accepted before one expansion: the fresh random columns of the
        # start block must get a chance to reveal directions new since init. So expand first
        # and skip the Rayleigh-Ritz step on the start block alone: (G^T G) basis spans what
        # its residual block would, modulo span(basis). This counts as iteration 1.
        blocks, imgs = _expand(op, [basis], [images], op.rmatmat(images), warm_depth)
        basis, images = xp.concatenate(blocks, axis=1), xp.concatenate(imgs, axis=1)
        first = 2
    converged, history = False, []
    for it in range(first, max_iter + 1):
        # Rayleigh-Ritz on span(basis): the b best Ritz triplets (s_i, u_i, v_i = basis w_i).
        W, s, GV, U = _rayleigh_ritz(images.astype(xp.float64, copy=False), b, gram_ok)
        V = basis @ W.astype(dtype, copy=False)
        GV = GV.astype(dtype, copy=False)
        sw = s.astype(dtype, copy=False)
        floor = 4.0 * math.sqrt(max(m, n)) * eps * float(s[0])
        if U is None:
            # Residuals of G^T G: (G^T G v_i - s_i^2 v_i) / s_i = G^T u_i - s_i v_i, u_i = G v_i / s_i
            # (s_i >= gram_ratio s_1 > 0 for i < k on this path).
            Rres = op.rmatmat(GV) - V * (sw * sw)
            res = xp.linalg.norm(Rres[:, :k].astype(xp.float64, copy=False), axis=0) / s[:k]
        else:
            Rres = op.rmatmat(U.astype(dtype, copy=False)) - V * sw  # G^T u_i - s_i v_i
            res = xp.linalg.norm(Rres[:, :k].astype(xp.float64, copy=False), axis=0)
        thresh = xp.maximum(tol * s[:k], floor)
        ratio = float(xp.where(res <= thresh, 0.0, res / xp.where(thresh > 0, thresh, 1.0)).max())
        converged = ratio <= 1.0
        history.append(ratio)
        # Stagnation: no new low in the residuals for 5 iterations means rounding error
        # (e.g. float32 products with heavy cancellation) is above the tolerance; stop.
        stalled = len(history) > 5 and min(history[-5:]) >= 0.95 * min(history[:-5])
        if converged or it == max_iter or stalled:  # a warm start has expanded already (see above)
            break
        # Thick restart: keep the b Ritz vectors (their image GV needs no product) and add
        # depth-1 Krylov blocks: span[V, (G^T G) V, (G^T G)^2 V, ...]. The residual block
        # spans (G^T G) V modulo V (column scaling is irrelevant: SVQB normalizes).
        cycle_depth = depth
        if init is not None and it <= _WARM_CYCLES:  # cheap cycles first, deeper if they fall short
            cycle_depth = min(depth, warm_depth + it - 1)
        blocks, imgs = _expand(op, [V], [GV], Rres, cycle_depth)
        if len(blocks) == 1:  # nothing new to add: span(V) is invariant, Rayleigh-Ritz is exact
            converged = True
            break
        basis = xp.concatenate(blocks, axis=1)
        images = xp.concatenate(imgs, axis=1)
    _check_result(s, where)
    return TopKResult(s[:k].astype(xp.float64), V, it, converged, res)


def _expand(op, blocks, imgs, new, cycle_depth):
    """Add up to cycle_depth - 1 Krylov blocks to the orthonormal ``blocks`` (images ``imgs``):
    first ``new`` (a block in span (G^T G) blocks[-1], e.g. its residuals), then (G^T G) of the
    latest block, each orthonormalized against all before. Returns the lists (extended)."""
    xp, dtype, n = op.xp, op.dtype, op.shape[1]
    for j in range(cycle_depth - 1):
        room = n - sum(blk.shape[1] for blk in blocks)
        if j > 0:
            new = op.rmatmat(imgs[-1])
        new = _orthonormalize(new[:, :room], xp.concatenate(blocks, axis=1), dtype) if room > 0 else new[:, :0]
        if new.shape[1] == 0:
            break
        blocks.append(new)
        imgs.append(op.matmat(new))
    return blocks, imgs


class TopKTracker:
    """Top-k singular values of a matrix that changes between calls (keep one per layer).

    Each call warm-starts :func:`topk_svdvals` from the previous call's basis; a change of
    shape or backend starts cold, and so does every ``restart_every``-th call if given (a
    warm start cannot rule out missing a new direction that its start block barely sees;
    see :func:`topk_svdvals`). A call that needed more than two iterations (the matrix moved
    further, e.g. when only every 10th step is recorded) makes the next one start with a
    deeper Krylov space. ``last`` holds the latest :class:`TopKResult`.
    """

    def __init__(self, k, *, tol=None, max_iter=_TOPK_MAX_ITER, oversample=None, restart_every=None, seed=0):
        if restart_every is not None and int(restart_every) < 1:
            raise ValueError(f"TopKTracker: restart_every must be >= 1 or None, got {restart_every}")
        self.k, self.tol, self.max_iter, self.oversample, self.seed = k, tol, max_iter, oversample, seed
        self.restart_every = restart_every
        self.calls = 0
        self.last = None

    def reset(self):
        """Forget the basis: the next call starts cold."""
        self.last = None

    def __call__(self, M, *, shape=None):
        """Top-k values (float64, descending) of M: array, Operator or (matmat, rmatmat) pair."""
        init = None if self.last is None else self.last.basis
        op = _as_operator(M, shape, init, "TopKTracker")
        cold = self.restart_every is not None and self.calls % int(self.restart_every) == 0
        if cold or (init is not None and (init.shape[0] != op.shape[1] or get_array_module(init) is not op.xp)):
            init = None
        # a call that needed more than the two warm iterations (a matrix that moved further
        # between calls) starts the next one a Krylov block deeper
        warm_depth = _WARM_DEPTH + (self.last is not None and self.last.iterations > 2)
        self.last = topk_svdvals(
            op, self.k, init, tol=self.tol, max_iter=self.max_iter, oversample=self.oversample,
            warm_depth=warm_depth, seed=self.seed + self.calls,
        )
        self.calls += 1
        return self.last.values


def _warn_unconverged(result, where):
    if not result.converged:
        warnings.warn(
            f"{where}: top-k iteration stopped after {result.iterations} iterations before reaching "
            f"its tolerance (largest residual {float(result.residuals.max()):.3g}); values are estimates",
            ConvergenceWarning,
            stacklevel=4,  # the caller of svdvals / gradient_svdvals
        )


# --------------------------------------------------------------------------- cost model
# Two regimes, each in its own unit; only ratios within a regime matter.
# CPU (NumPy + OpenBLAS/LAPACK, measured on 2 cores): units of one float32 multiply-add of a
# large product. float64 products 2, float64 syrk 1.2 per l s^2, SVD (values only)
# 10 l s^2 + 6 s^3, symmetric eigenvalues 5 s^3, Householder QR of a thin matrix 12 l s^2.
# GPU (CuPy, measured on an H200): at these sizes time is latency, not flops: seconds,
# with cuSOLVER's SVD ~60 us per unit of s (47 ms for s = 784), eigenvalues ~9 us per unit
# of s, QR ~20 us per unit of s, products ~free, a top-k iteration ~10 ms (host syncs).


class _Costs:
    def __init__(self, gpu):
        self.gpu = gpu

    def svd(self, l, s):
        l, s = max(l, s), min(l, s)
        return 60e-6 * s if self.gpu else 10.0 * l * s * s + 6.0 * s**3

    def eigvalsh(self, s):
        return 9e-6 * s if self.gpu else 5.0 * s**3

    def qr(self, l, s):
        return 20e-6 * s if self.gpu else 12.0 * l * s * s

    def gemm(self, m, n, p, dtype):
        flops = float(m) * n * p * (1.0 if dtype == np.float32 else 2.0)
        return flops * 1e-13 if self.gpu else flops

    def syrk64(self, l, s):
        return self.gemm(l, s, s, np.float64) * 0.6

    def topk(self, m, n, b, product, iters, depth=_KRYLOV_DEPTH):
        """iters * (2 (depth - 1) products on b columns (``product`` each) + Gram
        Rayleigh-Ritz on d = depth * b columns + SVQB of depth - 1 blocks)."""
        if self.gpu:
            return iters * (10e-3 + 2 * (depth - 1) * product)
        d = depth * b
        return iters * (2 * (depth - 1) * product + 2.0 * m * d * d + 4.0 * d**3 + 4.0 * (depth - 1) * n * d * b)

    def topk_call(self, m, n, b, product, warm_iters=None):
        """One top-k call: a cold start, or ``warm_iters`` iterations at the warm depth."""
        if warm_iters is None:
            return self.topk(m, n, b, product, _AUTO_TOPK_COLD_ITERS)
        return self.topk(m, n, b, product, warm_iters, depth=_WARM_DEPTH + 1)


def choose_svdvals_method(m, n, k, dtype, gpu=False, warm_iters=None):
    """(method, costs) for the top-k values of an (m, n) matrix. ``warm_iters``: the top-k route
    is warm-started (a tracker kept from step to step) and expected to take that many
    iterations at the warm depth, instead of a cold start's."""
    c = _Costs(gpu)
    l, s = max(m, n), min(m, n)
    costs = {"exact": c.svd(l, s)}
    if dtype == np.float32:
        # Gram in float64 is as accurate as float32 data (module docstring); for float64
        # input it would lose values below ~1e-8 sigma_1, so auto never picks it there.
        costs["gram"] = c.syrk64(l, s) + c.eigvalsh(s)
    if 4 * k <= s:
        b = min(k + _default_oversample(k, s), s)
        costs["topk"] = c.topk_call(m, n, b, c.gemm(m, n, b, dtype), warm_iters)
    return min(costs, key=costs.get), costs


def choose_gradient_method(M, fin, fout, k, dtype, gpu=False, warm_iters=None):
    """(method, costs) for the top-k values of G = A^T D with M rows; ``warm_iters`` as in
    :func:`choose_svdvals_method`."""
    c = _Costs(gpu)
    lo, hi = min(fin, fout), max(fin, fout)
    costs = {"direct": c.gemm(M, fin, fout, dtype) + c.svd(hi, lo)}
    if M < hi:
        ra, rd = min(M, fin), min(M, fout)
        qr = (c.qr(fin, M) if fin > M else 0.0) + (c.qr(fout, M) if fout > M else 0.0)
        costs["factored"] = qr + c.gemm(ra, rd, M, np.float64) + c.svd(ra, rd)
    if dtype == np.float32:
        costs["gram"] = _gradient_gram_cost(M, fin, fout, c) + c.eigvalsh(lo)
    if 4 * k <= min(lo, M):
        b = min(k + _default_oversample(k, lo), lo)
        if M * (fin + fout) > 2 * fin * fout:  # _gradient_operator forms G first
            form, product = c.gemm(M, fin, fout, dtype), c.gemm(fin, fout, b, dtype)
        else:
            form, product = 0.0, c.gemm(M, fin + fout, b, dtype)
        costs["topk"] = form + c.topk_call(fin, fout, b, product, warm_iters)
    return min(costs, key=costs.get), costs


# --------------------------------------------------------------------------- svdvals


def svdvals(M, k=None, method="auto"):
    """Descending singular values of a 2-D array (float64, on M's backend).

    k: how many (the top k); None = all min(m, n). Methods:

    * "exact": SVD of M in float64 (LAPACK gesdd, cuSOLVER on CuPy); if it does not converge,
      recomputed on the host with LAPACK gesvd. Absolute error about eps64 * sigma_1.
    * "gram": eigenvalues of the float64 Gram matrix of the smaller side, sqrt of the
      clipped values. The Gram matrix squares the spectrum, so the absolute eigenvalue error
      ~ c eps64 sigma_1^2 gives sigma_i a relative error of about (c/2) eps64 (sigma_1 /
      sigma_i)^2: values above 1e-4 sigma_1 keep ~8 digits, and values below about
      sqrt(eps64) sigma_1 = 1.5e-8 sigma_1 are lost (returned as noise of at most that
      size). This holds for float32 input too, since the Gram matrix is formed in float64;
      there 1.5e-8 sigma_1 lies below the data's own rounding level eps32 sigma_1 =
      1.2e-7 sigma_1, so Gram loses nothing a float32 matrix can resolve. (A float32 Gram
      matrix would lose everything below sqrt(eps32) sigma_1 = 3.5e-4 sigma_1, which is why
      it is not used.)
    * "topk": :func:`topk_svdvals` (cold start, default tolerance); warns with
      :class:`ConvergenceWarning` if it stopped unconverged.
    * "auto": the cheapest by a cost model. On NumPy, flops with measured LAPACK factors
      (l >= s the sides): exact ~ 10 l s^2 + 6 s^3, gram ~ 1.2 l s^2 + 5 s^3 (float32
      input only, see above), topk ~ iters * 6 m n b + small dense work, b = k +
      oversample. On CuPy, a latency model (cuSOLVER's SVD takes ~60 us per unit of s, so
      gram wins wherever allowed). topk is a candidate only when k <= s / 4, and falls back
      to the next cheapest if it has not converged within the budget that keeps it cheaper.
    """
    where = "svdvals"
    _check_method(method, SVDVALS_METHODS, where)
    X, xp = _as_array(M, "M")
    if X.ndim != 2:
        raise ValueError(f"{where}: M must be a 2-D array, got shape {tuple(X.shape)}")
    m, n = X.shape
    k = _resolve_k(k, min(m, n), where) if min(m, n) > 0 or k is not None else 0
    if k == 0:
        return _empty(xp)
    _check_finite(X, "M", where)
    costs = None
    if method == "auto":
        method, costs = choose_svdvals_method(m, n, k, X.dtype, gpu=xp is not np)
    if method == "exact":
        s = _exact_svdvals(X)[:k]
    elif method == "gram":
        s = _gram_svdvals(X, k)
    else:
        s = _run_topk(
            _array_operator(X, X.dtype), k, min(m, n), costs, lambda: svdvals(X, k, _next_best(costs)), where
        )
    _check_result(s, where)
    return s


def _next_best(costs):
    rest = {m: c for m, c in costs.items() if m != "topk"}
    return min(rest, key=rest.get)


def _run_topk(op, k, rank_bound, costs, fallback, where):
    """Top-k for an explicit request (warns if unconverged) or for auto (iterations capped so
    it stays cheaper than the next best method, which it falls back to if unconverged)."""
    b = min(k + _default_oversample(k, rank_bound), rank_bound)
    tol = _TOPK_TOL[op.dtype]
    if costs is None:
        res = _topk(op, k, b, None, tol, _TOPK_MAX_ITER, 0, where, _KRYLOV_DEPTH)
        _warn_unconverged(res, where)
        return res.values
    per_iter = costs["topk"] / _AUTO_TOPK_COLD_ITERS
    budget = max(2, int(min(c for name, c in costs.items() if name != "topk") / per_iter))
    res = _topk(op, k, b, None, tol, budget, 0, where, _KRYLOV_DEPTH)
    return res.values if res.converged else fallback()


# --------------------------------------------------------------------------- gradients


def _gradient_factors(A, D, where):
    A, xa = _as_array(A, "A")
    D, xd = _as_array(D, "D")
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
    _check_finite(A2, "A", where)
    _check_finite(D2, "D", where)
    return A2, D2, xa


def _compressed_transpose(X, M):
    """R with X^T = Q R, Q orthonormal: R (M x M) when X has more columns than rows, else X^T."""
    xp = get_array_module(X)
    if X.shape[1] > M:
        return xp.linalg.qr(X.T, mode="r")
    return X.T


def _gram_routes(M, fin, fout, c):
    """Costs of building G^T G (fout <= fin) by forming G, or as D^T (A A^T) D."""
    via_g = c.gemm(M, fin, fout, np.float64) + c.syrk64(fin, fout)
    via_k = c.syrk64(fin, M) + c.gemm(M, M, fout, np.float64) + c.gemm(fout, fout, M, np.float64)
    return via_g, via_k


def _gradient_gram_cost(M, fin, fout, c=None):
    lo, hi = min(fin, fout), max(fin, fout)
    return min(_gram_routes(M, hi, lo, c or _Costs(False)))


def _gradient_gram(A2, D2, k):
    """Eigenvalues of the smaller Gram of G = A^T D, in float64, forming G only when cheaper."""
    xp = get_array_module(A2)
    M, fin, fout = A2.shape[0], A2.shape[1], D2.shape[1]
    A64 = A2.astype(xp.float64, copy=False)
    D64 = D2.astype(xp.float64, copy=False)
    if fout > fin:  # G G^T = A^T (D D^T) A: swap roles so the Gram side is "out"
        A64, D64, fin, fout = D64, A64, fout, fin
    # G^T G (fout x fout) = D^T (A A^T) D
    via_g, via_k = _gram_routes(M, fin, fout, _Costs(xp is not np))
    if via_g <= via_k:
        G = A64.T @ D64
        C = G.T @ G
    else:
        KD = (A64 @ A64.T) @ D64
        C = D64.T @ KD
        C = 0.5 * (C + C.T)
    return eig_to_svdvals(C, k)


def gradient_svdvals(A, D, k=None, method="auto"):
    """Descending singular values of G = sum_p A_p^T D_p (in x out), float64, on A's backend.

    A: (N, P, in) or (M, in); D: (N, P, out) or (M, out) with the same leading shape; the
    tied positions are flattened into M = N * P rows, so G = A^T D. k: how many (the top
    k), default the rank bound min(in, out, M), so the output length is predictable; k
    above the bound is an error (values past it are exactly zero).

    Methods and costs (multiply-adds; the "auto" cost model uses these with LAPACK factors):

    * "direct": form G = A^T D in the work dtype, then its exact SVD in float64:
      O(M in out + in out min(in, out)).
    * "factored": thin QR of A^T = Q1 R1 and D^T = Q2 R2 for each side wider than M, so
      G = Q1 (R1 R2^T) Q2^T and sigma(G) = sigma(R1 R2^T), an M x M core (a side not wider
      than M enters as is). G is never formed: O(M^2 (in + out)) + SVD of the core.
    * "gram": eigenvalues of the smaller of G^T G, G G^T in float64, built as
      (D^T (A A^T) D) when that is cheaper than forming G. Accuracy as in
      :func:`svdvals` "gram".
    * "topk": top-k through :func:`gradient_operator`: matrix-free (G v = A^T (D v),
      G^T u = D^T (A u)) when M (in + out) <= 2 in out, O(M (in + out) k iters); else G is
      formed first, O(M in out + in out k iters). See :func:`topk_svdvals`.
    * "auto": the cheapest of these by the cost model of :func:`svdvals` (CPU flops, or
      GPU latency on CuPy); gram for float32 inputs only, topk only when k <= bound / 4,
      falling back if it has not converged within budget. Typically: factored when M is
      well below min(in, out), gram for float32 full spectra, topk for a few top values.

    Tip: for the full-batch G of a layer, the weight gradient that backward already
    computed is G^T; ``svdvals(grad_W, k)`` skips forming G (the M in out term).
    """
    where = "gradient_svdvals"
    _check_method(method, GRADIENT_METHODS, where)
    A2, D2, xp = _gradient_factors(A, D, where)
    M, fin, fout = A2.shape[0], A2.shape[1], D2.shape[1]
    bound = min(M, fin, fout)
    k = 0 if (bound == 0 and k is None) else _resolve_k(k, bound, where)
    if k == 0:
        return _empty(xp)
    dtype = _work_dtype(A2, D2)
    costs = None
    if method == "auto":
        method, costs = choose_gradient_method(M, fin, fout, k, dtype, gpu=xp is not np)
    if method == "direct":
        with np.errstate(over="ignore", invalid="ignore"):  # reported by _check_result
            G = A2.astype(dtype, copy=False).T @ D2.astype(dtype, copy=False)
        _check_result(G, where)
        s = _exact_svdvals(G)[:k]
    elif method == "factored":
        Ra = _compressed_transpose(A2.astype(dtype, copy=False), M)
        Rd = _compressed_transpose(D2.astype(dtype, copy=False), M)
        core = Ra.astype(xp.float64, copy=False) @ Rd.astype(xp.float64, copy=False).T
        _check_result(core, where)
        s = _exact_svdvals(core)[:k]
    elif method == "gram":
        s = _gradient_gram(A2, D2, k)
    else:
        s = _run_topk(
            _gradient_operator(A2, D2), k, bound, costs, lambda: gradient_svdvals(A2, D2, k, _next_best(costs)), where
        )
    _check_result(s, where)
    return s


# --------------------------------------------------------------------------- noise floor


def data_eps(dtype):
    """Machine epsilon of data stored as ``dtype``: its own for floats (float16, float32,
    float64), float64's for integers and booleans (exact data, float64 arithmetic)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return float(np.finfo(dtype).eps)
    if dtype.kind in "iub":
        return _EPS64
    raise TypeError(f"noise floor: dtype must be a real float or integer dtype, got {dtype}")


def noise_floor_from(sigma_max, shape, dtype, *, method="exact"):
    """The level below which singular values are numerically zero, from the numbers it rests on.

    sigma_max: the scale of the matrix's rounding error -- its largest singular value, or, for
    G = A^T D formed or factored from factors A, D, sigma_1(A) * sigma_1(D) (see below).
    shape: (m, n) of the matrix whose values are judged. dtype: the dtype of its data (for G,
    the coarser of A's and D's). method: the route the values came from; only "gram" changes
    the floor. NaN ``sigma_max`` (a step with non-finite factors) gives NaN.

    The rule (DESIGN.md, "Noise floor"; the default tolerance of numpy.linalg.matrix_rank and
    MATLAB's rank)::

        floor = max(m, n) * eps(dtype) * sigma_max

    Why: rounding each entry of X to ``dtype`` moves it by E with ||E||_2 <= ||E||_F <=
    eps ||X||_F <= eps sqrt(min(m, n)) sigma_1(X), and by Weyl's inequality no singular value
    moves by more than ||E||_2; so a matrix of rank r stored in ``dtype`` may show values up
    to that size past index r. max(m, n) >= sqrt(min(m, n)) leaves room for the rounding of
    the computation that produced X. Float32 data keep float32's eps even though the values
    are computed and stored in float64: the data cannot resolve more.

    G from factors: rounding in A^T D (in any route: the product, the QR factors, the top-k
    products) is relative to ||A|| ||D||, not to sigma_1(G): dG = dA^T D + A^T dD has
    ||dG|| <= 2 eps ||A||_F ||D||_F <= 2 sqrt(rank A rank D) eps sigma_1(A) sigma_1(D), and
    the rank of each factor is at most max(in, out). When G is small through cancellation
    (per-sample gradients that nearly sum to zero), sigma_1(G) is far below sigma_1(A)
    sigma_1(D) and a floor relative to sigma_1(G) would count rounding noise as signal. So
    for G pass sigma_max = sigma_1(A) sigma_1(D) (:func:`gradient_noise_floor` does).

    The "gram" route squares the condition number: eigenvalues of the Gram matrix carry an
    absolute error of about max(m, n) eps64 sigma_max^2 (it is always formed in float64), so
    a zero singular value comes out as up to sqrt(max(m, n) eps64) sigma_max; its floor is
    the larger of that and the rule above. For float32 data the rule above is always the
    larger (max(m, n) eps32 >= sqrt(max(m, n) eps64) for every size), which is why "auto"
    may choose the Gram route for float32 at no loss; for float64 data (only with an
    explicit method="gram") the Gram term rules: about 1.5e-8 sqrt(max(m, n)) sigma_max.
    The other routes (exact SVD, factored, top-k with its rounding-level stopping rule)
    add errors below the rule's level.
    """
    if isinstance(sigma_max, (bool, np.bool_)) or not isinstance(sigma_max, numbers.Real):
        raise TypeError(f"noise_floor_from: sigma_max must be a real number, got {sigma_max!r}")
    sigma_max = float(sigma_max)
    if math.isnan(sigma_max):
        return math.nan
    if sigma_max < 0 or math.isinf(sigma_max):
        raise ValueError(f"noise_floor_from: sigma_max must be finite and >= 0, got {sigma_max}")
    if len(shape) != 2 or any(isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral) or d < 0
                              for d in shape):
        raise ValueError(f"noise_floor_from: shape must be two sizes (m, n) >= 0, got {tuple(shape)!r}")
    _check_method(method, SVDVALS_METHODS + GRADIENT_METHODS, "noise_floor_from")
    size = max(int(shape[0]), int(shape[1]))
    floor = size * data_eps(dtype) * sigma_max
    if method == "gram":
        floor = max(floor, math.sqrt(size * _EPS64) * sigma_max)
    return floor


def largest_svdval_estimate(X, iters=4, seed=0):
    """A cheap estimate of sigma_1(X) from below (float): ``iters`` power steps on X^T X from a
    seeded random vector, two products with one vector each. For a random start the estimate
    is within a factor ~max(m, n)^(1 / (4 iters + 2)) of sigma_1 (1.5 for 784 columns and 4
    steps) and usually within a few percent: enough to scale a noise floor."""
    X, xp = _as_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"largest_svdval_estimate: X must be a 2-D array, got shape {tuple(X.shape)}")
    if X.size == 0:
        return 0.0
    _check_finite(X, "X", "largest_svdval_estimate")
    _, v = power_steps(X, random_unit_vector(X.shape[1], X.dtype, xp, seed), iters)
    return float(xp.linalg.norm(X @ v))


def random_unit_vector(n, dtype, xp=np, seed=0):
    """A seeded random unit vector of length n (a start for :func:`power_steps`)."""
    v = xp.asarray(np.random.default_rng(seed).standard_normal(n), dtype=dtype)
    return v / xp.linalg.norm(v)


def power_steps(X, v, iters=1):
    """(|X v| for the last v used, the next unit vector): ``iters`` power steps on X^T X from the
    unit vector v, alternating X v and X^T u (never X^T X, so nothing overflows); X finite.

    |X v| <= sigma_1(X) for any unit v. Handing the returned vector to the next call on a matrix
    that changes little (the same layer one training step later) starts near the top right
    singular vector, so one step then estimates sigma_1 closely: a warm start."""
    xp = get_array_module(X)
    estimate = 0.0
    for _ in range(iters):
        u = X @ v
        estimate = float(xp.linalg.norm(u))
        if estimate == 0.0:
            return 0.0, v
        w = X.T @ (u / estimate)  # nonzero: v . w = |u| > 0
        v = w / xp.linalg.norm(w)
    return estimate, v


def noise_floor(M, dtype=None, method="exact"):
    """The level below which singular values of the matrix M are numerically zero (float):
    sigma_1(M) * max(m, n) * eps, eps of M's dtype unless ``dtype`` names the dtype its data
    came in; ``method`` as in :func:`noise_floor_from` (which gives the argument)."""
    X, _ = _as_array(M, "M")
    if X.ndim != 2:
        raise ValueError(f"noise_floor: M must be a 2-D array, got shape {tuple(X.shape)}")
    if dtype is None:  # the dtype M came in (float16 data keep float16's resolution)
        dtype = getattr(M.data if getattr(M, "_is_minigrad_tensor", False) else M, "dtype", X.dtype)
    sigma_max = float(svdvals(X, 1)[0]) if X.size else 0.0
    return noise_floor_from(sigma_max, X.shape, dtype, method=method)


def gradient_noise_floor(A, D, method="auto"):
    """The noise floor of the singular values of G = A^T D (float), factors as in
    :func:`gradient_svdvals`: max(in, out) * eps * sigma_1(A) * sigma_1(D), eps of the coarser
    factor dtype; see :func:`noise_floor_from` for why the factors set the scale."""
    A2, D2, _ = _gradient_factors(A, D, "gradient_noise_floor")
    if A2.size == 0 or D2.size == 0:
        return 0.0
    scale = float(svdvals(A2, 1)[0]) * float(svdvals(D2, 1)[0])
    return noise_floor_from(scale, (A2.shape[1], D2.shape[1]), coarser_dtype(A2.dtype, D2.dtype), method=method)


def coarser_dtype(*dtypes):
    """The dtype with the largest machine epsilon (the data's resolution when they are mixed)."""
    return max((np.dtype(d) for d in dtypes), key=data_eps)
