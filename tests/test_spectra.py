"""LayerSpectra over real training runs: warm-started top-k stays exact, caches stay correct."""
import numpy as np
import pytest

import autospec
import minigrad as mg
from autospec import linalg, linalg_topk
from autospec.spectra import LayerSpectra
from minigrad import nn, optim
from tests.conftest import introspected_mse_step

EPS32 = float(np.finfo(np.float32).eps)


def exact(M):
    return np.linalg.svd(np.asarray(M, dtype=np.float64), compute_uv=False)


def assert_topk_accurate(got, M):
    """The documented top-k tolerance for float32 work: each value within 1e-4 relative
    (the residual tolerance bounds the value error), or the rounding floor
    4 sqrt(max(m, n)) eps32 s_1 for values near zero."""
    ref = exact(M)[: got.shape[0]]
    floor = 4 * np.sqrt(max(M.shape)) * EPS32 * ref[0]
    np.testing.assert_array_less(np.abs(got - ref), np.maximum(1e-4 * ref, floor) * (1 + 1e-9))


def as_recorded(q, A2, D2, rows):
    """The matrix whose spectrum a record holds for quantity q over ``rows`` (a boolean mask,
    or slice(None) for the batch) when P = 1: the batch's as is; a group's with the default
    group_scale="mean", G / N_g and A, D / sqrt(N_g)."""
    M = {"G": A2[rows].T @ D2[rows], "A": A2[rows], "D": D2[rows]}[q]
    if isinstance(rows, slice):
        return M
    n = int(np.sum(rows))
    return M / n if q == "G" else M / np.sqrt(n)


def autoencoder(fin, hidden, seed):
    mg.manual_seed(seed)
    return nn.Sequential(nn.Linear(fin, hidden), nn.ReLU(), nn.Linear(hidden, fin))


@pytest.mark.parametrize("method", ["topk", "auto", "gram"])
def test_warm_started_spectra_stay_exact_over_a_training_run(method, monkeypatch):
    """Float32 autoencoder, interleaved groups, the top-k trackers warm-started every step;
    at steps 4 and 7 the matrices change completely (new data, then new weights). With
    method="gram" the batch's Gram matrices of A and D are the sums of the groups'."""
    shared = []
    real_shared = LayerSpectra._shared_grams
    monkeypatch.setattr(LayerSpectra, "_shared_grams",
                        lambda self, *a: shared.append(real_shared(self, *a)) or shared[-1])
    rng = np.random.default_rng(3)
    N, fin, hidden = 120, 64, 6
    data = [rng.random((N, fin), dtype=np.float32), rng.standard_normal((N, fin)).astype(np.float32)]
    labels = np.array(["HC", "SZ", "SZ"] * (N // 3))
    model = autoencoder(fin, hidden, seed=0)
    spec = autospec.Introspector(model, method=method)
    opt = optim.SGD(model.parameters(), lr=0.5)
    caught = []
    for step in range(9):
        X = data[0] if step < 4 else data[1]
        if step == 7:  # a fresh model: every factor jumps
            fresh = autoencoder(fin, hidden, seed=1)
            for p, q in zip(model.parameters(), fresh.parameters()):
                p.data[...] = q.data
        caught.append(introspected_mse_step(model, spec, opt, mg.tensor(X), X, labels))
    layer_state = spec._layer_state["2.weight"]
    if method == "topk":
        assert layer_state._trackers, "the run should exercise the warm-started trackers"
    if method == "gram":
        assert shared and all(g is not None for g in shared), "every factor should share the groups' Grams"
    rec = spec.record
    for step, factors in enumerate(caught):
        for layer, (A, D) in factors.items():
            A2, D2 = A.reshape(-1, A.shape[-1]), D.reshape(-1, D.shape[-1])
            for group in (None, "HC", "SZ"):
                rows = slice(None) if group is None else labels == group
                for q in "ADG":
                    assert_topk_accurate(rec.series(layer, q, group=group)[step], as_recorded(q, A2, D2, rows))


def test_constant_activations_follow_a_change_of_groups():
    """The first layer's input is constant, but the groups change: group spectra must too."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 10)).astype(np.float32)
    model = autoencoder(10, 3, seed=0)
    spec = autospec.Introspector(model, quantities=("A",))
    groups = [np.array(["a", "b"] * 15)] * 3 + [np.array(["a"] * 10 + ["b"] * 20)] * 2
    for labels in groups:
        x = mg.tensor(X)
        loss = nn.functional.mse_loss(model(x), X)
        with spec.step(groups=labels):
            loss.backward()
    for step, labels in enumerate(groups):
        for g in ("a", "b"):
            got = spec.record.series("0.weight", "A", group=g)[step]  # A keeps its own rank bound
            np.testing.assert_allclose(got, exact(X[labels == g] / np.sqrt(np.sum(labels == g))), rtol=1e-5)


def test_constant_activations_are_checked_once_per_step(monkeypatch):
    """Groups of an unchanged batch need no equality checks of their own."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 12)).astype(np.float32)
    model = autoencoder(12, 4, seed=0)
    spec = autospec.Introspector(model, quantities=("A",))
    checks = []
    real = np.array_equal
    monkeypatch.setattr(np, "array_equal", lambda a, b, **kw: checks.append(a.shape) or real(a, b, **kw))
    labels = np.array(["HC", "SZ"] * 20)
    for _ in range(4):
        loss = nn.functional.mse_loss(model(mg.tensor(X)), X)
        with spec.step(groups=labels):
            loss.backward()
    assert all(shape[0] == 40 for shape in checks)  # only whole batches are compared
    np.testing.assert_allclose(spec.record.series("0.weight", "A", group="SZ")[-1],
                               exact(X[labels == "SZ"] / np.sqrt(20)), rtol=1e-5)


@pytest.mark.parametrize("conditioning", ["well", "ill", "rounding", "dependent"])
def test_orthonormalize_cholesky_and_svqb_paths(rng, conditioning, dtype=np.float64):
    """Both paths return orthonormal columns spanning X minus span(against)."""
    against = np.linalg.qr(rng.standard_normal((80, 5)))[0]
    X = rng.standard_normal((80, 12))
    if conditioning == "ill":  # kappa ~ 1e5: CholeskyQR2 is still safe
        X[:, 1] = X[:, 0] + 1e-5 * X[:, 1]
    if conditioning == "rounding":  # dependent to rounding level: SVQB drops a direction
        X[:, 1] = X[:, 0] + 1e-9 * X[:, 1]
    if conditioning == "dependent":
        X[:, 2] = X[:, 0] - X[:, 1]
        X[:, 3] = against @ X[:5, 3] + X[:, 4]  # inside span(against, X[:, 4])
    Q = linalg_topk.orthonormalize(X, against)
    np.testing.assert_allclose(Q.T @ Q, np.eye(Q.shape[1]), atol=1e-12)
    np.testing.assert_allclose(against.T @ Q, 0, atol=1e-12)
    expected_rank = {"well": 12, "ill": 12, "rounding": 11, "dependent": 10}[conditioning]
    assert Q.shape[1] == expected_rank
    # X minus its part in span(against) lies in span(Q)
    Xp = X - against @ (against.T @ X)
    np.testing.assert_allclose(Q @ (Q.T @ Xp), Xp, atol=1e-9 * np.abs(Xp).max())


def test_cholesky_inverse_refuses_ill_conditioned_grams(rng):
    X = rng.standard_normal((50, 6))
    X /= np.linalg.norm(X, axis=0)
    T = linalg_topk.cholesky_inverse(X.T @ X, 1e-6)
    np.testing.assert_allclose((X @ T).T @ (X @ T), np.eye(6), atol=1e-12)
    X[:, 5] = X[:, 4] + 1e-5 * X[:, 3]
    assert linalg_topk.cholesky_inverse(X.T @ X, 1e-6) is None
    assert linalg_topk.cholesky_inverse(-np.eye(3), 1e-6) is None  # not positive definite


def test_warm_depth_is_validated_and_poor_inits_still_converge(rng):
    X = rng.standard_normal((90, 60))
    with pytest.raises(ValueError, match="warm_depth"):
        linalg.topk_svdvals(X, 4, warm_depth=1)
    unrelated = np.linalg.qr(rng.standard_normal((60, 14)))[0]
    r = linalg.topk_svdvals(X, 4, init=unrelated)
    assert r.converged
    np.testing.assert_allclose(r.values, exact(X)[:4], rtol=1e-6)


@pytest.mark.parametrize("formed", [True, False])
def test_gradient_spectra_are_tracked_when_few_values_of_a_wide_layer_are_asked(formed, monkeypatch):
    """G's top-k is tracked from step to step like A's and D's, whether G is formed per group
    (the groups sum to the batch's) or used matrix-free through A and D (G too large to form);
    every recorded value agrees with the exact SVD to the top-k tolerance."""
    if not formed:
        monkeypatch.setattr("autospec.spectra._SHARE_G_MAX_ENTRIES", 0)
    rng = np.random.default_rng(4)
    N, fin, hidden, k = 300, 256, 128, 4
    X = rng.standard_normal((N, fin)).astype(np.float32)
    labels = np.array(["HC", "SZ"] * (N // 2))
    model = autoencoder(fin, hidden, seed=0)
    spec = autospec.Introspector(model, quantities=("G",), k=k)
    opt = optim.SGD(model.parameters(), lr=0.05)
    caught = [introspected_mse_step(model, spec, opt, mg.tensor(X), X, labels) for _ in range(4)]
    trackers = spec._layer_state["2.weight"]._trackers
    assert {("G", None), ("G", "HC"), ("G", "SZ")} <= set(trackers), "G's top-k should be warm-started"
    assert all(t.calls == 4 for key, t in trackers.items() if key[0] == "G")
    for step, factors in enumerate(caught):
        for layer, (A, D) in factors.items():
            A2, D2 = A.reshape(-1, A.shape[-1]), D.reshape(-1, D.shape[-1])
            for group in (None, "HC", "SZ"):
                rows = slice(None) if group is None else labels == group
                assert_topk_accurate(spec.record.series(layer, "G", group=group)[step], as_recorded("G", A2, D2, rows))
