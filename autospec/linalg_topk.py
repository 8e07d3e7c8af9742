"""Top-k singular values by block Krylov iteration with thick restart: matrix-free (G = A^T D
never formed), warm-startable from the previous step's basis (:class:`TopKTracker`).

:func:`topk_svdvals` documents the method and its stopping rule; :func:`block_krylov` is the
iteration itself, on an :class:`Operator`. Products run in the operator's dtype (float32 for
float32 data); Gram matrices, Rayleigh-Ritz and the residual norms in float64.
"""
import math
import numbers
import warnings
from typing import Callable, NamedTuple

import numpy as np

from minigrad.backend import get_array_module, to_numpy

from .linalg_checks import (EPS32, EPS64, as_float_array, check_factors, check_finite, check_result, linalg_errors,
                            work_dtype)

# Default top-k tolerances: relative residual per singular triplet (see topk_svdvals).
TOPK_TOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4}
TOPK_MAX_ITER = 100
KRYLOV_DEPTH = 4  # Krylov blocks per restart cycle (see topk_svdvals)
WARM_DEPTH = 2  # Krylov blocks in the first cycle of a warm start (one more in the next)
_WARM_CYCLES = 2  # cycles of a warm start before the full depth is used


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


# --------------------------------------------------------------------------- building blocks


def orthonormalize(X, against=None, dtype=None):
    """Orthonormal basis of span(X) orthogonal to the orthonormal columns of ``against``.

    SVQB (Stathopoulos & Wu 2002): scale the columns to unit length, take the eigenvectors
    of their float64 Gram matrix and drop directions whose eigenvalue is at rounding level
    (nearly dependent columns, or columns that were inside span(against)). Done twice with
    the projection ("twice is enough"). Only matrix products and a small eigh, so much
    faster than Householder QR for tall thin blocks. May return fewer columns than X has.
    A well-conditioned block (the usual case: random or warm-start columns) takes the
    Cholesky factor of the same Gram matrix instead of its eigenvectors (CholeskyQR2,
    several times cheaper than a small eigh); see :func:`cholesky_inverse`.
    """
    xp = get_array_module(X)
    dtype = X.dtype if dtype is None else dtype
    eps = EPS32 if dtype == np.float32 else EPS64
    for _ in range(2):
        if against is not None:
            X = X - against @ (against.T @ X)
        norms = xp.linalg.norm(X, axis=0)
        X = X[:, norms > 0] / norms[norms > 0]
        if X.shape[1] == 0:
            return X
        X64 = X.astype(xp.float64, copy=False)
        C = X64.T @ X64
        T = cholesky_inverse(C, 1600 * X.shape[1] * eps)
        if T is None:
            lam, W = xp.linalg.eigh(C)
            keep = lam > 16 * X.shape[1] * eps * float(lam[-1])
            T = W[:, keep] / xp.sqrt(lam[keep])
        X = X @ T.astype(dtype, copy=False)
    return X


def cholesky_inverse(C, min_ratio):
    """L^-T for C = L L^T (so X L^-T has orthonormal columns when C = X^T X), or None.

    None unless C is safely positive definite: Cholesky succeeds and the bound
    lambda_min / lambda_max >= 1 / (||L^-1||_1 ||L^-1||_inf ||C||_inf) (lambda_min =
    1 / ||L^-1||_2^2, and Gershgorin for lambda_max) exceeds ``min_ratio``, set 100x above
    the level at which SVQB would drop a direction, so that both give the same span.
    """
    xp = get_array_module(C)
    try:
        L = xp.linalg.cholesky(C)
    except linalg_errors(xp):
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


# --------------------------------------------------------------------------- operators


def array_operator(M, dtype):
    """The 2-D array M as an :class:`Operator` whose products run in ``dtype``."""
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
    A2, D2, _ = check_factors(A, D, "gradient_operator")
    return factor_operator(A2, D2, explicit)


def factor_operator(A2, D2, explicit=None):
    """:func:`gradient_operator` for factors already checked and flattened to (M, in), (M, out)."""
    dtype = work_dtype(A2, D2)
    Aw = A2.astype(dtype, copy=False)
    Dw = D2.astype(dtype, copy=False)
    M, fin, fout = A2.shape[0], A2.shape[1], D2.shape[1]
    if explicit is None:
        explicit = M * (fin + fout) > 2 * fin * fout
    if explicit:
        return array_operator(Aw.T @ Dw, dtype)
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
    arr, _ = as_float_array(M, "M")
    if arr.ndim != 2:
        raise ValueError(f"{where}: M must be a 2-D array, got shape {tuple(arr.shape)}")
    check_finite(arr, "M", where)
    return array_operator(arr, arr.dtype)


# --------------------------------------------------------------------------- the solver


def default_oversample(k, r):
    """Extra search columns beyond k: min(max(10, k // 2), r - k) for rank bound r."""
    return min(max(10, k // 2), r - k)


def topk_svdvals(
    M, k, init=None, *, shape=None, tol=None, max_iter=TOPK_MAX_ITER, oversample=None, depth=KRYLOV_DEPTH,
    warm_depth=WARM_DEPTH, seed=0
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
    p = default_oversample(k, r) if oversample is None else int(oversample)
    if p < 0:
        raise ValueError(f"{where}: oversample must be >= 0, got {oversample}")
    b = min(k + p, r)
    tol = TOPK_TOL[op.dtype] if tol is None else float(tol)
    if not tol > 0:
        raise ValueError(f"{where}: tol must be > 0, got {tol}")
    if depth < 2 or warm_depth < 2:
        raise ValueError(f"{where}: depth and warm_depth must be >= 2, got {depth} and {warm_depth}")
    return block_krylov(op, k, b, init, tol, int(max_iter), seed, where, int(depth), int(warm_depth))


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
        check_finite(init, "init", where)
        keep = b - (b - k + 1) // 2
        V = orthonormalize(init[:, :keep].astype(op.dtype, copy=False))
    rng = np.random.default_rng(seed)
    while V.shape[1] < b:  # rarely more than once (only if random columns came out dependent)
        rand = xp.asarray(rng.standard_normal((n, b - V.shape[1])), dtype=op.dtype)
        V = xp.concatenate([V, orthonormalize(rand, V if V.shape[1] else None, op.dtype)], axis=1)
    return V


def block_krylov(op, k, b, init, tol, max_iter, seed, where, depth, warm_depth=WARM_DEPTH):
    """The iteration of :func:`topk_svdvals` on an :class:`Operator`, arguments checked: b search
    columns, ``init`` an (n, j) start or None. Returns a :class:`TopKResult`."""
    xp, dtype = op.xp, op.dtype
    m, n = op.shape
    eps = EPS32 if dtype == np.float32 else EPS64
    # Ritz vectors from the Gram matrix resolve s_i to relative residual ~ eps64 (s_1/s_i)^2;
    # use them while that stays 10x below the tolerance (and below the floor's reach).
    gram_ratio = math.sqrt(10.0 * EPS64 / tol)

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
    check_result(s, where)
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
        new = orthonormalize(new[:, :room], xp.concatenate(blocks, axis=1), dtype) if room > 0 else new[:, :0]
        if new.shape[1] == 0:
            break
        blocks.append(new)
        imgs.append(op.matmat(new))
    return blocks, imgs


def warn_unconverged(result, where):
    """Warn with :class:`ConvergenceWarning` when ``result`` stopped before its tolerance."""
    if not result.converged:
        warnings.warn(
            f"{where}: top-k iteration stopped after {result.iterations} iterations before reaching "
            f"its tolerance (largest residual {float(result.residuals.max()):.3g}); values are estimates",
            ConvergenceWarning,
            stacklevel=4,  # the caller of svdvals / gradient_svdvals
        )


# --------------------------------------------------------------------------- across steps


class TopKTracker:
    """Top-k singular values of a matrix that changes between calls (keep one per layer).

    Each call warm-starts :func:`topk_svdvals` from the previous call's basis; a change of
    shape or backend starts cold, and so does every ``restart_every``-th call if given (a
    warm start cannot rule out missing a new direction that its start block barely sees;
    see :func:`topk_svdvals`). A call that needed more than two iterations (the matrix moved
    further, e.g. when only every 10th step is recorded) makes the next one start with a
    deeper Krylov space. ``last`` holds the latest :class:`TopKResult`.
    """

    def __init__(self, k, *, tol=None, max_iter=TOPK_MAX_ITER, oversample=None, restart_every=None, seed=0):
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
        warm_depth = WARM_DEPTH + (self.last is not None and self.last.iterations > 2)
        self.last = topk_svdvals(
            op, self.k, init, tol=self.tol, max_iter=self.max_iter, oversample=self.oversample,
            warm_depth=warm_depth, seed=self.seed + self.calls,
        )
        self.calls += 1
        return self.last.values
