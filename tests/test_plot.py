"""Tests of autospec.plot: every figure renders headless, writes PNG/PDF, and has the expected
axes, titles and labels."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from autospec import plot, plot_base, stats
from autospec.record import Record

LAYERS = {"0.weight": 6, "2.weight": 4}


def make_record(n_steps=8, groups=("HC", "SZ"), planted=("2.weight", 2, 6), seed=0, n_per_group=0):
    """Small synthetic record; the last group's G spectra of ``planted`` layer are doubled in
    steps [start, stop)."""
    rng = np.random.default_rng(seed)
    rec = Record(metadata={"experiment": "plot-test"})
    labels = np.repeat(np.asarray(groups), n_per_group) if n_per_group else None
    if labels is not None:
        rec.set_sample_groups(labels)
    for s in range(n_steps):
        spectra, per_sample = {}, {}
        for layer, k in LAYERS.items():
            hit = planted is not None and layer == planted[0] and planted[1] <= s < planted[2]
            base = np.exp(-0.8 * np.arange(k)) * (1 + 1.0 / (s + 1))
            for q in ("G", "A"):
                spectra[(layer, q, None, None)] = base * np.exp(rng.normal(0, 0.05, k))
                for g in groups:
                    scale = 2.0 if (hit and q == "G" and g == groups[-1]) else 1.0
                    spectra[(layer, q, g, None)] = scale * base * np.exp(rng.normal(0, 0.05, k))
            if labels is not None:
                values = rng.lognormal(0.0, 0.2, size=(labels.size, 1))
                if hit:
                    values[labels == groups[-1]] *= 2.0
                per_sample[layer] = values
        rec.append(5 * s, spectra, loss=1.0 / (s + 1), per_sample=per_sample or None)
    return rec


def main_axes(fig):
    """Axes that are not colorbars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def colorbar_labels(fig):
    return [ax.get_ylabel() or ax.get_xlabel() for ax in fig.axes if ax.get_label() == "<colorbar>"]


def assert_renders(fig, tmp_path, name, formats=("png",)):
    written = plot.save_figure(fig, tmp_path / name, formats=formats, dpi=60)
    assert [p.suffix for p in written] == [f".{f}" for f in formats]
    for path in written:
        head = path.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if path.suffix == ".png" else b"%PDF")
    return written


def test_trajectories_lines(tmp_path):
    rec = make_record()
    fig = plot.plot_trajectories(rec)
    assert isinstance(fig, Figure)
    axes = main_axes(fig)
    assert [ax.get_title() for ax in axes] == ["0.weight", "2.weight"]
    for ax, k in zip(axes, LAYERS.values()):
        assert ax.get_xlabel() == "training step"
        assert ax.get_ylabel() == "singular value (log)"
        assert ax.get_yscale() == "log"
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(lines) == 1 and len(lines[0].get_segments()) == k  # one line per index
    assert colorbar_labels(fig) == ["singular value index"] * 2
    assert "G" in fig.get_suptitle()
    assert_renders(fig, tmp_path, "lines", formats=("png", "pdf"))


def test_trajectories_heatmap_for_a_group_into_given_axes(tmp_path):
    rec = make_record()
    fig = plot.plot_trajectories(rec, layers=["2.weight"], quantity="A", group="SZ", style="heatmap")
    (ax,) = main_axes(fig)
    assert ax.get_ylabel() == plot_base.INDEX_LABEL and ax.get_title() == "2.weight"
    assert colorbar_labels(fig) == ["log10 singular value"]
    mesh = ax.collections[0]
    np.testing.assert_allclose(mesh.get_array().reshape(4, 8), np.log10(rec.series("2.weight", "A", "SZ")).T)
    assert "group SZ" in fig.get_suptitle()
    assert_renders(fig, tmp_path, "heat")

    host = Figure()
    given = host.subplots(1, 2)
    out = plot.plot_trajectories(rec, ax=list(given))
    assert out is host and [a.get_title() for a in given] == ["0.weight", "2.weight"]


def test_trajectories_errors():
    rec = make_record(n_steps=2)
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['nope'\].*0\.weight"):
        plot.plot_trajectories(rec, layers=["nope"])
    with pytest.raises(ValueError, match="unknown style"):
        plot.plot_trajectories(rec, style="bars")
    with pytest.raises(ValueError, match="one Axes per layer"):
        plot.plot_trajectories(rec, ax=Figure().subplots())


def test_group_differences_paper_mode(tmp_path):
    rec = make_record()
    with pytest.raises(stats.NotCalibratedError, match="no per-sample values"):
        plot.plot_group_differences(rec, "2.weight", "G", groups=("HC", "SZ"))  # calibrated by default
    fig = plot.plot_group_differences(rec, "2.weight", "G", groups=("HC", "SZ"), tests="paper")
    assert "paper (uncalibrated)" in fig.get_suptitle()
    axes = main_axes(fig)
    assert len(axes) == 4  # map, per-step strip, per-index strip, trajectories
    ax_map, ax_top, ax_right, ax_lines = axes
    assert ax_map.get_xlabel() == "training step" and ax_map.get_ylabel() == plot_base.INDEX_LABEL
    assert "HC vs SZ" in ax_top.get_title() and "paper" in ax_top.get_title()
    assert "per-index test" in ax_right.get_xlabel() and "per-step" in ax_top.get_ylabel()
    assert ax_lines.get_yscale() == "log" and ax_lines.get_ylabel() == "singular value (log)"
    assert colorbar_labels(fig) == ["log10(σ HC / σ SZ)"]
    assert len(ax_lines.get_legend().get_texts()) == 6  # 3 indices x 2 groups
    data = plot.difference_data(rec, "2.weight", groups=("HC", "SZ"), tests="paper")
    assert data["index_sig"].all()  # the planted doubling covers every index of 2.weight
    assert_renders(fig, tmp_path, "diff_paper")


def test_group_differences_seeds_marks_planted_cells(tmp_path):
    records = [make_record(seed=s) for s in range(4)]
    data = plot.difference_data(records, "2.weight")
    assert data["mode"] == "seeds" and data["sig"].shape == (8, 4)
    assert data["sig"][2:6].mean() >= 0.8 and data["sig"][:2].sum() + data["sig"][6:].sum() <= 1
    fig = plot.plot_group_differences(records, "2.weight")
    ax_map = main_axes(fig)[0]
    outlines = [c for c in ax_map.collections if isinstance(c, LineCollection)]
    assert len(outlines) == 1 and len(outlines[0].get_segments()) >= 4
    assert colorbar_labels(fig) == ["−log10 q (welch-seeds)"]
    assert "mean trajectories" in main_axes(fig)[3].get_title()
    assert_renders(fig, tmp_path, "diff_seeds")


def test_group_differences_per_sample_and_errors(tmp_path):
    rec = make_record(n_per_group=6)
    fig = plot.plot_group_differences(rec, "2.weight", mode="per_sample", n_permutations=99, fdr=False)
    assert colorbar_labels(fig) == ["−log10 p (perm-samples)"]
    assert "p ≤ 0.05" in fig.get_suptitle()
    assert_renders(fig, tmp_path, "diff_ps")
    with pytest.raises(ValueError, match="exactly two groups"):
        plot.plot_group_differences(rec, "2.weight", groups=("HC",))
    with pytest.raises(ValueError, match=r"unknown group\(s\) \['XX'\]"):
        plot.plot_group_differences(rec, "2.weight", groups=("HC", "XX"))
    with pytest.raises(ValueError, match="not available per sample"):
        plot.plot_group_differences(rec, "2.weight", "A", mode="per_sample")
    with pytest.raises(ValueError, match="list of Records"):
        plot.plot_group_differences(rec, "2.weight", mode="seeds")


def test_panels_grid_letters_and_maps(tmp_path):
    rec = make_record()
    other = Record(metadata={})
    for s in range(3):
        other.append(s, {("0.weight", "G", None, None): np.array([2.0, 1.0])})
    fig = plot.plot_panels({"H": make_record(n_per_group=6), "A": rec, "B": other,
                            "G": [make_record(seed=s) for s in range(3)]})
    axes = main_axes(fig)
    assert len(axes) == 2 * 4  # two layers x panels A, B, G, H
    texts = [t for ax in axes for t in ax.texts]
    letters = [t for t in texts if t.get_text() in "ABGH" and t.get_fontweight() == "bold"]
    assert [t.get_text() for t in letters] == ["A", "B", "G", "H"]
    grid = np.array(axes).reshape(2, 4)
    assert grid[0, 0].get_title() == "0.weight" and grid[1, 0].get_title() == "2.weight"
    assert grid[1, 0].get_xlabel() == "training step" and grid[0, 0].get_xlabel() == ""
    assert not grid[1, 1].axison  # panel B's record has no layer 2.weight
    assert grid[0, 2].get_ylabel() == plot_base.INDEX_LABEL and grid[0, 3].get_ylabel() == ""
    labels = colorbar_labels(fig)
    assert any("(welch-seeds)" in lab for lab in labels) and any("(welch-samples)" in lab for lab in labels)
    assert any("(i − 1) / (k − 1)" in lab for lab in labels)
    assert_renders(fig, tmp_path, "panels")
    with pytest.raises(ValueError, match=r"unknown panel\(s\) \['Z'\]"):
        plot.plot_panels({"Z": rec})
    with pytest.raises(TypeError, match="dict"):
        plot.plot_panels([rec])


def test_dashboard(tmp_path):
    rec = make_record()
    fig = plot.plot_dashboard(rec)
    titles = [ax.get_title() for ax in main_axes(fig)]
    assert titles == ["loss", "top singular value of G", "effective rank of G (values above the noise floor)",
                      "spectrum of G at step 35 (dashed: noise floor)"]
    ax_top = main_axes(fig)[1]
    np.testing.assert_allclose(ax_top.lines[0].get_ydata(), rec.series("0.weight", "G")[:, 0])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(LAYERS)
    assert "plot-test" in fig.get_suptitle()
    assert_renders(fig, tmp_path, "dash")


def test_save_figure_paths_and_formats(tmp_path):
    fig = plot.plot_dashboard(make_record(n_steps=3))
    written = plot.save_figure(fig, tmp_path / "deep" / "dir" / "fig.png", dpi=40)
    assert [p.name for p in written] == ["fig.png", "fig.pdf"]
    assert all(p.stat().st_size > 1000 for p in written)
    with pytest.raises(ValueError, match="unsupported figure format"):
        plot.save_figure(fig, tmp_path / "x", formats=("gif",))


def test_library_plots_without_pyplot():
    """Figures are built on matplotlib.figure.Figure: no pyplot, no GUI backend, no global state."""
    code = (
        "import sys, numpy as np\n"
        "from autospec.record import Record\n"
        "from autospec import plot\n"
        "rec = Record(metadata={})\n"
        "for s in range(3): rec.append(s, {('L', 'G', None, None): np.array([3.0, 1.0])}, loss=1.0)\n"
        "plot.plot_trajectories(rec).savefig(sys.argv[1])\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", code, f"{tmp}/f.png"], capture_output=True, text=True,
                             env=env, cwd=Path(__file__).resolve().parents[1], timeout=120)
        assert out.returncode == 0, out.stderr
        assert Path(tmp, "f.png").stat().st_size > 1000
