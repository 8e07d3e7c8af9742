"""The noise floor in every figure: values at/below a spectrum's floor are never drawn as signal,
axis limits follow the values above it, and effective rank counts only those (issue 12)."""
import numpy as np
from matplotlib.collections import LineCollection, PatchCollection
from matplotlib.lines import Line2D

from autospec import plot, stats
from autospec.plot_floor import FALLBACK_RELATIVE_FLOOR, above_floor, signal, spectrum_floor
from autospec.record import Record

FLOOR = 1e-12
STEPS = 6


def cliff_spectrum(s):
    """A rank-4 spectrum of 8 values: 4 real ones, then rounding noise down to 1e-72 (as in the demo)."""
    real = np.array([1.0, 0.3, 0.05, 0.01]) * (1 + 0.1 * s)
    return np.concatenate([real, [1e-15, 1e-30, 1e-50, 1e-72]])


def floored_record(floors=True, groups=("a", "b")):
    rec = Record(metadata={"experiment": "floor-test"})
    for s in range(STEPS):
        spectra, fl = {}, {}
        for g in (None, *groups):
            key = ("L", "G", g, None)
            spectra[key] = cliff_spectrum(s) * (1.5 if g == "b" else 1.0)
            fl[key] = FLOOR
        rec.append(10 * s, spectra, loss=1.0 / (s + 1), floors=fl if floors else None)
    return rec


def drawn_lines(ax):
    """The finite y values of each line of the trajectory LineCollection."""
    (coll,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    return [np.asarray(seg).reshape(-1, 2)[:, 1] for seg in coll.get_segments()]


def test_trajectories_draw_only_values_above_the_recorded_floor():
    rec = floored_record()
    fig = plot.plot_trajectories(rec)
    ax = [a for a in fig.axes if a.get_label() != "<colorbar>"][0]
    y = [line[np.isfinite(line)] for line in drawn_lines(ax)]
    assert [line.size for line in y] == [STEPS] * 4 + [0] * 4  # the four real values, nothing below the floor
    lo, hi = ax.get_ylim()
    assert 1e-3 < lo < 0.01 and hi > 1.0  # limits follow the real spectrum, not 1e-72
    floor_lines = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(floor_lines) == 1 and np.allclose(floor_lines[0].get_ydata(), FLOOR)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0] == "noise floor" and "below the noise floor" in legend[1]


def test_old_records_without_floors_get_the_relative_fallback():
    rec = floored_record(floors=False)
    raw = rec.series("L", "G")
    np.testing.assert_allclose(spectrum_floor(rec, "L", "G"), raw[:, 0] * FALLBACK_RELATIVE_FLOOR)
    values, floor = signal(rec, "L", "G")
    assert np.all(np.isnan(values[:, 4:])) and np.array_equal(values[:, :4], raw[:, :4])
    fig = plot.plot_trajectories(rec)
    ax = fig.axes[0]
    assert ax.get_ylim()[0] > 1e-3


def test_floor_known_at_some_steps_only():
    rec = Record(metadata={})
    rec.append(0, {("L", "G", None, None): np.array([1.0, 0.5, 1e-9])}, floors={("L", "G", None, None): 0.6})
    rec.append(1, {("L", "G", None, None): np.array([1.0, 0.5, 1e-9])})
    floor = spectrum_floor(rec, "L", "G")
    np.testing.assert_allclose(floor, [0.6, FALLBACK_RELATIVE_FLOOR])
    values = above_floor(rec.series("L", "G"), floor)
    assert np.isnan(values[0, 1]) and values[1, 1] == 0.5 and np.isnan(values[1, 2])


def test_heatmap_masks_and_hatches_cells_below_the_floor():
    rec = floored_record()
    fig = plot.plot_trajectories(rec, style="heatmap")
    ax = fig.axes[0]
    mesh = ax.collections[0]
    shown = np.ma.getmaskarray(mesh.get_array()).reshape(8, STEPS)
    assert shown[4:].all() and not shown[:4].any()
    assert any(isinstance(c, PatchCollection) for c in ax.collections)
    assert mesh.norm.vmin > np.log10(FLOOR)  # the colour scale spans the real values only


def test_dashboard_effective_rank_and_spectrum_above_the_floor():
    rec = Record(metadata={})
    for s in range(3):
        key = ("L", "G", None, None)
        rec.append(s, {key: np.array([1.0, 0.4, 0.3, 0.2])}, loss=1.0, floors={key: 0.35})
    fig = plot.plot_dashboard(rec)
    _, ax_top, ax_rank, ax_last = fig.axes[:4]
    rank = ax_rank.lines[0].get_ydata()
    np.testing.assert_allclose(rank, stats.effective_rank(np.array([1.0, 0.4])))
    assert rank[0] < 2.0  # the raw spectrum's effective rank is about 3.3
    np.testing.assert_allclose(ax_last.lines[0].get_ydata()[:2], [1.0, 0.4])
    assert np.all(np.isnan(ax_last.lines[0].get_ydata()[2:]))
    assert ax_last.get_ylim()[0] > 0.2  # limits follow the values above the floor
    assert "noise floor" in ax_rank.get_title()


def test_paper_difference_map_hatches_cells_below_either_groups_floor():
    rec = floored_record()
    data = plot.difference_data(rec, "L", groups=("a", "b"), tests="paper")
    assert data["below_floor"][:, 4:].all() and not data["below_floor"][:, :4].any()
    assert np.all(np.isnan(data["map"][:, 4:]))
    np.testing.assert_allclose(data["map"][:, :4], np.log10(1 / 1.5))
    fig = plot.plot_group_differences(rec, "L", groups=("a", "b"), tests="paper")
    ax_map = fig.axes[0]
    assert any(isinstance(c, PatchCollection) for c in ax_map.collections)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "below the noise floor (not tested)" in labels
    line_axes = fig.axes[3]
    drawn = np.concatenate([line.get_ydata() for line in line_axes.lines if isinstance(line, Line2D)])
    assert np.nanmin(drawn) > FLOOR  # the groups' trajectories are drawn above the floor only
