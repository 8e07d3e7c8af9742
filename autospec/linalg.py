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

This module holds the entry points (:func:`svdvals`, :func:`gradient_svdvals`, the noise
floors of a matrix and of G) and the dense routes (exact SVD, Gram eigenvalues, the factored
core of G); it gathers the public names of the modules it builds on, split by job:

* :mod:`autospec.linalg_checks`: input checks, the dtype policy, :class:`NonFiniteError`;
* :mod:`autospec.linalg_topk`: the block-Krylov top-k solver (:func:`topk_svdvals`,
  :class:`TopKTracker`, :func:`gradient_operator`);
* :mod:`autospec.linalg_costs`: the cost model behind ``method="auto"``, its measured
  constants in one table;
* :mod:`autospec.linalg_floor`: the noise-floor rule and cheap sigma_1 estimates.
"""

import numpy as np

from minigrad import Tensor
from minigrad.backend import get_array_module, to_numpy

from . import linalg_topk
from .linalg_checks import (GRADIENT_METHODS, SVDVALS_METHODS, NonFiniteError, as_float_array, check_factors,
                            check_finite, check_method, check_result, linalg_errors, resolve_k, work_dtype)
from .linalg_costs import (AUTO_TOPK_COLD_ITERS, AUTO_TOPK_WARM_ITERS, Costs, choose_gradient_method,
                           choose_svdvals_method, gram_routes)
from .linalg_floor import (coarser_dtype, data_eps, largest_svdval_estimate, noise_floor_from, power_steps,
                           random_unit_vector)
from .linalg_topk import ConvergenceWarning, Operator, TopKResult, TopKTracker, gradient_operator, topk_svdvals

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
    "SVDVALS_METHODS",
    "GRADIENT_METHODS",
    "AUTO_TOPK_WARM_ITERS",
]


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
    except linalg_errors(xp):
        pass
    return xp.asarray(_host_svdvals(to_numpy(M64), tried_gesdd=xp is np))


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
    * "auto": the cheapest by the cost model of :mod:`autospec.linalg_costs`. On NumPy, flops
      with measured LAPACK factors (l >= s the sides): exact ~ 10 l s^2 + 6 s^3, gram ~
      1.2 l s^2 + 5 s^3 (float32 input only, see above), topk ~ iters * 6 m n b + small dense
      work, b = k + oversample. On CuPy, a latency model (cuSOLVER's SVD takes ~60 us per unit
      of s, so gram wins wherever allowed). topk is a candidate only when k <= s / 4, and falls back
      to the next cheapest if it has not converged within the budget that keeps it cheaper.
    """
    where = "svdvals"
    check_method(method, SVDVALS_METHODS, where)
    X, xp = as_float_array(M, "M")
    if X.ndim != 2:
        raise ValueError(f"{where}: M must be a 2-D array, got shape {tuple(X.shape)}")
    m, n = X.shape
    k = resolve_k(k, min(m, n), where) if min(m, n) > 0 or k is not None else 0
    if k == 0:
        return _empty(xp)
    check_finite(X, "M", where)
    costs = None
    if method == "auto":
        method, costs = choose_svdvals_method(m, n, k, X.dtype, gpu=xp is not np)
    if method == "exact":
        s = _exact_svdvals(X)[:k]
    elif method == "gram":
        s = _gram_svdvals(X, k)
    else:
        s = _run_topk(
            linalg_topk.array_operator(X, X.dtype), k, min(m, n), costs, lambda: svdvals(X, k, _next_best(costs)), where
        )
    check_result(s, where)
    return s


def _next_best(costs):
    rest = {m: c for m, c in costs.items() if m != "topk"}
    return min(rest, key=rest.get)


def _run_topk(op, k, rank_bound, costs, fallback, where):
    """Top-k for an explicit request (warns if unconverged) or for auto (iterations capped so
    it stays cheaper than the next best method, which it falls back to if unconverged)."""
    b = min(k + linalg_topk.default_oversample(k, rank_bound), rank_bound)
    tol = linalg_topk.TOPK_TOL[op.dtype]
    depth = linalg_topk.KRYLOV_DEPTH
    if costs is None:
        res = linalg_topk.block_krylov(op, k, b, None, tol, linalg_topk.TOPK_MAX_ITER, 0, where, depth)
        linalg_topk.warn_unconverged(res, where)
        return res.values
    per_iter = costs["topk"] / AUTO_TOPK_COLD_ITERS
    budget = max(2, int(min(c for name, c in costs.items() if name != "topk") / per_iter))
    res = linalg_topk.block_krylov(op, k, b, None, tol, budget, 0, where, depth)
    return res.values if res.converged else fallback()


# --------------------------------------------------------------------------- gradients


def _compressed_transpose(X, M):
    """R with X^T = Q R, Q orthonormal: R (M x M) when X has more columns than rows, else X^T."""
    xp = get_array_module(X)
    if X.shape[1] > M:
        return xp.linalg.qr(X.T, mode="r")
    return X.T


def _gradient_gram(A2, D2, k):
    """Eigenvalues of the smaller Gram of G = A^T D, in float64, forming G only when cheaper."""
    xp = get_array_module(A2)
    M, fin, fout = A2.shape[0], A2.shape[1], D2.shape[1]
    A64 = A2.astype(xp.float64, copy=False)
    D64 = D2.astype(xp.float64, copy=False)
    if fout > fin:  # G G^T = A^T (D D^T) A: swap roles so the Gram side is "out"
        A64, D64, fin, fout = D64, A64, fout, fin
    # G^T G (fout x fout) = D^T (A A^T) D
    via_g, via_k = gram_routes(M, fin, fout, Costs(xp is not np))
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
    check_method(method, GRADIENT_METHODS, where)
    A2, D2, xp = check_factors(A, D, where)
    M, fin, fout = A2.shape[0], A2.shape[1], D2.shape[1]
    bound = min(M, fin, fout)
    k = 0 if (bound == 0 and k is None) else resolve_k(k, bound, where)
    if k == 0:
        return _empty(xp)
    dtype = work_dtype(A2, D2)
    costs = None
    if method == "auto":
        method, costs = choose_gradient_method(M, fin, fout, k, dtype, gpu=xp is not np)
    if method == "direct":
        with np.errstate(over="ignore", invalid="ignore"):  # reported by check_result
            G = A2.astype(dtype, copy=False).T @ D2.astype(dtype, copy=False)
        check_result(G, where)
        s = _exact_svdvals(G)[:k]
    elif method == "factored":
        Ra = _compressed_transpose(A2.astype(dtype, copy=False), M)
        Rd = _compressed_transpose(D2.astype(dtype, copy=False), M)
        core = Ra.astype(xp.float64, copy=False) @ Rd.astype(xp.float64, copy=False).T
        check_result(core, where)
        s = _exact_svdvals(core)[:k]
    elif method == "gram":
        s = _gradient_gram(A2, D2, k)
    else:
        s = _run_topk(
            linalg_topk.factor_operator(A2, D2), k, bound, costs, lambda: gradient_svdvals(A2, D2, k, _next_best(costs)), where
        )
    check_result(s, where)
    return s


# --------------------------------------------------------------------------- noise floor


def noise_floor(M, dtype=None, method="exact"):
    """The level below which singular values of the matrix M are numerically zero (float):
    sigma_1(M) * max(m, n) * eps, eps of M's dtype unless ``dtype`` names the dtype its data
    came in; ``method`` as in :func:`noise_floor_from` (which gives the argument)."""
    X, _ = as_float_array(M, "M")
    if X.ndim != 2:
        raise ValueError(f"noise_floor: M must be a 2-D array, got shape {tuple(X.shape)}")
    if dtype is None:  # the dtype M came in (float16 data keep float16's resolution)
        dtype = getattr(M.data if isinstance(M, Tensor) else M, "dtype", X.dtype)
    sigma_max = float(svdvals(X, 1)[0]) if X.size else 0.0
    return noise_floor_from(sigma_max, X.shape, dtype, method=method)


def gradient_noise_floor(A, D, method="auto"):
    """The noise floor of the singular values of G = A^T D (float), factors as in
    :func:`gradient_svdvals`: max(in, out) * eps * sigma_1(A) * sigma_1(D), eps of the coarser
    factor dtype; see :func:`noise_floor_from` for why the factors set the scale."""
    A2, D2, _ = check_factors(A, D, "gradient_noise_floor")
    if A2.size == 0 or D2.size == 0:
        return 0.0
    scale = float(svdvals(A2, 1)[0]) * float(svdvals(D2, 1)[0])
    return noise_floor_from(scale, (A2.shape[1], D2.shape[1]), coarser_dtype(A2.dtype, D2.dtype), method=method)

