"""The Introspector per step: floors, each matrix's own rank bound, mini-batch labels and
sample ids, continuing a record."""
import numpy as np
import pytest

import autospec
import minigrad as mg
from autospec import linalg
from autospec.record import Record, load_record
from minigrad import nn, optim
from minigrad.factors import capture_factors


def exact(M):
    return np.linalg.svd(np.asarray(M, dtype=np.float64), compute_uv=False)


def mlp(fin=12, hidden=5, fout=7, seed=0, dtype="float64"):
    mg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(fin, hidden), nn.Tanh(), nn.Linear(hidden, fout))
    return model.double() if dtype == "float64" else model


def run(model, spec, X, Y, steps=1, groups=None, lr=0.05):
    """SGD steps on the MSE loss with ``spec`` recording them; returns each step's factors."""
    opt = optim.SGD(model.parameters(), lr=lr)
    x, y = mg.tensor(X, dtype=model[0].weight.dtype), mg.tensor(Y, dtype=model[0].weight.dtype)
    caught = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        with spec.step(groups=groups, loss=loss), capture_factors(model) as f:
            loss.backward()
        caught.append({name: (fac.A[:, 0].copy(), fac.D[:, 0].copy()) for name, fac in f.items()})
        opt.step()
    return caught


# ------------------------------------------------------------------ noise floors
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("method", ["auto", "gram"])
def test_rank_deficient_inputs_show_their_rank_above_the_floor(dtype, method):
    """Inputs of exact rank 3 in 12 dimensions: the first layer's A has 3 values above the
    floor at every step, on the route the Introspector takes (the Gram route for float64 too)."""
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((40, 3)) * [1.0, 0.1, 0.01]) @ np.linalg.qr(rng.standard_normal((12, 3)))[0].T
    model = mlp(dtype=dtype)
    spec = autospec.Introspector(model, method=method)
    run(model, spec, X, rng.standard_normal((40, 7)), steps=3, groups=np.array(["u", "v"] * 20))
    rec = spec.record
    for group in (None, "u", "v"):
        above = rec.series("0.weight", "A", group=group, above_floor=True)
        assert above.shape == (3, 12)
        np.testing.assert_array_equal(np.sum(~np.isnan(above), axis=1), 3)


def test_floors_follow_the_rule_with_the_data_dtype():
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((40, 12)), rng.standard_normal((40, 7))
    eps32 = float(np.finfo(np.float32).eps)
    model = mlp(dtype="float32")
    spec = autospec.Introspector(model)
    run(model, spec, X, Y, steps=8)
    rec = spec.record
    s1 = {q: rec.series("2.weight", q)[:, 0] for q in "GAD"}
    # float32 factors keep float32's eps, though the values are stored as float64
    np.testing.assert_allclose(rec.floor("2.weight", "A"), 40 * eps32 * s1["A"], rtol=1e-12)
    np.testing.assert_allclose(rec.floor("2.weight", "D"), 40 * eps32 * s1["D"], rtol=1e-12)
    # G's floor is set by its factors: max(in, out) eps sigma_1(A) sigma_1(D) >= the G rule
    np.testing.assert_allclose(rec.floor("2.weight", "G"), 7 * eps32 * s1["A"] * s1["D"], rtol=1e-12)
    assert np.all(rec.floor("2.weight", "G") >= 7 * eps32 * s1["G"])
    # without A and D recorded, their top values are estimated for G's floor (power steps, each
    # step's warm-started from the last: they stay close over training)
    model = mlp(dtype="float32")
    economy = autospec.Introspector(model, quantities=("G",))
    run(model, economy, X, Y, steps=8)
    ratio = economy.record.floor("2.weight", "G") / rec.floor("2.weight", "G")
    assert np.all((ratio > 0.8) & (ratio <= 1 + 1e-6))
    assert ratio[-1] > 0.95 and np.all(np.diff(ratio) > 0)  # warm starts keep closing in


def test_the_gram_route_has_its_own_floor_in_float64():
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((40, 12)), rng.standard_normal((40, 7))
    floors = {}
    for method in ("auto", "gram"):
        model = mlp()
        spec = autospec.Introspector(model, method=method, quantities=("A",))
        run(model, spec, X, Y)
        floors[method] = spec.record.floor("0.weight", "A")[0]
    s1 = exact(X)[0]
    assert floors["auto"] == pytest.approx(40 * np.finfo(np.float64).eps * s1)
    assert floors["gram"] == pytest.approx(np.sqrt(40 * np.finfo(np.float64).eps) * s1)


def test_non_finite_steps_have_unknown_floors():
    X = np.random.default_rng(3).standard_normal((10, 12))
    model = mlp()
    spec = autospec.Introspector(model)
    with pytest.warns(RuntimeWarning, match="NaN or Inf"):
        run(model, spec, X * np.nan, X[:, :7])
    assert np.isnan(spec.record.floor("0.weight", "G")[0])


# ------------------------------------------------------------------ rank bounds of A and D
def test_factors_keep_their_own_rank_bounds():
    """A 2-class head (Linear 32 -> 2) keeps all 32 values of A when N * P >= 32, not G's 2."""
    rng = np.random.default_rng(4)
    mg.manual_seed(0)
    head = nn.Sequential(nn.Linear(32, 2)).double()
    X, Y = rng.standard_normal((40, 32)), rng.standard_normal((40, 2))
    labels = np.array(["a"] * 28 + ["b"] * 12)
    for k, expected in ((None, {"A": 32, "D": 2, "G": 2}), (8, {"A": 8, "D": 2, "G": 2})):
        spec = autospec.Introspector(head, k=k)
        caught = run(head, spec, X, Y, groups=labels)
        A, _ = caught[0]["0.weight"]
        for q, n in expected.items():
            assert spec.record.series("0.weight", q).shape == (1, n)
        assert spec.record.series("0.weight", "A", group="b").shape == (1, min(12, k or 12))  # rows bound it
        np.testing.assert_allclose(spec.record.series("0.weight", "A")[0], exact(A)[: expected["A"]], rtol=1e-8)
    # tied positions: N * P rows; each position has N rows
    tokens = rng.standard_normal((4, 10, 32))
    spec = autospec.Introspector(head, positions=[0, 5])
    loss = nn.functional.mse_loss(head(mg.tensor(tokens)), np.zeros((4, 10, 2)))
    with spec.step():
        loss.backward()
    assert spec.record.series("0.weight", "A").shape == (1, 32)
    assert spec.record.series("0.weight", "A", position=5).shape == (1, 4)


# ------------------------------------------------------------------ mini-batches
def test_shuffled_mini_batches_keep_each_samples_own_label():
    """Three epochs of shuffled batches of 20: every step stores its own batch's labels and
    dataset indices, and its per-sample values belong to those samples."""
    rng = np.random.default_rng(5)
    n, batch = 60, 20
    labels = np.array(["big", "small"] * (n // 2))
    X = rng.standard_normal((n, 12)) * np.where(labels == "big", 10.0, 1.0)[:, None]
    Y = rng.standard_normal((n, 7))
    model = mlp()
    spec = autospec.Introspector(model, quantities=("G",), per_sample=True)
    opt = optim.SGD(model.parameters(), lr=0.01)
    batches, caught = [], []
    for _ in range(3):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss = nn.functional.mse_loss(model(mg.tensor(X[idx], dtype="float64")), mg.tensor(Y[idx], dtype="float64"))
            with spec.step(groups=labels[idx], loss=loss, samples=idx), capture_factors(model) as f:
                loss.backward()
            opt.step()
            batches.append(idx)
            caught.append((f["0.weight"].A[:, 0].copy(), f["0.weight"].D[:, 0].copy()))
    rec = spec.record
    np.testing.assert_array_equal(rec.step_sample_groups(), np.array([labels[idx] for idx in batches]))
    np.testing.assert_array_equal(rec.step_sample_ids(), np.array(batches))
    assert rec.sample_groups is None  # the labels differ from step to step
    per = rec.per_sample("0.weight")[:, :, 0]
    for step, (idx, (A, D)) in enumerate(zip(batches, caught)):
        np.testing.assert_allclose(A, X[idx])  # row i of this step is dataset sample idx[i]
        np.testing.assert_allclose(per[step], np.linalg.norm(A, axis=1) * np.linalg.norm(D, axis=1), rtol=1e-10)
        big = rec.step_sample_groups()[step] == "big"
        G_big = A[big].T @ D[big] / big.sum()
        np.testing.assert_allclose(rec.series("0.weight", "G", group="big")[step], exact(G_big)[:5], rtol=1e-8)


def test_full_batch_labels_are_the_records_labels():
    X = np.random.default_rng(6).standard_normal((10, 12))
    labels = np.array(list("aabbbaabba"))
    model = mlp()
    spec = autospec.Introspector(model)
    run(model, spec, X, X[:, :7], steps=3, groups=labels)
    np.testing.assert_array_equal(spec.record.sample_groups, labels)
    assert spec.record.step_sample_ids() is None


def test_bad_sample_ids_are_one_line_errors():
    X = np.random.default_rng(7).standard_normal((10, 12))
    model = mlp()
    spec = autospec.Introspector(model)
    for samples, match in ((np.arange(9), "10 dataset indices"), (np.arange(10) - 1.5, "ints >= 0"),
                           (np.arange(10) - 3, "minimum -3")):
        loss = nn.functional.mse_loss(model(mg.tensor(X)), X[:, :7])
        with pytest.raises(autospec.GroupError, match=match):
            with spec.step(samples=samples):
                loss.backward()


# ------------------------------------------------------------------ continuing a record
def test_a_resumed_record_continues_with_steps_seen(tmp_path):
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((20, 12)), rng.standard_normal((20, 7))
    path = tmp_path / "run.h5"
    model = mlp()
    with autospec.Introspector(model, path=str(path), every=2) as spec:
        run(model, spec, X, Y, steps=7)  # records steps 0, 2, 4, 6
    assert spec.steps_seen == 7
    rec = Record.resume(str(path), through_step=3)
    with autospec.Introspector(model, record=rec, every=2, metadata={"resumed_at": 4}) as spec:
        assert spec.steps_seen == 3  # after the last kept step, until the caller says otherwise
        spec.steps_seen = 4  # e.g. the checkpoint's step count
        run(model, spec, X, Y, steps=3)  # steps 4, 5, 6: records 4 and 6
    done = load_record(str(path))
    np.testing.assert_array_equal(done.steps, [0, 2, 4, 6])
    assert np.all(np.isfinite(done.floor("2.weight", "G")))
    assert done.metadata["settings"]["group_scale"] == "mean" and done.metadata["resumed_at"] == 4


def test_continuing_a_record_checks_its_settings(tmp_path):
    model = mlp()
    rec = Record(metadata={})
    spec = autospec.Introspector(model, record=rec)  # a record without settings takes ours
    assert spec.record is rec and rec.metadata["settings"]["group_scale"] == "mean"
    with pytest.raises(autospec.IntrospectorError, match="group_scale: record 'mean' vs now 'sum'"):
        autospec.Introspector(model, record=rec, group_scale="sum")
    with pytest.raises(autospec.IntrospectorError, match="not both"):
        autospec.Introspector(model, record=rec, path=str(tmp_path / "x.h5"))
    with pytest.raises(autospec.IntrospectorError, match="must be an autospec Record"):
        autospec.Introspector(model, record="run.h5")
    for bad in (-1, 2.5, True):
        with pytest.raises(autospec.IntrospectorError, match="steps_seen"):
            spec.steps_seen = bad


def test_floor_function_is_exported():
    assert autospec.noise_floor is linalg.noise_floor
