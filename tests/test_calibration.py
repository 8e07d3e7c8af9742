"""Issue 12, statistics side: the default (calibrated) tests keep their false-positive rate under
label permutations with unequal groups (28/12) and heavy-tailed per-sample values, find a planted
effect, and the paper's tests on the same null flag far more; the data-only baseline, the
size-matched group spectra, and the `autospec stats` JSON/CSV/--null/--baseline outputs."""
import csv
import io
import json

import numpy as np
import pytest

from autospec import calibration, cli, stats
from autospec.record import Record

SIZES = (28, 12)
ALPHA = 0.05


def binomial_slack(n, alpha=ALPHA):
    """alpha plus about 2.5 binomial standard errors of a rate over n trials."""
    return alpha + 2.5 * np.sqrt(alpha * (1 - alpha) / n)


def simulate(n_steps=10, n_in=6, n_out=5, effect=1.0, seed=0):
    """Per-sample factors of a linear layer over steps, no group effect unless ``effect`` != 1.

    Each subject has its own input a and adjoint d (persisting over steps, as under full-batch
    training), with a heavy-tailed (lognormal) adjoint scale, so the per-sample gradient norms
    |a||d| are skewed. ``effect`` scales the adjoints of the 28 "SZ" samples."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["SZ", "HC"], SIZES)
    rng.shuffle(labels)
    n = labels.size
    scale = np.exp(0.8 * rng.normal(size=(1, n, 1)))
    A = rng.normal(size=(1, n, n_in)) + 0.3 * rng.normal(size=(n_steps, n, n_in))
    D = scale * (rng.normal(size=(1, n, n_out)) + 0.3 * rng.normal(size=(n_steps, n, n_out)))
    D[:, labels == "SZ"] *= effect
    return labels, A, D


def group_spectra(labels, A, D, group):
    """Singular values (steps, k) of the group's mean gradient, G_g / N_g (group_scale="mean")."""
    mask = labels == group
    G = np.einsum("sni,sno->sio", A[:, mask], D[:, mask]) / mask.sum()
    return np.linalg.svd(G, compute_uv=False)


def to_record(labels, A, D, path=None):
    rec = Record(path, metadata={"experiment": "simulated", "settings": {"group_scale": "mean"}})
    rec.set_sample_groups(labels)
    norms = np.linalg.norm(A, axis=2) * np.linalg.norm(D, axis=2)  # |a||d|: the per-sample G spectrum
    for s in range(A.shape[0]):
        spectra = {("L", "G", g, None): group_spectra(labels, A[s:s + 1], D[s:s + 1], g)[0] for g in ("SZ", "HC")}
        rec.append(s, spectra, per_sample={"L": norms[s][:, None]})
    return rec


@pytest.fixture(scope="module")
def null_record():
    return to_record(*simulate(seed=3))


def test_default_tests_keep_the_null_rate_under_label_permutations(null_record):
    """>= 200 label permutations, 28 vs 12, heavy-tailed values, no effect: the default
    (Welch on log10, BH-FDR per map) rate of maps with any finding stays <= alpha + slack, and
    the null p-values are close to uniform."""
    null = stats.null_calibration(null_record, 400, seed=1)
    assert null.test == "Welch per-sample, log10, BH-FDR"
    assert null.rate <= binomial_slack(400)
    assert null.interval[0] <= ALPHA
    density = null.p_counts / null.p_counts.sum() * len(null.p_counts)
    assert density[0] < 1.6 and density.min() > 0.5  # no pile-up of small p-values
    # permutation p-values (nested) are calibrated too
    perm = stats.null_calibration(null_record, 200, n_permutations=99, seed=2)
    assert perm.test.startswith("permutation per-sample") and perm.rate <= binomial_slack(200)


def test_planted_effect_is_found_by_the_default_tests():
    labels, A, D = simulate(effect=3.0, seed=4)
    res = stats.group_tests(to_record(labels, A, D), "L")
    assert [r.test for r in res] == ["welch-samples"] and res[0].calibrated
    sig = res[0].significant(ALPHA)
    assert sig.mean() >= 0.9 and np.all(res[0].d[sig] > 0)  # SZ (first group) larger


def test_paper_tests_flag_far_more_on_the_same_null(null_record):
    """The paper's tests on the same permuted labels: group spectra recomputed for every
    relabelling, tested per step (singular values as samples) and per index (steps as samples).
    The per-index test flags most relabellings -- why the paper's tests are not the default --
    while the calibrated tests do not. (The per-step test, with only k = 5 steeply decaying
    values per group, has almost no power here, so it rarely flags either way.)"""
    labels, A, D = simulate(seed=3)
    rng = np.random.default_rng(5)
    hits = {"paper-step": 0, "paper-index": 0}
    n_null = 200
    for _ in range(n_null):
        perm = rng.permutation(labels)
        sa, sb = group_spectra(perm, A, D, "SZ"), group_spectra(perm, A, D, "HC")
        hits["paper-step"] += np.any(stats.fdr(stats.student_t_test(sa, sb, axis=1).p) <= ALPHA)
        hits["paper-index"] += np.any(stats.fdr(stats.student_t_test(sa, sb, axis=0).p) <= ALPHA)
    calibrated = stats.null_calibration(null_record, n_null, seed=5).rate
    assert hits["paper-index"] / n_null >= 0.5 > 10 * calibrated, (hits, calibrated)
    # the record-level paper tests are exactly these array tests, labelled as uncalibrated
    paper = stats.group_tests(null_record, "L", tests="paper")
    assert [r.title for r in paper] == ["paper per-step t-test, BH-FDR (uncalibrated)",
                                        "paper per-index t-test, BH-FDR (uncalibrated)"]
    assert not any(r.calibrated for r in paper)


def test_raw_welch_is_lopsided_on_skewed_values_and_log10_is_not():
    """Why log10 is the default (the measurement behind per_sample_tests' docstring): Welch on raw
    lognormal values with unequal groups puts its false positives in one tail and loses power."""
    rng = np.random.default_rng(0)
    x = np.exp(rng.normal(size=(40, 4000)))
    raw = stats.welch_test(x[:36], x[36:])  # 36 vs 4: raw Welch is anti-conservative
    log = stats.welch_test(np.log10(x[:36]), np.log10(x[36:]))
    assert np.mean(raw.p <= ALPHA) > 0.1 > 0.07 > np.mean(log.p <= ALPHA)  # Welch with 4 is a little liberal
    raw, log = stats.welch_test(x[:28], x[28:]), stats.welch_test(np.log10(x[:28]), np.log10(x[28:]))
    assert np.mean(log.p <= ALPHA) <= binomial_slack(4000, ALPHA)
    upper, lower = np.mean((raw.p <= ALPHA) & (raw.t > 0)), np.mean((raw.p <= ALPHA) & (raw.t < 0))
    assert upper > 4 * lower  # 28 vs 12: the rate looks fine, but it is all in one tail
    assert abs(np.mean((log.p <= ALPHA) & (log.t > 0)) - np.mean((log.p <= ALPHA) & (log.t < 0))) < 0.01


def test_null_calibration_of_seed_records_swaps_labels_within_seeds():
    rng = np.random.default_rng(8)
    records = []
    for _ in range(6):
        rec = Record()
        for s in range(5):
            rec.append(s, {("L", "G", g, None): np.sort(rng.lognormal(size=4))[::-1] for g in ("a", "b")})
        records.append(rec)
    null = stats.null_calibration(records, 200, seed=0)
    assert null.null == "group labels swapped within seeds" and "per-seed" in null.test
    assert null.rate <= binomial_slack(200)


def test_null_calibration_errors():
    rec = Record()
    rec.append(0, {("L", "G", "a", None): np.ones(3), ("L", "G", "b", None): np.ones(3)})
    with pytest.raises(stats.NotCalibratedError, match="per_sample=True"):
        stats.null_calibration(rec, 10)
    with pytest.raises(stats.StatsError, match="positive integer"):
        stats.null_calibration(rec, 0)


def test_binomial_interval_and_bh_any_match_references():
    lo, hi = calibration.binomial_interval(10, 200)
    assert lo < 0.05 < hi and lo == pytest.approx(0.02419, abs=1e-4) and hi == pytest.approx(0.08994, abs=1e-4)
    p = np.random.default_rng(1).random((300, 12)) ** 3
    p[:, 5] = np.nan
    expected = [np.any(stats.fdr(row) <= ALPHA) for row in p]
    np.testing.assert_array_equal(calibration.bh_any(p, ALPHA), expected)
    expected_by = [np.any(stats.fdr(row, method="by") <= ALPHA) for row in p]
    np.testing.assert_array_equal(calibration.bh_any(p, ALPHA, "by"), expected_by)


# ------------------------------------------------------------------------------ data baseline


def test_data_baseline_finds_differences_in_the_inputs_only_when_there_are_some():
    rng = np.random.default_rng(2)
    labels = np.repeat(["SZ", "HC"], SIZES)
    X = rng.normal(size=(40, 6, 5))
    quiet = stats.data_baseline(X, labels)
    assert [(r.layer, r.quantity, r.test) for r in quiet] == [("data", "input-norm", "welch-data"),
                                                             ("data", "input-sigma", "welch-data")]
    assert not any(r.significant().any() for r in quiet) and quiet[1].p.shape == (3,)
    X[labels == "SZ"] *= 2.0
    loud = stats.data_baseline(X, labels, n_permutations=199)
    assert all(r.significant().all() for r in loud) and {r.test for r in loud} == {"welch-data", "perm-data"}
    flat = stats.data_baseline(X.reshape(40, -1), labels)  # flat samples: norms only
    assert [r.quantity for r in flat] == ["input-norm"]
    with pytest.raises(stats.StatsError, match="needs samples with at least 2 axes"):
        stats.data_baseline(X.reshape(40, -1), labels, features=("spectrum",))
    with pytest.raises(ValueError, match="39 labels for 40 samples"):
        stats.data_baseline(X, labels[:39])


# ------------------------------------------------------------------------------ size-matched spectra


def test_size_matched_group_spectra_agree_under_the_null_and_separate_with_an_effect():
    labels, A, D = simulate(n_steps=1, n_in=12, n_out=10, seed=6)
    A, D = A[0], D[0]
    # group sums differ by size alone (28 vs 12): the "sum" spectra are not comparable
    sums = {g: np.linalg.svd(A[labels == g].T @ D[labels == g], compute_uv=False) for g in ("SZ", "HC")}
    assert sums["SZ"][0] / sums["HC"][0] > 1.3
    matched = stats.size_matched(A, D, labels, repeats=200, percentiles=(2.5, 50, 97.5), seed=0)
    sz, hc = matched["SZ"], matched["HC"]
    assert sz.size == hc.size == 12 and sz.n_group == 28 and sz.spectra.shape[0] == 200 and hc.spectra.shape[0] == 1
    np.testing.assert_allclose(hc.median, np.linalg.svd(A[labels == "HC"].T @ D[labels == "HC"] / 12,
                                                        compute_uv=False)[:hc.median.size])
    inside = (hc.median[:3] >= sz.low[:3]) & (hc.median[:3] <= sz.high[:3])
    assert inside.all()  # under the null the smaller group sits within the matched band
    D2 = D.copy()
    D2[labels == "HC"] *= 3.0
    planted = stats.size_matched(A, D2, labels, repeats=200, percentiles=(2.5, 50, 97.5), seed=0)
    assert planted["HC"].median[0] > planted["SZ"].high[0]
    # the small-core route (M < min(in, out)) agrees with forming G
    few = stats.size_matched(A[:, :], D, labels, size=3, repeats=2, seed=1)["HC"]
    assert few.spectra.shape == (2, 3)
    with pytest.raises(stats.TooFewSamples, match="size 13 must lie in 1..12"):
        stats.size_matched(A, D, labels, size=13)


# ------------------------------------------------------------------------------ command line


@pytest.fixture()
def record_file(tmp_path):
    path = tmp_path / "run" / "record.h5"
    path.parent.mkdir()
    labels, A, D = simulate(n_steps=6, effect=3.0, seed=4)
    to_record(labels, A, D, path).close()
    return path


def test_cli_json_and_csv_rows_hold_the_fields(record_file, capsys):
    assert cli.main(["stats", str(record_file), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 1
    row = rows[0]
    for key in ("layer", "quantity", "groups", "test", "calibrated", "n_significant", "n_cells", "min_q",
                "max_abs_d", "n_below_floor", "group_scale"):
        assert key in row
    assert row["groups"] == ["SZ", "HC"] and row["calibrated"] is True and row["group_scale"] == "mean"
    assert row["n_significant"] == row["n_cells"] == 6 and row["min_q"] < 0.05 and row["max_abs_d"] > 1
    assert cli.main(["stats", str(record_file), "--format", "csv", "--tests", "paper"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["test"] for r in table] == ["paper-step", "paper-index"]
    assert all(r["calibrated"] == "False" and r["title"].endswith("(uncalibrated)") for r in table)
    assert cli.main(["stats", str(record_file)]) == 0
    text = capsys.readouterr().out
    assert "below_floor  kind" in text and text.splitlines()[-2].endswith("0            calibrated")
    assert cli.main(["stats", str(record_file), "--tests", "paper"]) == 0
    assert "paper (uncalibrated)" in capsys.readouterr().out


def test_cli_null_writes_the_histogram_beside_the_record_without_overwriting(record_file, capsys, tmp_path):
    assert cli.main(["stats", str(record_file), "--null", "50", "--format", "json"]) == 0
    out = capsys.readouterr()
    row = json.loads(out.out)[0]
    assert row["null_n"] == 50 and 0 <= row["null_rate"] <= 1 and len(row["null_interval"]) == 2
    assert "maps with any finding" in out.err
    first = record_file.parent / "record-null-pvalues.png"
    assert first.is_file()
    assert cli.main(["stats", str(record_file), "--null", "20"]) == 0
    assert "null p-value histogram" in capsys.readouterr().out
    assert (record_file.parent / "record-null-pvalues-1.png").is_file() and first.stat().st_size > 0
    assert cli.main(["stats", str(record_file), "--null", "20", "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "record-null-pvalues.png").is_file()
    assert cli.main(["stats", str(record_file), "--null", "20", "--tests", "paper"]) == 2
    assert "cannot recompute" in capsys.readouterr().err


def test_cli_baseline_and_one_line_errors(record_file, capsys, tmp_path):
    labels = np.repeat(["SZ", "HC"], SIZES)
    np.savez(tmp_path / "data.npz", X=np.random.default_rng(0).normal(size=(40, 4, 3)), labels=labels)
    assert cli.main(["stats", str(record_file), "--baseline", str(tmp_path / "data.npz"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in rows] == ["L", "data", "data"]
    np.savez(tmp_path / "bad.npz", X=np.ones((3, 2)))
    assert cli.main(["stats", str(record_file), "--baseline", str(tmp_path / "bad.npz")]) == 2
    err = capsys.readouterr().err
    assert "lacks array(s) ['labels']" in err and len(err.strip().splitlines()) == 1
    bare = tmp_path / "bare.h5"
    rec = Record(bare)
    rec.append(0, {("L", "G", "a", None): np.ones(3), ("L", "G", "b", None): np.ones(3)})
    rec.close()
    assert cli.main(["stats", str(bare)]) == 2
    err = capsys.readouterr().err
    assert "no calibrated test can run" in err and "per_sample=True" in err and len(err.strip().splitlines()) == 1


def test_cli_compares_several_seed_records_with_the_seeds_as_replicates(tmp_path, capsys):
    rng = np.random.default_rng(9)
    paths = []
    for seed in range(4):
        rec = Record(tmp_path / f"seed{seed}.h5", metadata={"experiment": "simulated"})
        for s in range(5):  # group b's spectra twice group a's in every seed: a difference the seeds confirm
            base = np.sort(rng.lognormal(size=4))[::-1]
            rec.append(s, {("L", "G", "a", None): base, ("L", "G", "b", None): 2 * base * rng.lognormal(0, 0.05, 4)})
        rec.close()
        paths.append(str(tmp_path / f"seed{seed}.h5"))
    assert cli.main(["stats", *paths, "--format", "json", "--null", "30"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["test"], r["calibrated"], r["n_samples"]) for r in rows] == [("welch-seeds", True, [4, 4])]
    assert rows[0]["n_significant"] > 0 and "null_rate" in rows[0]
    assert cli.main(["stats", *paths[:2], "--tests", "paper"]) == 2
    assert "give one record" in capsys.readouterr().err
