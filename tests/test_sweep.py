"""Sweeps that lose nothing: changed settings get their own folders, sweep.json stays accurate
after an interrupt, and killing the sweep stops its workers."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autospec.sweep import SweepError, folder_state, plan, run_sweep

TINY = {"data": {"n": 20}, "figures": False}
GRID = dict(experiments=["freesurfer-mlp"], panels=["A"], seeds=[0], quiet=True)
REPO = Path(__file__).resolve().parents[1]


def _runs(out):
    return {entry["label"]: entry for entry in json.loads((Path(out) / "sweep.json").read_text())["runs"]}


def test_a_changed_setting_gets_a_new_folder_and_never_overwrites(tmp_path):
    out = tmp_path / "sweep"
    first = run_sweep(out=out, overrides={**TINY, "epochs": 2}, **GRID)
    (job,) = first.jobs
    record = Path(job.out_dir) / "record.h5"
    before = record.read_bytes()

    second = run_sweep(out=out, overrides={**TINY, "epochs": 3}, **GRID)
    (other,) = second.jobs
    assert other.out_dir != job.out_dir and second.counts() == {"finished": 1}
    assert record.read_bytes() == before
    runs = _runs(out)  # merged: the first sweep's run is still listed
    assert runs[job.label]["state"] == "finished" and runs[job.label]["changed_settings"]["epochs"] == 2
    assert runs[other.label]["state"] == "finished" and runs[other.label]["steps_recorded"] == 3

    # only the figure settings differ: the same folder, and the finished run is reused
    again = run_sweep(out=out, overrides={**TINY, "epochs": 2, "figures": True}, **GRID)
    assert again.jobs[0].out_dir == job.out_dir and again.counts() == {"skipped": 1}
    assert record.read_bytes() == before

    # a folder holding a run with other settings (e.g. defaults changed between versions): refused
    shutil.rmtree(other.out_dir)
    shutil.copytree(job.out_dir, other.out_dir)
    with pytest.raises(SweepError, match=r"epochs 2 -> 3") as caught:
        run_sweep(out=out, overrides={**TINY, "epochs": 3}, **GRID)
    assert "\n" not in str(caught.value)
    moved = run_sweep(out=out, overrides={**TINY, "epochs": 3}, force=True, **GRID)
    assert moved.counts() == {"finished": 1}
    backups = list(Path(other.out_dir).parent.glob("A.bak-*"))
    assert len(backups) == 1 and (backups[0] / "record.h5").read_bytes() == before


def test_a_bad_previous_sweep_json_is_kept_aside(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text("my notes, not JSON")
    run_sweep(out=out, overrides={**TINY, "epochs": 1}, **GRID)
    (backup,) = out.glob("sweep.json.bak-*")
    assert backup.read_text() == "my notes, not JSON"
    assert json.loads((out / "sweep.json").read_text())["sweep"]["state"] == "finished"


def _start_sweep(out, *extra):
    """A sweep of two long runs on two workers, as a user starts it from a terminal (its own
    session, so a Ctrl-C can reach its whole process group); returns it once both runs have
    recorded a few steps, with the PIDs of the workers running them."""
    command = [sys.executable, "-m", "autospec.cli", "sweep", "--experiments", "freesurfer-mlp",
               "--panels", "A", "B", "--epochs", "100000", "--set", "data.n=20", "--no-figures",
               "--quiet", "--workers", "2", "--out", str(out), *extra]
    sweep = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = [json.loads(p.read_text()) for p in out.rglob("status.json")]
        if len(statuses) == 2 and all(s.get("step", 0) >= 3 for s in statuses):
            return sweep, [s["pid"] for s in statuses]
        assert sweep.poll() is None, sweep.communicate()
        time.sleep(0.1)
    sweep.kill()
    raise AssertionError(f"the sweep's runs did not start: {sweep.communicate()}")


def _alive(pids):
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        alive.append(pid)
    return alive


def _statuses(out):
    return {p.parent.name: json.loads(p.read_text()) for p in out.rglob("status.json")}


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_a_stopped_sweep_interrupts_its_runs_and_sweep_json_says_where(tmp_path, stop):
    out = tmp_path / "sweep"
    sweep, workers = _start_sweep(out)
    assert sweep.pid not in workers and len(set(workers)) == 2  # the runs are in worker processes
    if stop == "SIGTERM":
        sweep.send_signal(signal.SIGTERM)
    else:  # a terminal's Ctrl-C: SIGINT to the foreground process group
        os.killpg(sweep.pid, signal.SIGINT)
    stdout, stderr = sweep.communicate(timeout=30)
    assert sweep.returncode == 130 and "Traceback" not in stderr, stderr
    assert not _alive(workers)
    statuses = _statuses(out)
    report = json.loads((out / "sweep.json").read_text())
    assert report["sweep"]["state"] == "interrupted"
    for entry in report["runs"]:
        status = statuses[entry["panel"]]
        assert status["state"] == "interrupted" and entry["state"] == "interrupted"
        assert entry["step"] == status["step"] >= 3
        assert f"interrupted at step {status['step']}" in entry["message"]
    # a rerun of the same grid runs these again into their folders (where run_experiment resumes)
    jobs = plan(["freesurfer-mlp"], ["A", "B"], [0], out, {"epochs": 100000, "data": {"n": 20}, "figures": False})
    assert [folder_state(job)[0] for job in jobs] == ["unfinished", "unfinished"]
    assert {str(Path(job.out_dir).relative_to(out).parent) for job in jobs} == \
        {str(Path(entry["out_dir"]).relative_to(out).parent) for entry in report["runs"]}


def test_sigkill_of_a_sweep_stops_its_workers_quietly(tmp_path):
    out = tmp_path / "sweep"
    sweep, workers = _start_sweep(out)
    sweep.kill()
    deadline = time.monotonic() + 10
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(workers), "workers still running 10 s after the sweep was killed"
    stdout, stderr = sweep.communicate(timeout=10)
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    for status in _statuses(out).values():  # the workers ended their runs as interrupted
        assert status["state"] == "interrupted" and status["step"] >= 3


def test_the_panel_figure_is_redrawn_when_its_runs_change(tmp_path):
    out = tmp_path / "sweep"
    quick = {**TINY, "epochs": 3}  # no figures: the runs alone
    drawn = {**quick, "figures": True, "figure_formats": ["png"]}
    run_sweep(out=out, overrides=quick, **{**GRID, "panels": ["A", "B"]})
    both = run_sweep(out=out, overrides=drawn, **{**GRID, "panels": ["A", "B"]})  # same runs, now drawn
    figure = Path(both.jobs[0].out_dir).parent / "panels.png"
    assert both.counts() == {"skipped": 2} and both.panel_figures == [figure]
    first = figure.stat().st_mtime_ns
    assert run_sweep(out=out, overrides=drawn, **GRID).panel_figures == []  # nothing changed

    redo = run_sweep(out=out, overrides=drawn, force=True, **GRID)  # panel A alone runs again
    assert redo.counts() == {"finished": 1} and redo.panel_figures == [figure]
    assert figure.stat().st_mtime_ns != first


@pytest.mark.parametrize("args, api, message", [
    (["--out", "{file}"], dict(out="{file}"), "{file} is "),
    (["--out", "{tmp}", "--dask-local", "0"], dict(out="{tmp}", dask_local=0), "--dask-local"),
    (["--out", "{tmp}", "--workers", "0"], dict(out="{tmp}", workers=0), "--workers"),
    (["--out", "{folder}"], dict(out="{folder}"), "{folder}/sweep.json is not a file"),
])
def test_bad_sweep_requests_are_one_line_before_any_run(tmp_path, capsys, args, api, message):
    from autospec.cli import main
    from autospec.errors import AutoSpecError

    names = {"file": tmp_path / "notes.txt", "tmp": tmp_path / "out", "folder": tmp_path / "odd"}
    names["file"].write_text("mine")
    (names["folder"] / "sweep.json").mkdir(parents=True)
    message = message.format(**names)
    with pytest.raises(AutoSpecError, match=re.escape(message)) as caught:
        run_sweep(overrides={**TINY, "epochs": 1}, **GRID, **{k: v.format(**names) if isinstance(v, str) else v
                                                               for k, v in api.items()})
    assert "\n" not in str(caught.value)
    args = [a.format(**names) for a in args]
    code = main(["sweep", "--experiments", "freesurfer-mlp", "--panels", "A", "--epochs", "1", "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert names["file"].read_text() == "mine" and not list(tmp_path.rglob("record.h5"))
