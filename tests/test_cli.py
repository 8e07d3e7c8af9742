"""The `autospec` command line end to end: every experiment, stats, plot, sweeps, demo, bad input."""
import json
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from autospec.cli import main
from autospec.experiments import ExperimentConfig, list_experiments
from autospec.record import load_record

ROOT = Path(__file__).resolve().parents[1]
PNG_ONLY = ["--set", 'figure_formats=["png"]']
_COBRE = ["--set", "data.n_subjects=8", "--set", "data.n_timepoints=16", "--set", "data.n_components=8"]
TINY = {  # data small enough for a 2-epoch run in well under a second
    "digits-mlp": ["--set", "data.n=40", "--set", 'compare=["0", "1"]'],
    "digits-cnn2d": ["--set", "data.n=40", "--set", 'compare=["0", "1"]'],
    "sinusoid-rnn": ["--set", "data.n=16", "--set", "data.length=12"], "freesurfer-mlp": ["--set", "data.n=20"],
    "cobre-lstm": _COBRE, "cobre-bert": _COBRE, "cobre-cnn1d": _COBRE, "cobre-cnn2d": _COBRE,
    "spatialmap-cnn3d": ["--set", "data.n_subjects=8", "--set", "data.shape=[6, 6, 6]"],
}


def _run(name, out, *extra):
    return main(["run", name, "--epochs", "2", "--out", str(out), "--quiet", *PNG_ONLY, *TINY[name], *extra])


def _same_series(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a.series(*k), b.series(*k), equal_nan=True)
                                        for k in a.keys())


def test_list_shows_every_experiment_and_panel(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    for name in list_experiments():
        assert name in text
    assert "H  classification, group differences" in text


@pytest.mark.parametrize("name", sorted(TINY))
def test_every_experiment_runs_end_to_end(name, tmp_path):
    assert set(TINY) == set(list_experiments())
    assert _run(name, tmp_path) == 0
    rec = load_record(tmp_path / "record.h5")
    assert len(rec) == 2 and rec.layers and set(rec.quantities) == {"G", "A", "D"}
    assert len(rec.groups) >= 2 and rec.metadata["config"]["experiment"] == name
    for layer in rec.layers:
        assert np.all(np.isfinite(rec.series(layer, "G")[:, 0]))
    for figure in ("dashboard.png", "trajectories_G.png"):
        assert (tmp_path / "figures" / figure).stat().st_size > 1000
    saved = ExperimentConfig(**tomllib.loads((tmp_path / "config.toml").read_text()))
    assert saved.to_dict() == rec.metadata["config"]
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "finished"
    # panel A records no per-sample values: no calibrated test can run, and the summary says what to record
    summary = (tmp_path / "summary.txt").read_text()
    assert "no calibrated group test" in summary and "per_sample=True" in summary and "--tests paper" in summary


def test_group_panel_writes_difference_maps_and_per_sample_values(tmp_path):
    assert _run("freesurfer-mlp", tmp_path, "--panel", "H") == 0
    rec = load_record(tmp_path / "record.h5")
    assert rec.metadata["config"]["task"] == "classify" and set(rec.groups) == {"SZ", "HC"}
    assert rec.per_sample(rec.layers[0]).shape[:2] == (2, 20)
    for layer in rec.layers:
        assert len(list((tmp_path / "figures").glob(f"group_differences_{layer}_*-vs-*.png"))) == 1
    assert "welch-samples" in (tmp_path / "summary.txt").read_text()


def test_console_entry_point_in_a_subprocess(tmp_path):
    config = tmp_path / "settings.toml"
    config.write_text('experiment = "freesurfer-mlp"\npanel = "G"\nepochs = 3\nfigure_formats = ["png"]\n'
                      '[data]\nn = 20\n')
    proc = subprocess.run([sys.executable, "-m", "autospec.cli", "run", "--config", str(config), "--out",
                           str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "epoch     3/3  loss" in proc.stdout and "group findings:" in proc.stdout
    assert len(load_record(tmp_path / "run" / "record.h5")) == 3


def test_killed_run_reports_where_it_stopped(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "autospec.cli", "run", "freesurfer-mlp", "--epochs", "100000",
                             "--set", "data.n=20", "--no-figures", "--quiet", "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            status = out / "status.json"
            if status.is_file() and json.loads(status.read_text()).get("epoch", 0) >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = json.loads((out / "status.json").read_text())
    assert proc.returncode == 130, err
    assert status["state"] == "interrupted" and status["epoch"] >= 3
    assert f"interrupted at epoch {status['epoch']} of 100000" in err
    assert len(load_record(out / "record.h5")) >= status["epoch"]


def _has_gpu():
    try:
        from minigrad.backend import xp_for

        xp_for("cuda")
        return True
    except Exception:
        return False


@pytest.mark.parametrize("argv, message", [
    (["run", "resnet-imagenet"], "unknown experiment 'resnet-imagenet'; valid experiments are: cobre-bert"),
    (["run", "digits-mlp", "--panel", "K"], "unknown panel 'K'"),
    (["run", "digits-mlp", "--data", "/no/such/folder"], "--data /no/such/folder: no such file or folder"),
    (["run", "cobre-lstm", "--data", "{tmp}"], "needs a participants table"),
    (["run", "digits-mlp", "--config", "{tmp}/bad.toml"], "is not valid TOML"),
    (["run", "digits-mlp", "--epochs", "0"], "epochs must be >= 1"),
    (["run", "digits-mlp", "--device", "cuda"], "cuda"),
    (["sweep", "--experiments", "digits-mlp", "nope"], "unknown experiment 'nope'"),
    (["sweep", "--experiments", "digits-mlp", "--set", "data.length=8"], "data setting(s) ['length'] do not apply"),
    (["stats", "{tmp}/missing.h5"], "no record at"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_gives_one_clear_line_and_exit_code_2(argv, message, tmp_path, capsys):
    if "cuda" in argv and _has_gpu():
        pytest.skip("a GPU is present, so cuda is not an error here")
    (tmp_path / "bad.toml").write_text('epochs = "unterminated\n')
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv + ["--out", str(tmp_path / "out")] if argv[0] == "run" else argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("autospec: error:") and message in err and "Traceback" not in err


@pytest.mark.parametrize("effect, found", [(1.5, True), (0.0, False)])
def test_stats_finds_the_planted_cobre_effect(effect, found, tmp_path, capsys):
    """Per-sample tests of the COBRE-style 1-D CNN find SZ vs HC differences when the generator
    plants them, and none when it does not."""
    out = tmp_path / "run"
    assert main(["run", "cobre-cnn1d", "--panel", "G", "--epochs", "5", "--no-figures", "--quiet", "--out",
                 str(out), "--set", "data.n_subjects=40", "--set", "data.n_timepoints=24",
                 "--set", f"data.effect={effect}"]) == 0
    capsys.readouterr()
    assert main(["stats", str(out), "--groups", "SZ", "HC", "--format", "json"]) == 0
    rows = [r for r in json.loads(capsys.readouterr().out) if r["test"] == "welch-samples"]
    assert len(rows) == 2 and all(r["calibrated"] for r in rows)  # encoder.0.weight and decoder.0.weight
    significant = {r["layer"]: r["n_significant"] for r in rows}
    assert (sum(significant.values()) > 0) == found  # (checked reliable over data seeds 0-4)


def test_plot_command_and_panel_figure(tmp_path, capsys):
    for panel in ("A", "G"):
        assert _run("digits-mlp", tmp_path / panel, "--panel", panel, "--no-figures") == 0
    assert main(["plot", str(tmp_path / "G"), "--out", str(tmp_path / "figs"), "--formats", "png",
                 "--quantities", "D", "--groups", "3", "8"]) == 0
    printed = [Path(p) for p in capsys.readouterr().out.split()]
    assert {p.name for p in printed} == {"dashboard.png", "trajectories_D.png",
                                         "group_differences_encoder.0.weight_3-vs-8.png",
                                         "group_differences_decoder.0.weight_3-vs-8.png"}
    assert {p.parent.name for p in printed} == {"digits-mlp_G_seed0"}  # a folder named after the run
    assert main(["plot", str(tmp_path / "A"), str(tmp_path / "G"), "--out", str(tmp_path / "figs"),
                 "--formats", "png"]) == 0
    printed += [Path(p) for p in capsys.readouterr().out.split()]
    assert printed[-1].name == "panels.png"
    assert all(p.stat().st_size > 1000 for p in printed)


def test_sweeps_on_local_workers_and_dask_agree_and_resume(tmp_path, capsys):
    grid = ["--experiments", "freesurfer-mlp", "--panels", "A", "H", "--seeds", "3", "--epochs", "2",
            "--set", "data.n=20", "--no-figures", "--quiet"]
    for where, how in (("local", ["--workers", "2"]), ("dask", ["--dask-local", "2"])):
        code = main(["sweep", *grid, *how, "--out", str(tmp_path / where)])
        assert code == 0, (tmp_path / where / "sweep.json").read_text()
    runs = sorted(p.relative_to(tmp_path / "local") for p in (tmp_path / "local").rglob("record.h5"))
    assert len(runs) == 2
    for run in runs:
        a, b = load_record(tmp_path / "local" / run), load_record(tmp_path / "dask" / run)
        assert _same_series(a, b) and np.array_equal(a.losses, b.losses)
        assert a.metadata["seed"] == 3
    before = {run: (tmp_path / "local" / run).stat().st_mtime_ns for run in runs}
    assert main(["sweep", *grid[:-1], "--workers", "2", "--out", str(tmp_path / "local")]) == 0
    assert "2 runs (2 already finished)" in capsys.readouterr().out
    assert before == {run: (tmp_path / "local" / run).stat().st_mtime_ns for run in runs}
    report = json.loads((tmp_path / "local" / "sweep.json").read_text())
    assert report["counts"] == {"skipped": 2}


def test_demo_prints_falling_losses_and_findings(tmp_path, capsys):
    assert main(["demo", "--epochs", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    losses = [float(line.split()[-1]) for line in out.splitlines() if line.strip().startswith("epoch")]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    assert "group findings:" in out and str(tmp_path / "record.h5") in out
    assert (tmp_path / "figures" / "dashboard.png").is_file()
