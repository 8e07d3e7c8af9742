"""Tests of autospec.stats: array-level tests against scipy / brute force / hand computation,
record-level drivers on synthetic records with planted differences (power) and without (FDR)."""
import itertools

import numpy as np
import pytest
from scipy import stats as sst

from autospec import stats
from autospec.record import Record

LAYERS = {"0.weight": 6, "1.weight": 4}


def spectrum(k, rng, scale=1.0):
    base = np.exp(-0.7 * np.arange(k))
    return np.sort(base * scale * np.exp(rng.normal(0, 0.1, k)))[::-1]


def make_record(n_steps=12, groups=("HC", "SZ"), planted=None, seed=0, n_per_group=0, factor=2.0):
    """Synthetic record. ``planted``: {layer: (first_step_pos, stop_step_pos)} where the last group's
    G spectra (and per-sample values) are ``factor`` times larger."""
    rng = np.random.default_rng(seed)
    rec = Record(metadata={"experiment": "synthetic", "seed": seed})
    labels = np.repeat(np.asarray(groups), n_per_group) if n_per_group else None
    if labels is not None:
        rec.set_sample_groups(labels)
    for s in range(n_steps):
        spectra, per_sample = {}, {}
        for layer, k in LAYERS.items():
            hit = planted is not None and layer in planted and planted[layer][0] <= s < planted[layer][1]
            for q in ("G", "A"):
                spectra[(layer, q, None, None)] = spectrum(k, rng)
                for g in groups:
                    scale = factor if (hit and q == "G" and g == groups[-1]) else 1.0
                    spectra[(layer, q, g, None)] = spectrum(k, rng, scale)
            if labels is not None:
                values = rng.lognormal(0.0, 0.25, size=(labels.size, 1))
                if hit:
                    values[labels == groups[-1]] *= factor
                per_sample[layer] = values
        rec.append(10 * s, spectra, loss=1.0 / (s + 1), per_sample=per_sample or None)
    return rec


# ------------------------------------------------------------------------------ array level


def test_t_tests_match_scipy_with_nans_on_any_axis(rng):
    a = rng.normal(size=(5, 9, 3))
    b = rng.normal(0.7, 2.0, size=(5, 7, 3))
    a[0, 0, 0] = np.nan
    b[1, :6, 2] = np.nan  # one sample left in that cell -> NaN for Welch, finite for Student
    for equal_var, fn in ((True, stats.student_t_test), (False, stats.welch_test)):
        ours = fn(a, b, axis=1)
        ref = sst.ttest_ind(a, b, axis=1, equal_var=equal_var, nan_policy="omit")
        np.testing.assert_allclose(ours.t, ref.statistic, rtol=1e-10, equal_nan=True)
        np.testing.assert_allclose(ours.p, ref.pvalue, rtol=1e-10, equal_nan=True)
        defined = np.isfinite(ref.statistic)  # scipy reports a df even where t is undefined
        np.testing.assert_allclose(ours.df[defined], ref.df[defined], rtol=1e-10)
    assert np.isnan(stats.welch_test(a, b, axis=1).t[1, 2])
    assert np.isfinite(stats.student_t_test(a, b, axis=1).t[1, 2])


def test_t_test_hand_case():
    # a = [1, 2, 3], b = [4, 5, 6, 7]: means 2 and 5.5, pooled var (2 + 5) / 5 = 1.4
    res = stats.student_t_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0])
    t = (2 - 5.5) / np.sqrt(1.4 * (1 / 3 + 1 / 4))
    assert res.t == pytest.approx(t, rel=1e-12)
    assert res.df == 5
    assert res.p == pytest.approx(2 * sst.t.sf(abs(t), 5), rel=1e-12)


def test_cohens_d_and_hedges_g_by_hand():
    # means 2 and 5, sums of squares 2 and 20, pooled SD sqrt(22 / 5)
    d = (2.0 - 5.0) / np.sqrt(22.0 / 5.0)
    assert stats.cohens_d([1, 2, 3], [2, 4, 6, 8]) == pytest.approx(d, rel=1e-12)
    assert stats.hedges_g([1, 2, 3], [2, 4, 6, 8]) == pytest.approx(d * (1 - 3 / (4 * 7 - 9)), rel=1e-12)
    both = stats.cohens_d(np.array([[1, 1], [2, 2], [3, 3.0]]), np.array([[2, 4], [4, 5], [6, 6], [8, 7.0]]))
    assert both[0] == pytest.approx(d, rel=1e-12)


def brute_force_p(a, b, statistic):
    """Exact two-sided permutation p by enumerating every relabelling (independent of the library)."""
    pooled = np.concatenate([a, b])
    n, na = len(pooled), len(a)

    def stat(x, y):
        if statistic == "mean":
            return x.mean() - y.mean()
        return sst.ttest_ind(x, y, equal_var=False).statistic

    observed = abs(stat(a, b))
    hits = total = 0
    for chosen in itertools.combinations(range(n), na):
        mask = np.zeros(n, bool)
        mask[list(chosen)] = True
        hits += abs(stat(pooled[mask], pooled[~mask])) >= observed * (1 - 1e-9)
        total += 1
    return hits / total


@pytest.mark.parametrize("statistic", ["welch", "mean"])
def test_permutation_exact_matches_brute_force(rng, statistic):
    a = rng.normal(size=(4, 3))
    b = rng.normal(0.8, 1.5, size=(5, 3))
    res = stats.permutation_test(a, b, n_permutations=10_000, statistic=statistic)
    assert res.exact and res.n_permutations == 126  # C(9, 4)
    expected = [brute_force_p(a[:, j], b[:, j], statistic) for j in range(3)]
    np.testing.assert_allclose(res.p, expected, rtol=1e-12)
    if statistic == "mean":
        np.testing.assert_allclose(res.statistic, a.mean(0) - b.mean(0), rtol=1e-10)
    else:
        np.testing.assert_allclose(res.statistic, sst.ttest_ind(a, b, equal_var=False).statistic, rtol=1e-10)


def test_permutation_random_is_seeded_and_close_to_exact(rng):
    a = rng.normal(size=5)
    b = rng.normal(1.0, 1.0, size=7)
    exact = brute_force_p(a, b, "welch")  # C(12, 5) = 792 relabellings
    r1 = stats.permutation_test(a, b, n_permutations=700, seed=3)
    r2 = stats.permutation_test(a, b, n_permutations=700, seed=3)
    assert not r1.exact and r1.p == r2.p
    assert r1.p >= 1 / 701  # the +1 correction: never zero
    assert abs(r1.p - exact) < 4 * np.sqrt(exact * (1 - exact) / 700) + 1 / 701


def test_permutation_p_never_zero_thanks_to_plus_one():
    a, b = np.arange(14.0) + 100, np.arange(14.0)  # separated: 2 of C(28, 14) = 4e7 relabellings as extreme
    res = stats.permutation_test(a, b, n_permutations=200, seed=0)
    assert not res.exact and res.p == pytest.approx(1 / 201)
    exact = stats.permutation_test(a[:4], b[:4], n_permutations=1000)  # C(8, 4) = 70 relabellings
    assert exact.exact and exact.p == pytest.approx(2 / 70)  # the labelling itself and its mirror


def test_permutation_p_is_calibrated_under_the_null():
    rng = np.random.default_rng(11)
    a = rng.normal(size=(6, 400))
    b = rng.normal(size=(6, 400))
    res = stats.permutation_test(a, b, n_permutations=199, seed=1)
    assert np.mean(res.p <= 0.05) <= 0.05 + 0.03
    assert np.mean(res.p <= 0.5) == pytest.approx(0.5, abs=0.08)


def test_fdr_matches_hand_bh_and_keeps_nans():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5])
    # BH on the 4 finite values sorted 0.01, 0.03, 0.04, 0.5: q = min over j>=i of p_j * m / j
    expected = np.array([0.04, np.nan, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    np.testing.assert_allclose(stats.fdr(p), expected, rtol=1e-12, equal_nan=True)
    by = stats.fdr(p, method="by")
    assert np.all(by[~np.isnan(by)] >= stats.fdr(p)[~np.isnan(by)])
    assert stats.fdr(np.array([[0.01, 0.2], [0.3, 0.02]])).shape == (2, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.fdr([0.2, 1.5])
    with pytest.raises(ValueError, match="unknown FDR method"):
        stats.fdr([0.2], method="holm")


def test_bh_fdr_controls_false_discoveries_over_null_repetitions():
    """200 null experiments of a 6-step x 5-index map with 6 replicates per group: the mean false
    discovery proportion (here = any discovery) stays at or below alpha plus sampling slack."""
    rng = np.random.default_rng(2024)
    alpha, fdp = 0.05, []
    for _ in range(200):
        a = rng.normal(size=(6, 6, 5))
        b = rng.normal(size=(6, 6, 5))
        q = stats.fdr(stats.welch_test(a, b).p)
        fdp.append(float(np.any(q <= alpha)))
    assert np.mean(fdp) <= alpha + 0.03


def test_record_level_null_keeps_false_positives_at_nominal_rate():
    """300 null records (6 steps x 3 per-sample values, 6 samples per group): after BH-FDR, the
    share of records with any significant cell stays at or below alpha plus sampling slack."""
    rng = np.random.default_rng(7)
    any_sig = []
    for _ in range(300):
        rec = Record(metadata={})
        rec.set_sample_groups(np.repeat(["a", "b"], 6))
        for s in range(6):
            rec.append(s, {("L", "G", None, None): np.ones(3)}, per_sample={"L": rng.normal(size=(12, 3))})
        res = stats.per_sample_tests(rec, "L")[0]
        any_sig.append(res.significant(0.05).any())
    assert np.mean(any_sig) <= 0.05 + 0.035


def test_effective_rank():
    s = np.array([[1.0, 1.0, 1.0, 0.0], [2.0, 0.0, 0.0, np.nan], [0.0, 0.0, 0.0, 0.0], [np.nan] * 4])
    np.testing.assert_allclose(stats.effective_rank(s), [3.0, 1.0, 0.0, np.nan])
    p = np.array([3.0, 1.0]) / 4
    assert stats.effective_rank([3.0, 1.0]) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    with pytest.raises(ValueError, match="non-negative"):
        stats.effective_rank([1.0, -1.0])


def test_array_level_errors():
    with pytest.raises(ValueError, match="agree on every axis"):
        stats.welch_test(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="same number of axes"):
        stats.student_t_test(np.ones((3, 4)), np.ones(3))
    with pytest.raises(TypeError, match="numeric"):
        stats.welch_test(["a", "b"], [1.0, 2.0])
    with pytest.raises(ValueError, match="n_permutations"):
        stats.permutation_test([1.0, 2.0], [3.0, 4.0], n_permutations=0)
    with pytest.raises(ValueError, match="statistic"):
        stats.permutation_test([1.0, 2.0], [3.0, 4.0], statistic="median")


# ------------------------------------------------------------------------------ record level


def test_paper_tests_match_scipy_on_every_pair():
    rec = make_record(n_steps=5, groups=("a", "b", "c"), planted={"0.weight": (2, 4)})
    step = stats.paper_step_tests(rec, "0.weight", "G", fdr=False)
    index = stats.paper_index_tests(rec, "0.weight", "G")
    assert [r.groups for r in step] == [("a", "b"), ("a", "c"), ("b", "c")]
    for res_s, res_i in zip(step, index):
        sa = rec.series("0.weight", "G", group=res_s.groups[0])
        sb = rec.series("0.weight", "G", group=res_s.groups[1])
        ref = sst.ttest_ind(sa, sb, axis=1)  # per step, singular values as samples
        np.testing.assert_allclose(res_s.t, ref.statistic, rtol=1e-10)
        np.testing.assert_allclose(res_s.p, ref.pvalue, rtol=1e-10)
        np.testing.assert_array_equal(res_s.df, 2 * sa.shape[1] - 2)
        ref = sst.ttest_ind(sa.T, sb.T, axis=1)  # per index, steps as samples
        np.testing.assert_allclose(res_i.t, ref.statistic, rtol=1e-10)
        np.testing.assert_allclose(res_i.p, ref.pvalue, rtol=1e-10)
        np.testing.assert_allclose(res_i.q, stats.fdr(ref.pvalue), rtol=1e-10)
        assert res_s.q is None and res_i.axes == ("index",) and res_s.axes == ("step",)
    row = step[0].to_rows()[0]
    assert row["step"] == 0 and row["groups"] == "a vs b" and row["test"] == "paper-step"
    assert step[0].to_dict()["layer"] == "0.weight"


def test_paper_step_test_handles_nan_padding():
    rec = Record(metadata={})
    rng = np.random.default_rng(5)
    for s in range(3):
        rec.append(s, {("L", "G", "x", None): rng.random(5 - s), ("L", "G", "y", None): rng.random(5)})
    res = stats.paper_step_tests(rec, "L", "G")[0]
    sa, sb = rec.series("L", "G", group="x"), rec.series("L", "G", group="y")
    ref = sst.ttest_ind(sa, sb, axis=1, nan_policy="omit")
    np.testing.assert_allclose(res.t, ref.statistic, rtol=1e-10)
    np.testing.assert_array_equal(res.df, [8, 7, 6])


def test_per_sample_tests_find_planted_cells_and_spare_the_rest():
    planted = {"1.weight": (4, 10)}
    rec = make_record(n_steps=14, planted=planted, n_per_group=10, seed=1)
    hit = stats.per_sample_tests(rec, "1.weight", n_permutations=499, seed=0)
    assert [r.test for r in hit] == ["welch-samples", "perm-samples"]
    for res in hit:
        sig = res.significant(0.05)[:, 0]
        assert sig[4:10].mean() >= 0.8  # power at a clear effect (factor 2, sd 0.25 on log scale)
        assert sig[:4].sum() + sig[10:].sum() <= 1
        assert np.all(res.d[4:10, 0] < 0)  # first group smaller
    quiet = stats.per_sample_tests(rec, "0.weight")[0]
    assert quiet.significant().sum() <= 1


def test_seed_tests_find_planted_cells():
    planted = {"0.weight": (3, 8)}
    records = [make_record(n_steps=10, planted=planted, seed=s) for s in range(6)]
    res = stats.seed_tests(records, "0.weight", "G", n_permutations=300, seed=2)
    for r in res:
        sig = r.significant(0.05)
        assert sig.shape == (10, 6) and r.axes == ("step", "index")
        assert sig[3:8].mean() >= 0.8
        assert sig[:3].sum() + sig[8:].sum() <= 2
    null = stats.seed_tests(records, "1.weight", "G")[0]
    assert null.significant().sum() <= 1


def test_summarize_record_with_groups_and_per_sample():
    rec = make_record(n_steps=14, planted={"1.weight": (4, 10)}, n_per_group=10, seed=1)
    summary = stats.summarize(rec)  # calibrated by default: the per-sample tests only
    assert {row["test"] for row in summary} == {"welch-samples"}
    assert all(row["calibrated"] for row in summary)
    paper = stats.summarize(rec, tests="paper")
    assert {row["test"] for row in paper} == {"paper-step", "paper-index"}
    assert not any(row["calibrated"] for row in paper) and "paper (uncalibrated)" in paper.to_text()
    assert stats.summarize(rec, mode="paper").to_json() == paper.to_json()  # the older spelling
    sig = {(r["layer"], r["quantity"], r["test"]) for r in summary.significant_rows()}
    assert ("1.weight", "G", "welch-samples") in sig
    assert not any(layer == "0.weight" and test == "welch-samples" for layer, _, test in sig)
    row = next(r for r in summary if r["layer"] == "1.weight" and r["test"] == "welch-samples")
    assert 40 <= row["first_step"] <= 50 and set(row["sig_steps"]) <= set(range(30, 101, 10))
    assert row["top_indices"] == [1] and row["max_abs_d"] > 1  # indices are 1-based: sigma_1
    text = summary.to_text()
    lines = text.splitlines()
    assert "layer" in lines[1] and "min_q" in lines[1] and "max|d|" in lines[1]
    assert any(line.startswith("1.weight") and "welch-samples" in line for line in lines)
    assert str(summary) == text


def test_summarize_seed_records_locates_layer_steps_indices():
    records = [make_record(n_steps=10, planted={"0.weight": (3, 8)}, seed=s) for s in range(5)]
    summary = stats.summarize(records, quantities=["G"], fdr=True, alpha=0.05)
    rows = {r["layer"]: r for r in summary}
    assert rows["0.weight"]["test"] == "welch-seeds"
    assert rows["0.weight"]["first_step"] == 30
    assert rows["0.weight"]["steps_range"].startswith("30-70")
    assert len(rows["0.weight"]["top_indices"]) == 5
    assert rows["1.weight"]["n_sig"] <= 1
    assert "welch-seeds" in summary.to_text(only_significant=True)
    uncorrected = stats.summarize(records, quantities="G", fdr=False)
    assert "min_p" in uncorrected.to_text()


def test_clear_errors_for_groups_samples_and_shapes():
    rec = make_record(n_steps=3, groups=("HC", "SZ"))
    with pytest.raises(ValueError, match=r"unknown group\(s\) \['XX'\].*\['HC', 'SZ'\]"):
        stats.paper_step_tests(rec, "0.weight", groups=["HC", "XX"])
    with pytest.raises(ValueError, match="at least 2 groups"):
        stats.paper_index_tests(rec, "0.weight", groups=["HC"])
    with pytest.raises(ValueError, match="at least 2 groups"):
        stats.paper_step_tests(make_record(n_steps=2, groups=("only",)), "0.weight")
    with pytest.raises(ValueError, match="too few samples"):
        stats.paper_index_tests(make_record(n_steps=1), "0.weight")
    with pytest.raises(ValueError, match="no sample group labels"):
        stats.per_sample_tests(rec, "0.weight")
    with pytest.raises(ValueError, match="too few samples"):
        stats.per_sample_tests(make_record(n_steps=3, n_per_group=1), "0.weight")
    with pytest.raises(ValueError, match="too few samples"):
        stats.seed_tests([rec], "0.weight")
    with pytest.raises(ValueError, match="mismatched shapes"):
        stats.seed_tests([rec, make_record(n_steps=4)], "0.weight")
    with pytest.raises(ValueError, match="unknown mode"):
        stats.summarize(rec, mode="magic")
    with pytest.raises(stats.NotCalibratedError, match="no calibrated test can run.*per_sample=True"):
        stats.summarize(make_record(n_steps=2, groups=("only",)))
    with pytest.raises(ValueError, match="no group spectra to compare"):
        stats.summarize(make_record(n_steps=2, groups=("only",)), tests="paper")
    with pytest.raises(KeyError):
        stats.paper_step_tests(rec, "no.such.layer")


def test_summarize_skips_quantities_recorded_without_groups():
    rec = Record(metadata={})
    rng = np.random.default_rng(3)
    for s in range(4):
        rec.append(s, {("L", "G", "a", None): rng.random(3), ("L", "G", "b", None): rng.random(3),
                       ("L", "A", None, None): rng.random(3)})
    summary = stats.summarize(rec, tests="paper")
    assert {(r["quantity"], r["test"]) for r in summary} == {("G", "paper-step"), ("G", "paper-index")}
    assert "(no significant cells)" in summary.to_text(only_significant=True) or summary.significant_rows()
    with pytest.raises(ValueError, match="no group spectra to compare"):
        stats.summarize(rec, quantities=["A"], tests="paper")


def test_samples_without_spread_give_nan_not_infinite_significance():
    """A spectrum constant over steps (e.g. a fixed input's A) is no evidence of a difference."""
    from autospec.stats import cohens_d, student_t_test, welch_test

    a = np.full((50, 3), 2.0)
    b = np.full((50, 3), 3.0)
    b[:, 2] += np.random.default_rng(0).normal(0, 0.1, 50)  # only the last column varies
    for test in (student_t_test, welch_test):
        res = test(a, b)
        assert np.all(np.isnan(res.t[:2])) and np.all(np.isnan(res.p[:2]))
        assert np.isfinite(res.t[2]) and res.p[2] < 1e-10
    d = cohens_d(a, b)
    assert np.all(np.isnan(d[:2])) and np.isfinite(d[2])


def test_summary_notes_layers_too_small_for_the_per_step_test():
    """A layer with one singular value (e.g. a 1-feature input weight) is listed as not tested."""
    rng = np.random.default_rng(0)
    rec = Record()
    for s in range(20):
        rec.append(s, {("w", "G", "a", None): 1 + rng.random(1), ("w", "G", "b", None): 1 + rng.random(1)})
    summary = stats.summarize(rec, tests="paper")
    assert [r["test"] for r in summary.rows] == ["paper-index"]
    assert summary.skipped and summary.skipped[0][:3] == ("w", "G", "paper_step_tests")
    assert "not tested: w G (paper_step_tests)" in summary.to_text()
    # explicit layers keep every test that can run (issue 12: the layer is not dropped)
    explicit = stats.summarize(rec, layers="w", quantities="G", tests="paper")
    assert [r["test"] for r in explicit.rows] == ["paper-index"] and explicit.skipped
    with pytest.raises(stats.TooFewSamples, match="too few samples"):  # the single test asked for: an error
        stats.paper_step_tests(rec, "w")


# ------------------------------------------------------------------------------ issue 12: calibrated defaults


def minibatch_record(n_data=60, batch=20, n_steps=9, factor=3.0, seed=0, ids=True):
    """Shuffled mini-batches: each step sees a different random batch, labels recorded per step.
    Samples of group "b" have per-sample values ``factor`` times larger."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b"], n_data // 2)
    base = rng.lognormal(0.0, 0.3, size=n_data)
    rec = Record(metadata={})
    batches = []
    for s in range(n_steps):
        idx = rng.choice(n_data, size=batch, replace=False)
        values = base[idx] * np.where(labels[idx] == "b", factor, 1.0) * rng.lognormal(0, 0.05, batch)
        rec.append(s, {("L", "G", None, None): np.ones(2)}, per_sample={"L": values[:, None]},
                   sample_groups=labels[idx], sample_ids=idx if ids else None)
        batches.append((idx, values))
    return rec, labels, batches


def test_shuffled_minibatches_are_tested_under_each_steps_own_labels():
    """Every per-sample value is tested under its own step's label (fails when one label vector,
    e.g. the first batch's, is applied to every step)."""
    rec, labels, batches = minibatch_record()
    res = stats.group_tests(rec, "L", n_permutations=199)
    for r in res:
        assert r.significant(0.05)[:, 0].all() and np.all(r.d < 0)  # b larger at every step
    welch = res[0]
    for s, (idx, values) in enumerate(batches):  # the same numbers as a Welch test by hand per batch
        lab = labels[idx]
        ref = sst.ttest_ind(np.log10(values[lab == "a"]), np.log10(values[lab == "b"]), equal_var=False)
        assert welch.p[s, 0] == pytest.approx(ref.pvalue, rel=1e-9)
        assert welch.t[s, 0] == pytest.approx(ref.statistic, rel=1e-9)
    # a mini-batch null keeps its rate: relabelling dataset samples (sample ids) or within steps
    for with_ids in (True, False):
        null_rec, _, _ = minibatch_record(factor=1.0, seed=1, ids=with_ids)
        null = stats.null_calibration(null_rec, 200, seed=0)
        assert null.rate <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / 200)


def test_permute_step_labels_keeps_each_steps_labels_and_padding():
    rng = np.random.default_rng(0)
    codes = np.array([[0, 0, 1, 1, -1], [1, 0, 0, 1, 1], [0, 1, -1, -1, -1]])
    perm = stats.permute_step_labels(codes, rng, 50)
    assert perm.shape == (50, 3, 5)
    assert np.array_equal(perm < 0, np.broadcast_to(codes < 0, perm.shape))  # no sample stays no sample
    for s in range(3):
        assert np.all(np.sort(perm[:, s], axis=1) == np.sort(codes[s]))  # each step keeps its label counts
    assert len({p.tobytes() for p in perm}) > 10
    full = np.array([[0, 0, 1, 1, 1]] * 4)  # full batch: one relabelling of the samples, shared by all steps
    shared = stats.permute_step_labels(full, rng, 20)
    assert np.all(shared == shared[:, :1])
    ids = np.array([[3, 1, 2], [0, 3, 1]])  # sample ids: a sample keeps one label wherever it appears
    lab = np.array([[1, 0, 0], [1, 1, 0]])
    by_id = stats.permute_step_labels(lab, rng, 30, sample_ids=ids)
    assert np.all(by_id[:, 0, 0] == by_id[:, 1, 1]) and np.all(by_id[:, 0, 1] == by_id[:, 1, 2])


def floor_record(with_floors=True):
    """Group spectra whose last value sits below the floor, per-sample spectra with a value below it."""
    rng = np.random.default_rng(4)
    rec = Record(metadata={})
    rec.set_sample_groups(np.repeat(["a", "b"], 8))
    for s in range(6):
        spectra, floors = {}, {}
        for g in ("a", "b"):
            spectra[("L", "G", g, None)] = np.r_[np.sort(rng.lognormal(size=3))[::-1] + 1, rng.random() * 1e-18]
            floors[("L", "G", g, None)] = 1e-15
        spectra[("L", "G", None, None)] = np.array([4.0, 2.0, 1.0, 1e-19])
        floors[("L", "G", None, None)] = 4.0 * 1e-15  # sigma_max * max(m, n) * eps with max(m, n) * eps = 1e-15
        per = rng.lognormal(size=(16, 3))
        per[:, 2] = per[:, 0] * 1e-17 * rng.random(16)  # the third per-sample value is numerically zero
        rec.append(s, spectra, per_sample={"L": per}, floors=floors if with_floors else None)
    return rec


def test_values_below_the_noise_floor_are_never_tested():
    rec = floor_record()
    welch = stats.group_tests(rec, "L")[0]
    assert welch.below_floor[:, 2].all() and not welch.below_floor[:, :2].any()
    assert np.isnan(welch.p[:, 2]).all() and np.isfinite(welch.p[:, :2]).all()
    step, index = stats.group_tests(rec, "L", tests="paper")
    assert index.below_floor.tolist() == [False, False, False, True] and np.isnan(index.p[3])
    assert not step.below_floor.any() and np.all(step.df == 3 + 3 - 2)  # per step: the floor values left out
    summary = stats.summarize(rec)
    assert summary.rows[0]["n_below_floor"] == 6 and summary.machine_rows()[0]["n_below_floor"] == 6
    assert "below_floor" in summary.to_text() and "noise floor" in summary.to_text()
    unfloored = stats.group_tests(floor_record(with_floors=False), "L", tests="paper")[1]
    assert np.isfinite(unfloored.p[3]) and not unfloored.below_floor.any()  # tested when no floor is known


def test_a_sample_at_the_floor_is_left_out_of_its_cell_not_the_whole_cell():
    # One sample per step with a zero gradient (e.g. every ReLU unit dead for it) must not make the
    # cell untestable: that value alone is numerically zero and left out.
    rng = np.random.default_rng(5)
    rec = Record(metadata={})
    labels = np.repeat(["a", "b"], [12, 8])
    for s in range(5):
        per = rng.lognormal(size=(20, 1))
        per[s, 0] = 0.0
        rec.append(s, {("L", "G", None, None): np.array([2.0])}, per_sample={"L": per},
                   floors={("L", "G", None, None): 2e-15}, sample_groups=labels)
    welch = stats.group_tests(rec, "L")[0]
    assert not welch.below_floor.any() and np.isfinite(welch.p).all()
    null = stats.null_calibration(rec, 20, seed=0)
    assert null.maps[0]["n_cells"] == 5


def test_effective_rank_counts_only_values_above_the_floor():
    s = np.array([[3.0, 1.0, 1e-17, 1e-18], [2.0, 2.0, 2.0, 1e-20]])
    np.testing.assert_allclose(stats.effective_rank(s, floor=[1e-15, 1e-15]),
                               [stats.effective_rank([3.0, 1.0]), 3.0])
    assert stats.effective_rank([1.0, 1.0, 0.5], floor=0.5) == pytest.approx(2.0)
    assert stats.effective_rank([1.0, 1.0], floor=np.nan) == pytest.approx(2.0)  # unknown floor: every value


def test_group_tests_entry_point_labels_and_errors():
    rec = make_record(n_steps=6, n_per_group=6, planted={"1.weight": (2, 5)})
    res = stats.group_tests(rec, "1.weight")
    assert [r.title for r in res] == ["Welch per-sample, log10, BH-FDR"] and res[0].calibrated
    assert res[0].label == "calibrated" and res[0].below_floor.shape == res[0].p.shape
    raw = stats.group_tests(rec, "1.weight", log=False, fdr=False, n_permutations=99)
    assert [r.title for r in raw] == ["Welch per-sample", "permutation per-sample"]
    paper = stats.group_tests(rec, "1.weight", "A", tests="paper")
    assert [r.label for r in paper] == ["paper (uncalibrated)"] * 2
    with pytest.raises(stats.NotCalibratedError, match="quantity 'A'.*several seeds"):
        stats.group_tests(rec, "1.weight", "A")
    with pytest.raises(stats.NotCalibratedError, match="no per-sample values.*per_sample=True"):
        stats.group_tests(make_record(n_steps=3), "0.weight")
    with pytest.raises(stats.NotCalibratedError, match="more seeds|several seeds"):
        stats.group_tests([make_record(n_steps=3)], "0.weight")
    with pytest.raises(stats.TooFewSamples, match="too few samples"):
        stats.group_tests(make_record(n_steps=3, n_per_group=1), "0.weight")
    with pytest.raises(stats.StatsError, match="unknown tests"):
        stats.group_tests(rec, "0.weight", tests="magic")
    with pytest.raises(ValueError, match=r"unknown group\(s\)"):
        stats.group_tests(rec, "0.weight", groups=["HC", "XX"])
    assert issubclass(stats.TooFewSamples, stats.AutoSpecError) and issubclass(stats.NotCalibratedError, ValueError)
    seeds = stats.group_tests([make_record(n_steps=4, seed=s) for s in range(4)], "0.weight")
    assert seeds[0].title == "Welch per-seed, log10, BH-FDR" and seeds[0].calibrated


def test_summaries_keep_every_test_of_one_unit_layers():
    """A 1-unit layer (the sinusoid RNN's weight_ih_l0, readout): the per-sample tests run, the
    paper's per-step test cannot (one singular value) and is listed, never the whole layer dropped."""
    rng = np.random.default_rng(0)
    rec = Record()
    rec.set_sample_groups(np.repeat(["a", "b"], 5))
    for s in range(8):
        spectra = {("w", "G", g, None): 1 + rng.random(1) for g in ("a", "b")}
        rec.append(s, spectra, per_sample={"w": rng.lognormal(size=(10, 1))})
    calibrated = stats.summarize(rec, layers=["w"], quantities=["G"])
    assert [r["test"] for r in calibrated.rows] == ["welch-samples"]
    paper = stats.summarize(rec, layers=["w"], quantities=["G"], tests="paper")
    assert [r["test"] for r in paper.rows] == ["paper-index"]
    assert "not tested: w G (paper_step_tests): too few samples" in paper.to_text()
    assert "paper (uncalibrated)" in paper.to_text()
    with pytest.raises(stats.NotCalibratedError, match=r"no calibrated test can run \(x G: no per-sample values\)"):
        stats.summarize(rec, layers=["x"])
