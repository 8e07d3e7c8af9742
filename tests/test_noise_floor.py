"""Noise floors: exact rank-r matrices show exactly r values above their floor, on every route."""
import numpy as np
import pytest

import autospec
from autospec import linalg as la


def orthonormal(rng, n, r):
    return np.linalg.qr(rng.standard_normal((n, r)))[0]


def rank_r(rng, m, n, r, spread=1e-3):
    """An (m, n) matrix of exact rank r with singular values spread from 1 down to ``spread``."""
    return (orthonormal(rng, m, r) * np.logspace(0, np.log10(spread), r)) @ orthonormal(rng, n, r).T


def cancelling_factors(rng, M=300, fin=40, fout=30, r=6):
    """A (M, fin), D (M, fout) whose G = A^T D has exact rank r and is ~100x smaller than
    sigma_1(A) sigma_1(D): D is orthogonal to A's columns but for a small planted part."""
    A = rng.standard_normal((M, fin))
    Q = np.linalg.qr(A)[0]
    Z = rng.standard_normal((M, fout))
    Z -= Q @ (Q.T @ Z)  # A^T Z = 0
    scale = np.linalg.norm(A, 2) * np.linalg.norm(Z, 2)
    B = (orthonormal(rng, fin, r) * np.logspace(-2, -4, r)) @ orthonormal(rng, fout, r).T * scale
    return A, Z + A @ np.linalg.solve(A.T @ A, B)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["exact", "gram", "topk", "auto"])
def test_rank_r_matrix_has_r_values_above_its_floor(rng, dtype, method):
    m, n, r = 200, 60, 12
    X = rank_r(rng, m, n, r).astype(dtype)
    values = la.svdvals(X, 15 if method == "topk" else None, method=method)
    floor = autospec.noise_floor(X, method=method)
    assert np.sum(values > floor) == r
    if method == "gram" and dtype == np.float64:
        # the Gram route's zeros come out near sqrt(eps64) sigma_1, far above the plain rule
        assert np.sum(values > la.noise_floor_from(values[0], X.shape, dtype)) > r


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["direct", "factored", "gram", "topk", "auto"])
def test_gradient_floor_follows_the_factors_when_G_cancels(rng, dtype, method):
    r = 6
    A, D = (x.astype(dtype) for x in cancelling_factors(rng, r=r))
    values = la.gradient_svdvals(A, D, 8 if method == "topk" else None, method=method)
    floor = la.gradient_noise_floor(A, D, method=method)
    assert np.sum(values > floor) == r
    # a floor relative to sigma_1(G) would count the factors' rounding as signal
    if method in ("direct", "auto"):
        assert np.sum(values > la.noise_floor_from(values[0], (A.shape[1], D.shape[1]), dtype)) > r


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_well_conditioned_full_rank_keeps_every_value(rng, dtype):
    X = (orthonormal(rng, 150, 40) * np.linspace(1.0, 0.1, 40)) @ orthonormal(rng, 40, 40).T
    X = X.astype(dtype)
    for method in ("exact", "gram", "auto"):
        assert np.all(la.svdvals(X, method=method) > autospec.noise_floor(X, method=method))
    D = rng.standard_normal((150, 30)).astype(dtype)
    for method in ("direct", "factored", "gram", "auto"):
        assert np.all(la.gradient_svdvals(X, D, method=method) > la.gradient_noise_floor(X, D, method=method))


def test_floor_rule_and_its_inputs():
    eps32 = float(np.finfo(np.float32).eps)
    assert la.noise_floor_from(2.0, (10, 30), np.float32) == pytest.approx(2.0 * 30 * eps32)
    assert la.noise_floor_from(2.0, (10, 30), np.int64) == pytest.approx(2.0 * 30 * np.finfo(np.float64).eps)
    # float32 data: the Gram term never exceeds the rule (why auto may take the Gram route)
    for size in (1, 10, 10**3, 10**6):
        assert la.noise_floor_from(1.0, (size, 1), np.float32, method="gram") == la.noise_floor_from(
            1.0, (size, 1), np.float32)
    assert la.noise_floor_from(1.0, (100, 5), np.float64, method="gram") == pytest.approx(
        np.sqrt(100 * np.finfo(np.float64).eps))
    assert np.isnan(la.noise_floor_from(np.nan, (3, 3), np.float32))
    assert autospec.noise_floor(np.zeros((4, 3))) == 0.0
    # float16 data keep float16's resolution although the values are computed in float32
    X = np.eye(3, dtype=np.float16)
    assert autospec.noise_floor(X) == pytest.approx(3 * float(np.finfo(np.float16).eps))
    with pytest.raises(ValueError, match="sigma_max"):
        la.noise_floor_from(-1.0, (3, 3), np.float32)
    with pytest.raises(ValueError, match="shape"):
        la.noise_floor_from(1.0, (3,), np.float32)
    with pytest.raises(ValueError, match="unknown method"):
        la.noise_floor_from(1.0, (3, 3), np.float32, method="magic")


def test_largest_value_estimate_is_close_from_below(rng):
    for X in (rng.standard_normal((300, 80)), rank_r(rng, 100, 50, 5), np.ones((20, 7))):
        s1 = np.linalg.norm(X, 2)
        est = la.largest_svdval_estimate(X)
        assert 0.8 * s1 <= est <= s1 * (1 + 1e-12)
    assert la.largest_svdval_estimate(np.zeros((5, 4))) == 0.0
