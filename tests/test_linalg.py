"""autospec.linalg: singular values of matrices and of gradients G = A^T D.

Every method is checked against numpy.linalg.svd of the same data in float64 (for float32
inputs: of the float32 numbers, upcast), with a tolerance stated per method:

* exact (svdvals) / direct, factored (gradient, float64): |s - ref| <= 1e-12 * scale, where
  scale = sigma_1 for svdvals and ||A||_2 ||D||_2 (the rounding scale of the products) for
  gradients. For float32 gradients the products run in float32: 1e-5 * scale.
* gram: |s^2 - ref^2| <= 50 eps64 scale^2 (eigenvalue-level error; float64 Gram for both
  input dtypes), i.e. relative error of s_i about 25 eps64 (scale / s_i)^2.
* topk: |s - ref| <= tol * ref + floor, tol = 1e-6 (float64) / 1e-4 (float32 work),
  floor = 4 sqrt(max(m, n)) eps(work) scale: the criterion topk_svdvals documents.
"""
import tracemalloc

import numpy as np
import pytest

import autospec.linalg as la
from autospec import linalg_costs, linalg_topk
from autospec.linalg import (
    ConvergenceWarning,
    NonFiniteError,
    Operator,
    TopKTracker,
    gradient_operator,
    gradient_svdvals,
    svdvals,
    topk_svdvals,
)
from minigrad.backend import get_array_module, to_numpy

EPS64 = np.finfo(np.float64).eps
EPS32 = np.finfo(np.float32).eps
DTYPES = [np.float64, np.float32]


def with_spectrum(rng, m, n, s):
    """m x n float64 matrix U diag(s) V^T with orthonormal U, V (len(s) <= min(m, n))."""
    U = np.linalg.qr(rng.standard_normal((m, len(s))))[0]
    V = np.linalg.qr(rng.standard_normal((n, len(s))))[0]
    return (U * s) @ V.T


def ref_svdvals(x):
    return np.linalg.svd(to_numpy(x).astype(np.float64), compute_uv=False)


def topk_bound(ref, shape, dtype, scale):
    tol = 1e-6 if dtype == np.float64 else 1e-4
    eps = EPS64 if dtype == np.float64 else EPS32
    return tol * ref + 4 * np.sqrt(max(shape)) * eps * scale


def check_backend(s, xp):
    assert get_array_module(s) is xp
    assert s.dtype == np.float64


# ----------------------------------------------------------------------------- svdvals

MATRIX_CASES = {
    "random": lambda rng: rng.standard_normal((60, 40)),
    "tall": lambda rng: rng.standard_normal((300, 25)),
    "wide": lambda rng: rng.standard_normal((20, 250)),
    "rank_deficient": lambda rng: with_spectrum(rng, 50, 40, 2.0 ** -np.arange(8.0)),
    "decaying": lambda rng: with_spectrum(rng, 120, 90, 0.85 ** np.arange(90.0)),
}


@pytest.mark.parametrize("case", sorted(MATRIX_CASES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["exact", "gram", "auto"])
def test_svdvals_all_values_match_numpy(device, xp, rng, case, dtype, method):
    host = MATRIX_CASES[case](rng).astype(dtype)
    ref = ref_svdvals(host)
    s = svdvals(xp.asarray(host), method=method)
    check_backend(s, xp)
    s = to_numpy(s)
    assert s.shape == ref.shape
    assert np.all(np.diff(s) <= 0), "descending"
    if method == "exact":
        np.testing.assert_allclose(s, ref, rtol=1e-12, atol=1e-12 * ref[0])
    else:  # gram, or auto (exact or gram here): the gram bound holds for both
        assert np.all(np.abs(s**2 - ref**2) <= 50 * EPS64 * ref[0] ** 2)


@pytest.mark.parametrize("case", ["random", "tall", "wide", "decaying"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_svdvals_topk_matches_numpy(device, xp, rng, case, dtype):
    host = MATRIX_CASES[case](rng).astype(dtype)
    ref = ref_svdvals(host)[:5]
    s = to_numpy(svdvals(xp.asarray(host), k=5, method="topk"))
    assert np.all(np.abs(s - ref) <= topk_bound(ref, host.shape, dtype, ref[0]))


@pytest.mark.parametrize("method", ["exact", "gram", "topk", "auto"])
def test_svdvals_top_k_is_prefix(rng, method):
    X = with_spectrum(rng, 80, 60, 0.8 ** np.arange(60.0))
    s = svdvals(X, k=7, method=method)
    assert s.shape == (7,)
    np.testing.assert_allclose(s, ref_svdvals(X)[:7], rtol=1e-6)


def test_svdvals_accepts_integer_and_float16(rng):
    X = rng.integers(-5, 5, size=(10, 7))
    np.testing.assert_allclose(svdvals(X), ref_svdvals(X), rtol=1e-12)
    H = rng.standard_normal((10, 7)).astype(np.float16)
    np.testing.assert_allclose(svdvals(H), ref_svdvals(H), rtol=1e-12)


def test_svdvals_empty_matrix_gives_no_values():
    assert svdvals(np.zeros((0, 5))).shape == (0,)


# ----------------------------------------------------------------------------- the Gram accuracy claim


def test_gram_accuracy_claim_float64(rng):
    """Relative error ~ eps64 (s_1/s_i)^2 above sqrt(eps64) s_1; below it values are lost."""
    sig = np.logspace(0, -13, 27)
    X = with_spectrum(rng, 200, 27, sig)
    ref = ref_svdvals(X)  # exact to ~eps64 s_1 absolute
    s = svdvals(X, method="gram")
    resolved = ref >= 1e-6
    rel = np.abs(s - ref) / ref
    assert np.all(rel[resolved] <= 25 * EPS64 * (ref[0] / ref[resolved]) ** 2)
    assert np.all(rel[ref >= 1e-4] < 1e-7)  # "values above 1e-4 sigma_1 keep ~8 digits"
    lost = ref < 1e-10
    assert np.all(s[lost] <= 10 * np.sqrt(EPS64) * ref[0])  # noise, at most ~sqrt(eps) s_1
    assert np.all(rel[lost] >= 0.5)  # ...really lost (noise, or clipped to 0); exact keeps them:
    exact = svdvals(X, method="exact")
    assert np.all(np.abs(exact - ref)[lost] <= 10 * EPS64)


def test_gram_float32_input_is_as_accurate_as_float32_data(rng):
    """The Gram matrix is formed in float64: a float32 input keeps the float64 bound,
    where a float32 Gram matrix would lose everything below sqrt(eps32) s_1 = 3.5e-4 s_1."""
    sig = np.logspace(0, -6, 13)
    X32 = with_spectrum(rng, 150, 13, sig).astype(np.float32)
    ref = ref_svdvals(X32)
    s = svdvals(X32, method="gram")
    rel = np.abs(s - ref) / ref
    assert np.all(rel <= 25 * EPS64 * (ref[0] / ref) ** 2)
    naive = np.sqrt(np.clip(np.linalg.eigvalsh(X32.T @ X32)[::-1], 0, None))  # float32 Gram
    assert np.abs(naive[-1] - ref[-1]) / ref[-1] >= 0.5  # lost (noise, or clipped to 0)


# ----------------------------------------------------------------------------- gradient_svdvals

GRADIENT_CASES = {  # (N, P, in, out); P = 0 means 2-D (M, features) input with M = N
    "M_large": (120, 0, 30, 20),
    "M_small": (12, 0, 40, 30),  # N*P < min(in, out)
    "M_between": (25, 0, 60, 10),  # out < M < in
    "tied_3d": (4, 5, 30, 25),  # (N, P, *) with N*P = 20 < min(in, out)
    "tied_3d_large": (6, 9, 16, 12),
}


def make_factors(rng, case, dtype):
    N, P, fin, fout = GRADIENT_CASES[case]
    lead = (N, P) if P else (N,)
    A = rng.standard_normal(lead + (fin,)).astype(dtype)
    D = rng.standard_normal(lead + (fout,)).astype(dtype)
    return A, D


def gradient_reference(A, D):
    A2 = A.reshape(-1, A.shape[-1]).astype(np.float64)
    D2 = D.reshape(-1, D.shape[-1]).astype(np.float64)
    bound = min(A2.shape[0], A2.shape[1], D2.shape[1])
    scale = np.linalg.norm(A2, 2) * np.linalg.norm(D2, 2)
    return ref_svdvals(A2.T @ D2)[:bound], scale


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["direct", "factored", "gram", "auto"])
def test_gradient_svdvals_match_numpy(device, xp, rng, case, dtype, method):
    A, D = make_factors(rng, case, dtype)
    ref, scale = gradient_reference(A, D)
    s = gradient_svdvals(xp.asarray(A), xp.asarray(D), method=method)
    check_backend(s, xp)
    s = to_numpy(s)
    assert s.shape == ref.shape  # k defaults to the rank bound min(in, out, M)
    gram_ok = np.abs(s**2 - ref**2) <= 50 * EPS64 * scale**2
    product_tol = (1e-12 if dtype == np.float64 else 1e-5) * scale
    exact_ok = np.abs(s - ref) <= product_tol
    if method == "gram":
        assert np.all(gram_ok)
    elif method == "auto":
        assert np.all(gram_ok | exact_ok)
    else:
        assert np.all(exact_ok)


@pytest.mark.parametrize("case", ["M_large", "tied_3d", "M_between"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_topk_matches_numpy(device, xp, rng, case, dtype):
    A, D = make_factors(rng, case, dtype)
    ref, scale = gradient_reference(A, D)
    k = 3
    s = to_numpy(gradient_svdvals(xp.asarray(A), xp.asarray(D), k=k, method="topk"))
    fin, fout = A.shape[-1], D.shape[-1]
    assert np.all(np.abs(s - ref[:k]) <= topk_bound(ref[:k], (fin, fout), dtype, scale))


@pytest.mark.parametrize("method", ["factored", "topk"])
def test_gradient_never_forms_G_when_rows_are_few(rng, monkeypatch, method):
    """M = 8 rows, in = out = 1500: G would take 18 MB; factored and topk stay far below."""
    A = rng.standard_normal((8, 1500))
    D = rng.standard_normal((8, 1500))
    # reference without G: sigma(G)^2 are the eigenvalues of (A A^T)(D D^T), an 8 x 8 product
    ref = np.sqrt(np.sort(np.linalg.eigvals((A @ A.T) @ (D @ D.T)).real)[::-1])
    shapes = []
    real = la._exact_svdvals
    monkeypatch.setattr(la, "_exact_svdvals", lambda M: shapes.append(M.shape) or real(M))
    k = 8 if method == "factored" else 2
    tracemalloc.start()
    try:
        s = gradient_svdvals(A, D, k=k, method=method)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    G_bytes = 1500 * 1500 * 8
    assert peak < G_bytes / 4, f"peak {peak} bytes suggests G ({G_bytes} bytes) was formed"
    assert all(shape == (8, 8) for shape in shapes)  # factored: SVD of the M x M core only
    np.testing.assert_allclose(s, ref[:k], rtol=1e-6)


def test_factored_equals_direct_on_mixed_sides(rng):
    """One side wider than M, the other not: only that side is compressed."""
    A = rng.standard_normal((3, 7, 50))  # M = 21 < in = 50
    D = rng.standard_normal((3, 7, 15))  # out = 15 < M
    np.testing.assert_allclose(
        gradient_svdvals(A, D, method="factored"), gradient_svdvals(A, D, method="direct"), rtol=1e-11, atol=1e-11
    )


def test_gradient_gram_via_row_gram_matches_direct(rng):
    """M << in, out: the Gram of G is built as D^T (A A^T) D, never forming G."""
    A = rng.standard_normal((10, 300))
    D = rng.standard_normal((10, 200))
    assert linalg_costs.gradient_gram_cost(10, 300, 200) < 2.0 * 10 * 300 * 200  # the K route is chosen
    gram, direct = gradient_svdvals(A, D, method="gram"), gradient_svdvals(A, D, method="direct")
    np.testing.assert_allclose(gram, direct, rtol=1e-9)


def test_gradient_rank_one_per_sample(rng):
    """One sample, P = 1: G = a^T d has the single singular value |a| |d|."""
    a, d = rng.standard_normal((1, 30)), rng.standard_normal((1, 20))
    for method in ("direct", "factored", "gram", "auto"):
        np.testing.assert_allclose(
            gradient_svdvals(a, d, method=method), [np.linalg.norm(a) * np.linalg.norm(d)], rtol=1e-12
        )


def test_gradient_operator_products_match_explicit_G(rng):
    """Operator products agree with the explicit G (G v = A^T (D v), G^T u = D^T (A u))."""
    A, D = rng.standard_normal((4, 3, 9)), rng.standard_normal((4, 3, 7))
    op = gradient_operator(A, D)
    G = np.einsum("npi,npo->io", A, D)
    V, U = rng.standard_normal((7, 2)), rng.standard_normal((9, 2))
    np.testing.assert_allclose(op.matmat(V), G @ V, rtol=1e-12)
    np.testing.assert_allclose(op.rmatmat(U), G.T @ U, rtol=1e-12)
    assert op.shape == (9, 7)


def test_gradient_empty_rows_give_no_values():
    assert gradient_svdvals(np.zeros((0, 4)), np.zeros((0, 3))).shape == (0,)


# ----------------------------------------------------------------------------- top-k and warm starts


def test_topk_warm_start_needs_fewer_iterations_and_matches_exact(device, xp, rng):
    X = with_spectrum(rng, 300, 200, 1.0 / np.sqrt(np.arange(1.0, 151.0)))
    first = topk_svdvals(xp.asarray(X), 10)
    X2 = X + 1e-4 * rng.standard_normal(X.shape) / np.sqrt(300)  # one small training step
    warm = topk_svdvals(xp.asarray(X2), 10, init=first.basis)
    cold = topk_svdvals(xp.asarray(X2), 10)
    assert warm.converged and cold.converged
    assert warm.iterations < cold.iterations
    ref = ref_svdvals(X2)[:10]
    np.testing.assert_allclose(to_numpy(warm.values), ref, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(cold.values), ref, rtol=1e-6)
    assert topk_svdvals(xp.asarray(X2), 10, init=warm.basis).iterations == 2  # unchanged matrix


def test_topk_warm_start_from_unrelated_matrix_still_converges(rng):
    X = with_spectrum(rng, 200, 150, 1.0 / np.arange(1.0, 101.0))
    Y = with_spectrum(rng, 200, 150, 1.0 / np.arange(1.0, 101.0))
    r = topk_svdvals(X, 8, init=topk_svdvals(Y, 8).basis)
    assert r.converged
    np.testing.assert_allclose(r.values, ref_svdvals(X)[:8], rtol=1e-6)


@pytest.mark.parametrize("strength", [10.0, 1.2, 0.5])
def test_topk_warm_start_finds_a_direction_missing_from_init(rng, strength):
    """A new singular direction orthogonal to the previous basis (and invisible to it: the
    old subspace stays invariant) is found thanks to the fresh random start columns."""
    U = np.linalg.qr(rng.standard_normal((300, 150)))[0]
    V = np.linalg.qr(rng.standard_normal((200, 150)))[0]
    X = (U * 0.8 ** np.arange(150.0)) @ V.T
    prev = topk_svdvals(X, 10)
    u = rng.standard_normal(300)
    u -= U @ (U.T @ u)  # outside range(X)
    v = rng.standard_normal(200)
    v -= prev.basis @ (prev.basis.T @ v)  # orthogonal to the old basis
    X2 = X + strength * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    r = topk_svdvals(X2, 10, init=prev.basis)
    assert r.converged
    np.testing.assert_allclose(r.values, ref_svdvals(X2)[:10], rtol=1e-6)


def test_topk_float32_work_and_basis_dtype(device, xp, rng):
    X = with_spectrum(rng, 150, 100, 0.9 ** np.arange(100.0)).astype(np.float32)
    r = topk_svdvals(xp.asarray(X), 6)
    assert r.converged and r.basis.dtype == np.float32 and r.basis.shape == (100, 16)
    assert get_array_module(r.basis) is xp
    ref = ref_svdvals(X)[:6]
    assert np.all(np.abs(to_numpy(r.values) - ref) <= topk_bound(ref, X.shape, np.float32, ref[0]))


def test_topk_matrix_free_pair_and_operator(rng):
    A, D = rng.standard_normal((40, 70)), rng.standard_normal((40, 50))
    G = A.T @ D
    ref = ref_svdvals(G)[:4]
    pair = topk_svdvals((lambda V: A.T @ (D @ V), lambda U: D.T @ (A @ U)), 4, shape=(70, 50))
    np.testing.assert_allclose(pair.values, ref, rtol=1e-6)
    op = topk_svdvals(gradient_operator(A, D), 4)
    np.testing.assert_allclose(op.values, ref, rtol=1e-6)
    assert isinstance(gradient_operator(A, D), Operator)


def test_topk_rank_deficient_and_zero_matrix(rng):
    X = with_spectrum(rng, 60, 50, [3.0, 2.0, 1.0])
    r = topk_svdvals(X, 5)  # k beyond the rank: two values are (numerically) zero
    assert r.converged
    np.testing.assert_allclose(r.values, [3, 2, 1, 0, 0], atol=1e-12)
    z = topk_svdvals(np.zeros((20, 10)), 3)
    assert z.converged and np.all(z.values == 0)


def test_topk_full_space_block_is_exact(rng):
    X = rng.standard_normal((12, 8))
    r = topk_svdvals(X, 8)  # b = min(m, n): the block spans everything
    assert r.converged and r.iterations == 1
    np.testing.assert_allclose(r.values, ref_svdvals(X), rtol=1e-12)


def test_topk_tracker_follows_a_drifting_matrix(rng):
    X = with_spectrum(rng, 150, 100, 1.0 / np.arange(1.0, 101.0))
    tracker = TopKTracker(6, restart_every=4)
    for step in range(6):
        X = X + 1e-3 * rng.standard_normal(X.shape) / np.sqrt(150)
        np.testing.assert_allclose(tracker(X), ref_svdvals(X)[:6], rtol=1e-6)
        assert tracker.last.converged
    assert tracker.calls == 6
    tracker(np.ones((30, 20)))  # new shape: starts cold instead of failing
    assert tracker.last.values.shape == (6,)


def test_topk_unconverged_result_and_warning(rng, monkeypatch):
    X = rng.standard_normal((200, 200))  # flat spectrum: needs many iterations
    r = topk_svdvals(X, 5, max_iter=2)
    assert not r.converged and r.iterations == 2 and r.residuals.shape == (5,)
    monkeypatch.setattr(linalg_topk, "TOPK_MAX_ITER", 2)
    with pytest.warns(ConvergenceWarning, match="stopped after 2 iterations"):
        svdvals(X, k=5, method="topk")


def test_auto_falls_back_when_topk_exceeds_its_budget(rng, monkeypatch):
    X = with_spectrum(rng, 400, 300, 0.97 ** np.arange(300.0))
    real = linalg_topk.block_krylov
    calls = []

    def capped(op, k, b, init, tol, max_iter, seed, where, depth):
        calls.append(max_iter)
        return real(op, k, b, init, tol, 1, seed, where, depth)  # never converges

    monkeypatch.setattr(linalg_topk, "block_krylov", capped)
    assert la.choose_svdvals_method(400, 300, 5, np.dtype(np.float64))[0] == "topk"
    s = svdvals(X, k=5)
    assert calls and calls[0] >= 2
    np.testing.assert_allclose(s, ref_svdvals(X)[:5], rtol=1e-12)


def test_auto_cost_model_choices():
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    assert la.choose_svdvals_method(40, 30, 30, f64)[0] == "exact"
    assert la.choose_svdvals_method(5000, 100, 100, f32)[0] == "gram"  # one side much smaller
    assert la.choose_svdvals_method(5000, 100, 100, f64)[0] == "exact"  # gram not used for f64
    assert la.choose_svdvals_method(2000, 2000, 10, f64)[0] == "topk"  # k << min(m, n)
    assert la.choose_gradient_method(20, 2000, 2000, 20, f32)[0] == "factored"  # M << in, out
    assert la.choose_gradient_method(5000, 100, 10, 10, f64)[0] == "direct"
    # the paper's MLP layer 784 -> 784 with M = 2000, as measured (bench/linalg_methods.py)
    assert la.choose_gradient_method(2000, 784, 784, 32, f32)[0] == "topk"
    assert la.choose_gradient_method(2000, 784, 784, 784, f32)[0] == "gram"
    assert la.choose_gradient_method(200, 784, 784, 200, f32)[0] == "factored"
    # on a GPU, cuSOLVER's SVD is slow and top-k iterations are latency-bound
    assert la.choose_gradient_method(2000, 784, 784, 32, f32, gpu=True)[0] == "gram"
    assert la.choose_gradient_method(20, 784, 784, 20, f32, gpu=True)[0] == "factored"
    assert la.choose_svdvals_method(2000, 784, 32, f64, gpu=True)[0] == "exact"
    # a tracked (warm-started) top-k costs a few shallow iterations: at N = 8000 it beats the
    # Gram matrix, a cold start does not; a tracker that needed many iterations loses again
    assert la.choose_svdvals_method(8000, 784, 32, f32)[0] == "gram"
    assert la.choose_svdvals_method(8000, 784, 32, f32, warm_iters=2)[0] == "topk"
    assert la.choose_svdvals_method(8000, 784, 32, f32, warm_iters=8)[0] == "gram"


def test_gradient_operator_explicit_or_matrix_free(rng):
    """explicit=True forms G once (a snapshot); matrix-free reads A and D at every product.
    Automatic: matrix-free for few rows (M (in + out) <= 2 in out), explicit otherwise."""
    V = rng.standard_normal((7, 3))

    def forms_G(M, explicit):
        A, D = rng.standard_normal((M, 9)), rng.standard_normal((M, 7))
        op = gradient_operator(A, D, explicit=explicit)
        before = A.T @ (D @ V)
        np.testing.assert_allclose(op.matmat(V), before, rtol=1e-12)
        U = rng.standard_normal((9, 3))
        np.testing.assert_allclose(op.rmatmat(U), D.T @ (A @ U), rtol=1e-12)
        A *= 2.0  # in place: visible to a matrix-free operator only
        return np.allclose(op.matmat(V), before)

    assert forms_G(50, True) and not forms_G(50, False)
    assert forms_G(50, None)  # 50 * 16 > 2 * 63
    assert not forms_G(3, None)  # 3 * 16 <= 2 * 63


# ----------------------------------------------------------------------------- failures


def test_exact_falls_back_to_gesvd_when_gesdd_does_not_converge(device, xp, rng, monkeypatch):
    X = rng.standard_normal((30, 20))
    real = xp.linalg.svd
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise np.linalg.LinAlgError("SVD did not converge")
        return real(*args, **kwargs)

    monkeypatch.setattr(xp.linalg, "svd", flaky)
    s = svdvals(xp.asarray(X), method="exact")
    check_backend(s, xp)
    np.testing.assert_allclose(to_numpy(s), ref_svdvals(X), rtol=1e-12)
    assert calls


def test_exact_falls_back_when_svd_returns_nan(rng, monkeypatch):
    """cuSOLVER reports failure as NaN output rather than an exception."""
    X = rng.standard_normal((15, 10))
    real = np.linalg.svd
    monkeypatch.setattr(np.linalg, "svd", lambda *a, **kw: np.full(10, np.nan))
    import scipy.linalg

    used = []
    real_scipy = scipy.linalg.svd
    monkeypatch.setattr(
        scipy.linalg, "svd", lambda *a, **kw: used.append(kw.get("lapack_driver")) or real_scipy(*a, **kw)
    )
    s = svdvals(X, method="exact")
    assert used == ["gesvd"]
    np.testing.assert_allclose(s, real(X, compute_uv=False), rtol=1e-12)


def test_nan_input_names_the_input(device, xp):
    bad = xp.ones((5, 4))
    bad[2, 1] = xp.nan
    good = xp.ones((5, 3))
    with pytest.raises(NonFiniteError, match="'M'"):
        svdvals(bad)
    with pytest.raises(NonFiniteError, match="'A'"):
        gradient_svdvals(bad, good)
    inf = xp.ones((5, 3))
    inf[0, 0] = -xp.inf
    with pytest.raises(NonFiniteError, match="'D'.*1 of 15"):
        gradient_svdvals(xp.ones((5, 4)), inf, method="factored")
    with pytest.raises(NonFiniteError, match="'init'"):
        topk_svdvals(xp.ones((5, 4)), 1, init=bad[:4])
    assert issubclass(NonFiniteError, ValueError)


def test_huge_finite_float32_is_not_mistaken_for_nan():
    X = np.full((4, 3), 3e38, dtype=np.float32)  # the sum overflows, the entries are finite
    np.testing.assert_allclose(svdvals(X, method="exact"), ref_svdvals(X), rtol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: svdvals(np.ones(5)), "2-D"),
        (lambda: svdvals(np.ones((2, 3, 4))), "2-D"),
        (lambda: svdvals(np.ones((4, 3)), k=0), "1 <= k <= 3"),
        (lambda: svdvals(np.ones((4, 3)), k=4), "1 <= k <= 3"),
        (lambda: svdvals(np.ones((4, 3)), method="lanczos"), "unknown method 'lanczos'"),
        (lambda: gradient_svdvals(np.ones((5, 3)), np.ones((6, 2))), "leading"),
        (lambda: gradient_svdvals(np.ones((2, 3, 4)), np.ones((6, 2))), "leading"),
        (lambda: gradient_svdvals(np.ones(5), np.ones(5)), r"\(M, features\)"),
        (lambda: gradient_svdvals(np.ones((5, 3)), np.ones((5, 2)), k=3), "1 <= k <= 2"),
        (lambda: gradient_svdvals(np.ones((5, 3)), np.ones((5, 2)), method="exact"), "unknown method"),
        (lambda: topk_svdvals(np.ones((5, 4)), 5), "1 <= k <= min"),
        (lambda: topk_svdvals(np.ones((5, 4)), 2, init=np.ones((5, 2))), r"init must have shape \(n, j\) = \(4"),
        (lambda: topk_svdvals((np.sum, np.sum), 1), "shape="),
        (lambda: topk_svdvals(np.ones((5, 4)), 1, tol=0), "tol"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: svdvals(np.ones((3, 2), dtype=complex)), "complex"),
        (lambda: svdvals(np.array([["a", "b"]])), "numeric"),
        (lambda: svdvals(np.ones((3, 2)), k=1.5), "k must be an int"),
        (lambda: svdvals(np.ones((3, 2)), k=True), "k must be an int"),
    ],
)
def test_bad_types_are_type_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_float32_overflow_in_G_is_reported_not_misread(rng):
    A = np.full((4, 3), 3e20, dtype=np.float32)  # finite, but A^T D overflows float32
    D = np.full((4, 2), 3e20, dtype=np.float32)
    with pytest.raises(NonFiniteError, match="overflowed"):
        gradient_svdvals(A, D, method="direct")
    # float64 work (or the float64 Gram) handles the same data
    ref = gradient_svdvals(A.astype(np.float64), D, method="direct")  # rank one: [s1, ~0]
    np.testing.assert_allclose(gradient_svdvals(A, D, method="gram"), ref, rtol=1e-12, atol=1e-12 * ref[0])
