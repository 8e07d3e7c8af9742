"""group_scale: group spectra that do not grow with group size ("mean"), or eq. 5's sums ("sum")."""
import numpy as np
import pytest

import autospec
import minigrad as mg
from minigrad import nn
from minigrad.factors import capture_factors

N, N_A, N_B, F = 40, 28, 12, 20


def exact(M):
    return np.linalg.svd(np.asarray(M, dtype=np.float64), compute_uv=False)


@pytest.fixture(scope="module")
def null_runs():
    """One fixed MLP 20-8-20 on random data with random targets (no group effect), 200 steps
    with the labels of a 28/12 split shuffled each step, recorded with both group scales at
    once; and the per-sample gradients g_n = a_n^T d_n of each layer (the same every step)."""
    rng = np.random.default_rng(0)
    x, y = mg.tensor(rng.standard_normal((N, F))), mg.tensor(rng.standard_normal((N, F)))
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(F, 8), nn.Tanh(), nn.Linear(8, F)).double()
    specs = {scale: autospec.Introspector(model, group_scale=scale) for scale in ("mean", "sum")}
    base = np.array(["a"] * N_A + ["b"] * N_B)
    shuffles = [rng.permutation(base) for _ in range(200)]
    for i, labels in enumerate(shuffles):
        model.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        with specs["mean"].step(groups=labels), specs["sum"].step(groups=labels), capture_factors(model) as f:
            loss.backward()
        if i == 0:
            per_sample = {name: np.einsum("ni,no->nio", fac.A[:, 0], fac.D[:, 0]) for name, fac in f.items()}
            factors = {name: (fac.A[:, 0].copy(), fac.D[:, 0].copy()) for name, fac in f.items()}
    return {scale: spec.record for scale, spec in specs.items()}, shuffles, per_sample, factors


def frobenius_ratio(rec, layer, q):
    """||X_a||_F / ||X_b||_F per step, from the full recorded spectra."""
    a, b = rec.series(layer, q, group="a"), rec.series(layer, q, group="b")
    return np.sqrt((a**2).sum(axis=1) / (b**2).sum(axis=1))


def expected_mean_ratio(g):
    """sqrt(E||mean of N_A g's||^2 / E||mean of N_B g's||^2) for subsets drawn without replacement:
    E||mean_n||_F^2 = ||mu||_F^2 + (N - n) / (n (N - 1)) S^2, S^2 = mean_n ||g_n - mu||_F^2."""
    mu = g.mean(axis=0)
    spread = np.mean(np.sum((g - mu) ** 2, axis=(1, 2)))
    shared = np.sum(mu**2)
    second = {n: shared + (N - n) / (n * (N - 1)) * spread for n in (N_A, N_B)}
    return np.sqrt(second[N_A] / second[N_B])


def test_mean_scaled_groups_agree_across_sizes_under_the_null(null_runs):
    recs, _, per_sample, _ = null_runs
    for layer, g in per_sample.items():
        # G: the group's mean gradient; its size shows only through the 1/sqrt(N_g) noise term
        expected = expected_mean_ratio(g)
        assert np.sqrt(N_B / N_A) <= expected <= 1.0
        assert np.median(frobenius_ratio(recs["mean"], layer, "G")) == pytest.approx(expected, rel=0.1)
        s1 = recs["mean"].series(layer, "G", group="a")[:, 0] / recs["mean"].series(layer, "G", group="b")[:, 0]
        assert 0.9 * np.sqrt(N_B / N_A) <= np.median(s1) <= 1.1  # between pure noise and pure shared signal
        # eq. 5's sums grow with the group: 28/12 times the mean's ratio, at every step
        s1_sum = recs["sum"].series(layer, "G", group="a")[:, 0] / recs["sum"].series(layer, "G", group="b")[:, 0]
        np.testing.assert_allclose(s1_sum, s1 * N_A / N_B, rtol=1e-9)
        assert np.median(s1_sum) > 1.5
        # A and D: roots of the groups' second-moment matrices, equal in expectation
        for q in "AD":
            assert np.median(frobenius_ratio(recs["mean"], layer, q)) == pytest.approx(1.0, abs=0.05)
            assert np.median(frobenius_ratio(recs["sum"], layer, q)) == pytest.approx(np.sqrt(N_A / N_B), rel=0.05)


def test_sum_scaled_groups_are_eq5_sums_of_the_batch(null_runs):
    recs, shuffles, _, factors = null_runs
    for step in (0, 7):
        labels = shuffles[step]
        for layer, (A, D) in factors.items():
            G = {g: A[labels == g].T @ D[labels == g] for g in "ab"}
            np.testing.assert_allclose(G["a"] + G["b"], A.T @ D, rtol=1e-12, atol=1e-14)
            for scale, rec in recs.items():
                # the batch is the same in both modes: the weight gradient itself
                np.testing.assert_allclose(rec.series(layer, "G")[step], exact(A.T @ D), rtol=1e-8, atol=1e-13)
                for g in "ab":
                    n = np.sum(labels == g) if scale == "mean" else 1
                    np.testing.assert_allclose(rec.series(layer, "G", group=g)[step], exact(G[g]) / n,
                                               rtol=1e-8, atol=1e-13)
                    np.testing.assert_allclose(rec.series(layer, "A", group=g)[step],
                                               exact(A[labels == g]) / np.sqrt(n if scale == "mean" else 1),
                                               rtol=1e-8, atol=1e-13)


def test_floors_scale_with_their_group(null_runs):
    recs, _, _, _ = null_runs
    for q, power in (("G", 1.0), ("A", 0.5), ("D", 0.5)):
        for g, n in (("a", N_A), ("b", N_B)):
            np.testing.assert_allclose(recs["mean"].floor("2.weight", q, group=g),
                                       recs["sum"].floor("2.weight", q, group=g) / n**power, rtol=1e-12)


def test_group_scale_is_recorded_and_checked():
    model = nn.Sequential(nn.Linear(3, 2))
    assert autospec.Introspector(model).record.metadata["settings"]["group_scale"] == "mean"
    assert autospec.Introspector(model, group_scale="sum").record.metadata["settings"]["group_scale"] == "sum"
    with pytest.raises(autospec.IntrospectorError, match="unknown group_scale 'median'"):
        autospec.Introspector(model, group_scale="median")
    with pytest.raises(autospec.IntrospectorError, match="group_scale"):
        autospec.Introspector(model, group_scale=None)
