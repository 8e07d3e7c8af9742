"""Group-difference figures (issue 12): calibrated tests by default and named in every title, the
paper's tests labelled "paper (uncalibrated)", every pair of more than two groups, unknown groups
as a clear error, layers too small to test listed instead of a crash, mini-batch labels per step."""
import numpy as np
import pytest

from autospec import plot, stats
from autospec.groups import GroupError
from autospec.plot_files import write_record_figures
from autospec.record import Record

K = 3


def grouped_record(groups=("a", "b", "c"), n_per_group=5, steps=5, effect=("c", 3.0), shuffle=False,
                   group_scale="mean", one_unit_layer=False, seed=0):
    """Group spectra and per-sample values; ``effect`` multiplies one group's per-sample values.

    ``shuffle``: each step holds the samples in a new order with its own labels (mini-batches)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.asarray(groups), n_per_group)
    rec = Record(metadata={"experiment": "groups-test", "settings": {"group_scale": group_scale}})
    for s in range(steps):
        order = rng.permutation(labels.size) if shuffle else np.arange(labels.size)
        step_labels = labels[order]
        values = rng.lognormal(0.0, 0.1, size=(labels.size, K)) * np.array([1.0, 0.5, 0.25])
        values[step_labels == effect[0]] *= effect[1]
        spectra = {("L", "G", None, None): np.array([1.0, 0.5, 0.25])}
        per_sample = {"L": values}
        for g in groups:
            spectra[("L", "G", g, None)] = values[step_labels == g].mean(axis=0)
        if one_unit_layer:
            spectra[("u", "G", None, None)] = np.array([1.0])
            for g in groups:
                spectra[("u", "G", g, None)] = np.array([1.0 + 0.1 * rng.normal()])
        rec.append(s, spectra, loss=1.0, per_sample=per_sample, sample_groups=step_labels)
    return rec


def test_calibrated_by_default_with_the_test_in_the_title():
    rec = grouped_record()
    data = plot.difference_data(rec, "L", groups=("a", "c"))
    assert data["mode"] == "per_sample" and data["tests"] == "calibrated"
    assert data["results"][0].calibrated and data["sig"].all()  # the planted factor 3 in every cell
    fig = plot.plot_group_differences(rec, "L", groups=("a", "c"))
    titles = [ax.get_title() for ax in fig.axes]
    assert any("Welch per-sample" in t and "FDR" in t for t in titles)
    assert "uncalibrated" not in fig.get_suptitle()
    assert "group_scale = 'mean'" in fig.get_suptitle()  # the record's group scaling is named


def test_paper_tests_are_labelled_uncalibrated():
    rec = grouped_record()
    fig = plot.plot_group_differences(rec, "L", groups=("a", "c"), tests="paper")
    assert "paper (uncalibrated)" in fig.get_suptitle()
    titles = " ".join(ax.get_title() for ax in fig.axes)
    assert "paper per-step t-test" in titles and "paper per-index t-test" in titles


def test_record_without_replicates_says_what_to_record():
    rec = Record(metadata={})
    for s in range(4):
        rec.append(s, {("L", "G", g, None): np.array([1.0, 0.5]) for g in (None, "a", "b")})
    with pytest.raises(stats.NotCalibratedError, match="per-sample"):
        plot.plot_group_differences(rec, "L")


def test_minibatch_means_use_each_steps_own_labels():
    """Shuffled batches: group c's mean trajectory is 3x the others' only under per-step labels
    (fails when the first batch's labels are used for every step)."""
    rec = grouped_record(shuffle=True, steps=6)
    data = plot.difference_data(rec, "L", groups=("a", "c"))
    ratio = data["mean"][1] / data["mean"][0]
    np.testing.assert_allclose(ratio, 3.0, rtol=0.2)
    assert data["sig"].all()


def test_every_pair_of_three_groups_as_a_grid():
    rec = grouped_record()
    fig = plot.plot_group_pairs(rec, "L")
    titles = sorted(ax.get_title().split(":")[0] for ax in fig.axes if ax.get_visible() and ax.get_title())
    assert titles == ["a vs b", "a vs c", "b vs c"]
    assert "every pair of 3 groups" in fig.get_suptitle() and "Welch per-sample" in fig.get_suptitle()
    counts = {ax.get_title().split(":")[0]: int(ax.get_title().split(":")[1].split()[0])
              for ax in fig.axes if ax.get_visible() and ax.get_title()}
    assert counts["a vs c"] == counts["b vs c"] == 5 * K and counts["a vs b"] <= 1  # found where planted


def test_unknown_groups_are_a_one_line_error():
    rec = grouped_record(groups=tuple(str(i) for i in range(4)), effect=("0", 1.0))
    with pytest.raises(GroupError, match=r"unknown group\(s\) \['SZ', 'HC'\]; the record has groups \['0', '1'"):
        plot.choose_groups(rec, ["SZ", "HC"])
    with pytest.raises(GroupError, match="unknown group"):
        plot.plot_group_differences(rec, "L", groups=("SZ", "HC"))


def test_layers_too_small_to_test_are_listed_not_a_crash(tmp_path):
    rec = grouped_record(groups=("a", "b"), one_unit_layer=True, effect=("b", 1.0))
    report = write_record_figures(rec, tmp_path / "figs", tests="paper", formats=("png",), dpi=40)
    assert [n for n in report.notes if n.startswith("not tested: layer u")]  # one singular value: no paper test
    names = {p.name for p in report.written}
    assert "group_differences_L_a-vs-b.png" in names and not any("_u_" in n for n in names)
    fig = plot.plot_panels({"G": rec}, tests="paper")
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "not tested" in texts


def test_uncalibrated_record_gets_one_note_instead_of_maps(tmp_path):
    rec = Record(metadata={})
    for s in range(3):
        rec.append(s, {(layer, "G", g, None): np.array([1.0, 0.5]) for layer in ("x", "y") for g in (None, "a", "b")})
    report = write_record_figures(rec, tmp_path / "figs", formats=("png",), dpi=40)
    assert len(report.notes) == 1 and report.notes[0].startswith("no group-difference figures (every layer)")
    assert not any("group_differences" in p.name for p in report.written)
