"""The Introspector: spectra of G, A, D per layer, per group, per position, per sample."""
import warnings

import numpy as np
import pytest

import autospec
import minigrad as mg
from autospec import linalg
from minigrad import nn, optim
from tests.conftest import introspected_mse_step


def exact(M):
    return np.linalg.svd(np.asarray(M, dtype=np.float64), compute_uv=False)


def mlp(fin=12, hidden=5, fout=7, seed=0):
    mg.manual_seed(seed)
    return nn.Sequential(nn.Linear(fin, hidden), nn.Tanh(), nn.Linear(hidden, fout))


def train(model, X, Y, spec, labels=None, steps=3, lr=0.1, device="cpu"):
    opt = optim.SGD(model.parameters(), lr=lr)
    x = mg.tensor(X, dtype=np.float64, device=device)
    y = mg.tensor(Y, dtype=np.float64, device=device)
    return [introspected_mse_step(model, spec, opt, x, y, labels) for _ in range(steps)]


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 12))
    Y = rng.standard_normal((40, 7))
    labels = np.array(["HC", "SZ"] * 20)  # interleaved: index selectors, not slices
    return X, Y, labels


def test_spectra_match_exact_svd_per_group(data, device):
    X, Y, labels = data
    model = mlp().double().to(device)
    spec = autospec.Introspector(model)
    caught = train(model, X, Y, spec, labels, device=device)
    rec = spec.record
    assert rec.layers == ["0.weight", "2.weight"]
    assert sorted(rec.groups) == ["HC", "SZ"]
    assert len(rec) == 3
    for step, factors in enumerate(caught):
        for layer, (A, D) in factors.items():
            A2, D2 = A.reshape(-1, A.shape[-1]), D.reshape(-1, D.shape[-1])
            for group in (None, "HC", "SZ"):
                rows = slice(None) if group is None else labels == group
                n = 1 if group is None else int(np.sum(rows))  # group_scale="mean": G / N_g, A, D / sqrt(N_g)
                expected = {"G": exact(A2[rows].T @ D2[rows]) / n, "A": exact(A2[rows]) / np.sqrt(n),
                            "D": exact(D2[rows]) / np.sqrt(n)}
                for q in "GAD":
                    got = rec.series(layer, q, group=group)[step]
                    assert got.shape == expected[q].shape  # each matrix keeps its own rank bound
                    np.testing.assert_allclose(got, expected[q], rtol=1e-8, atol=1e-10 * expected[q][0])


def test_group_gradients_sum_to_the_full_gradient(data):
    X, Y, labels = data
    model = mlp().double()
    spec = autospec.Introspector(model)
    caught = train(model, X, Y, spec, labels, steps=1)
    for layer, (A, D) in caught[0].items():
        full = np.einsum("npo,npi->oi", D, A)
        parts = sum(np.einsum("npo,npi->oi", D[labels == g], A[labels == g]) for g in ("HC", "SZ"))
        np.testing.assert_allclose(parts, full, rtol=1e-12, atol=1e-14)
        # and the recorded batch spectrum is that of the sum
        np.testing.assert_allclose(spec.record.series(layer, "G")[0], exact(full)[: len(spec.record.series(layer, "G")[0])],
                                   rtol=1e-8, atol=1e-12)


def test_rank_of_G_never_exceeds_its_bound():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 20))  # N = 3 < min(in, out): rank G <= 3
    Y = rng.standard_normal((3, 15))
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 15)).double()
    spec = autospec.Introspector(model, quantities=("G",))
    train(model, X, Y, spec, steps=4)
    S = spec.record.series("0.weight", "G")
    assert S.shape == (4, 3)  # the default k is the rank bound min(in, out, N*P)
    assert np.all(S > 0)


def test_tied_positions_and_per_sample_on_token_inputs():
    rng = np.random.default_rng(2)
    N, L, E = 6, 5, 4
    X = rng.standard_normal((N, L, E))
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(E, 3), nn.Tanh(), nn.Linear(3, E)).double()
    spec = autospec.Introspector(model, positions=True, per_sample=True)
    caught = train(model, X, X, spec, labels=np.array(list("aabbbb")), steps=2)
    rec = spec.record
    assert rec.positions("0.weight") == list(range(L))
    A, D = caught[1]["0.weight"]
    for p in (0, 3):
        np.testing.assert_allclose(rec.series("0.weight", "G", position=p)[1][:3], exact(A[:, p].T @ D[:, p])[:3],
                                   rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(rec.series("0.weight", "A", group="b", position=p)[1],
                                   exact(A[2:, p] / np.sqrt(4)), rtol=1e-8, atol=1e-12)
    per = rec.per_sample("0.weight")  # (steps, N, k): spectra of each sample's G_n over its L tokens
    assert per.shape[:2] == (2, N)
    for n in range(N):
        G_n = A[n].T @ D[n]
        np.testing.assert_allclose(per[1, n], exact(G_n)[: per.shape[2]], rtol=1e-8, atol=1e-12)


def test_per_sample_untied_is_norm_product(data):
    X, Y, labels = data
    model = mlp().double()
    spec = autospec.Introspector(model, quantities=("G",), per_sample=True)
    caught = train(model, X, Y, spec, labels, steps=1)
    A, D = caught[0]["2.weight"]
    per = spec.record.per_sample("2.weight")[0, :, 0]
    np.testing.assert_allclose(per, np.linalg.norm(A[:, 0], axis=1) * np.linalg.norm(D[:, 0], axis=1), rtol=1e-12)
    # a rank-one G_n = a_n^T d_n has that single singular value
    np.testing.assert_allclose(per[0], exact(np.outer(A[0, 0], D[0, 0]))[0], rtol=1e-10)


def test_schedules_every_layers_k_and_presets(data):
    X, Y, labels = data
    model = mlp()
    spec = autospec.Introspector(model, every=2, layers=["2.*"], k=2, quantities=("G", "D"))
    train(model, X, Y, spec, labels, steps=5)
    rec = spec.record
    assert list(rec.steps) == [0, 2, 4]
    assert rec.layers == ["2.weight"]
    assert rec.series("2.weight", "G").shape == (3, 2)
    with pytest.raises(Exception, match="A"):
        rec.series("2.weight", "A")
    eco = autospec.Introspector(mlp(), preset="economy")
    assert eco.quantities == ("G",) and eco.every == 10 and eco.k == 8
    assert autospec.Introspector(mlp(), preset="economy", every=3).every == 3  # explicit beats preset


def test_constant_first_layer_activations_are_computed_once(data, monkeypatch):
    X, Y, labels = data
    model = mlp()
    spec = autospec.Introspector(model, quantities=("A",))
    calls = []
    real = linalg.svdvals

    def counting(M, k=None, method="auto"):
        calls.append(M.shape)
        return real(M, k, method)

    monkeypatch.setattr(linalg, "svdvals", counting)
    train(model, X, Y, spec, labels=None, steps=6)
    first_layer = [s for s in calls if s == (40, 12)]
    hidden = [s for s in calls if s == (40, 5)]
    assert len(hidden) == 6           # hidden activations change: every step
    assert len(first_layer) <= 2      # the input does not: computed at most until proven constant
    S = spec.record.series("0.weight", "A")
    np.testing.assert_allclose(S[-1], exact(X), rtol=1e-5)  # float32 model, float64 spectra


def test_nan_factors_record_nan_and_training_goes_on(data):
    X, Y, labels = data
    X_bad = X.copy()
    X_bad[0, 0] = np.nan
    model = mlp()
    spec = autospec.Introspector(model)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for inputs in (X, X_bad, X_bad, X):
            loss = nn.functional.mse_loss(model(mg.tensor(inputs)), Y)
            opt.zero_grad()
            with spec.step(groups=labels, loss=loss):
                loss.backward()
            if np.isfinite(loss.item()):  # the user skips bad updates; introspection never raises
                opt.step()
    rec = spec.record
    assert len(rec) == 4
    for layer in rec.layers:
        G = rec.series(layer, "G", group="HC")
        assert np.all(np.isnan(G[1])) and np.all(np.isnan(G[2]))
        assert np.all(np.isfinite(G[0])) and np.all(np.isfinite(G[3]))
        msgs = [str(w.message) for w in caught if "NaN" in str(w.message) and f"'{layer}'" in str(w.message)]
        assert len(msgs) == 1  # one warning per layer, not per step


def test_bad_arguments_give_clear_errors(data):
    X, Y, labels = data
    model = mlp()
    with pytest.raises(ValueError, match="matches no parameter"):
        autospec.Introspector(model, layers=["encoder.*"])
    with pytest.raises(ValueError, match="unknown quantities"):
        autospec.Introspector(model, quantities=("G", "H"))
    with pytest.raises(ValueError, match="unknown preset"):
        autospec.Introspector(model, preset="first-class")
    with pytest.raises(ValueError, match="every"):
        autospec.Introspector(model, every=0)
    spec = autospec.Introspector(model)
    loss = nn.functional.mse_loss(model(mg.tensor(X)), Y)
    with pytest.raises(ValueError, match="40 samples"):
        with spec.step(groups=labels[:10]):
            loss.backward()


def test_file_backed_record_reloads(tmp_path, data):
    X, Y, labels = data
    model = mlp()
    path = tmp_path / "run.h5"
    with autospec.Introspector(model, path=str(path), metadata={"seed": 0, "loss_reduction": "mean"}) as spec:
        train(model, X, Y, spec, labels, steps=3)
        in_memory = spec.record.series("2.weight", "D", group="SZ")
    rec = autospec.load_record(str(path))
    assert len(rec) == 3
    np.testing.assert_allclose(rec.series("2.weight", "D", group="SZ"), in_memory)
    assert rec.metadata["seed"] == 0 and rec.metadata["settings"]["quantities"] == ["G", "A", "D"]
    assert not np.any(np.isnan(rec.losses))
