"""Runs that lose nothing: resume after a kill, backups instead of overwrites, a lock that cannot
go stale, and one-line errors for bad input (issue 13)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minigrad as mg
from autospec import cli
from autospec.checkpoint import CheckpointError, load_checkpoint
from autospec.cli import main
from autospec.outputs import RunLock
from autospec.record import load_record
from minigrad import nn, optim

ROOT = Path(__file__).resolve().parents[1]
# 20 samples in mini-batches of 8: 3 steps per epoch, the last one short; per-sample values too
SMALL = ["freesurfer-mlp", "--panel", "G", "--set", "data.n=20", "--batch-size", "8", "--no-figures", "--quiet"]


def _same_records(a, b):
    a, b = load_record(a), load_record(b)
    assert list(a.steps) == list(b.steps) and a.keys() == b.keys()
    assert np.array_equal(a.losses, b.losses)
    for key in a.keys():
        assert np.array_equal(a.series(*key), b.series(*key), equal_nan=True), key
    for layer in a.per_sample_layers:
        assert np.array_equal(a.per_sample(layer), b.per_sample(layer), equal_nan=True), layer
    assert np.array_equal(a.step_sample_ids(), b.step_sample_ids())


def _status(out):
    try:
        return json.loads((out / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_sigkill_then_the_same_command_resumes_to_the_uninterrupted_record(tmp_path, capsys):
    argv = ["run", *SMALL, "--epochs", "60", "--checkpoint-seconds", "0"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "autospec.cli", *argv, "--out", str(killed)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and _status(killed).get("step", 0) < 12:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    status = _status(killed)
    assert status["state"] == "running" and 12 <= status["step"] < 180  # killed mid-run, nothing said
    at_kill = load_checkpoint(killed / "checkpoint.npz").step
    assert 0 < at_kill <= len(load_record(killed / "record.h5"))

    assert main([*argv, "--out", str(killed)]) == 0
    assert f"continuing freesurfer-mlp panel G from its checkpoint at step {at_kill}" in capsys.readouterr().err
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    _same_records(killed / "record.h5", tmp_path / "whole" / "record.h5")
    assert _status(killed)["state"] == "finished" and _status(killed)["step"] == 180


# dropout draws from minigrad's generator, whose state the checkpoint must carry too
DROPOUT = ["cobre-bert", "--set", "data.n_subjects=8", "--set", "data.n_timepoints=8", "--set", "data.n_components=7",
           "--set", "model_options.dropout=0.3", "--batch-size", "3", "--width", "8", "--no-figures", "--quiet"]


@pytest.mark.parametrize("run", [SMALL, DROPOUT], ids=["mlp-minibatch", "bert-dropout"])
def test_ctrl_c_stops_after_the_step_and_saves_a_checkpoint_there(run, tmp_path, monkeypatch):
    calls = {"n": 0}
    original = optim.Adam.step

    def step(self):  # Ctrl-C arrives during the 5th step (mid-epoch: 3 steps per epoch)
        calls["n"] += 1
        if calls["n"] == 5:
            os.kill(os.getpid(), signal.SIGINT)
        original(self)

    monkeypatch.setattr(optim.Adam, "step", step)
    out = tmp_path / "run"
    assert main(["run", *run, "--epochs", "4", "--out", str(out)]) == cli.EXIT_INTERRUPTED
    assert _status(out)["state"] == "interrupted" and _status(out)["step"] == 5
    state = load_checkpoint(out / "checkpoint.npz")
    assert (state.epoch, state.batch, state.step) == (1, 2, 5)
    monkeypatch.setattr(optim.Adam, "step", original)
    assert main(["run", *run, "--epochs", "4", "--out", str(out)]) == 0
    assert main(["run", *run, "--epochs", "4", "--out", str(tmp_path / "whole")]) == 0
    _same_records(out / "record.h5", tmp_path / "whole" / "record.h5")


def test_restart_moves_the_old_run_into_a_backup(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--epochs", "2", "--out", str(out)]) == 0
    old = {name: (out / name).read_bytes() for name in ("record.h5", "summary.txt", "checkpoint.npz")}
    assert main(["run", *SMALL, "--epochs", "3", "--out", str(out)]) == 2  # other settings: refused
    assert "other settings (epochs 2 -> 3)" in capsys.readouterr().err
    assert main(["run", *SMALL, "--epochs", "3", "--out", str(out), "--restart"]) == 0
    [backup] = out.glob("backup-*")
    assert {name: (backup / name).read_bytes() for name in old} == old
    assert len(load_record(out / "record.h5")) == 9


def test_a_users_files_in_out_survive(tmp_path, capsys):
    mine = 'experiment = "freesurfer-mlp"\nepochs = 2\nfigures = false\n[data]\nn = 20\n'
    (tmp_path / "config.toml").write_text(mine)
    (tmp_path / "notes.txt").write_text("my notes")
    argv = ["run", "--config", str(tmp_path / "config.toml"), "--out", str(tmp_path), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds config.toml, not written by an autospec run" in err
    assert (tmp_path / "config.toml").read_text() == mine and not (tmp_path / "record.h5").exists()
    assert main(argv + ["--force"]) == 0
    [backup] = tmp_path.glob("backup-*")
    assert (backup / "config.toml").read_text() == mine and (tmp_path / "notes.txt").read_text() == "my notes"
    assert (tmp_path / "config.toml").read_text().startswith("# autospec run freesurfer-mlp")


def test_the_lock_names_its_holder_and_a_stale_status_does_not_block(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):  # another run holds the folder
        assert main(["run", *SMALL, "--epochs", "1", "--out", str(out)]) == 2
    assert f"is in use by process {os.getpid()}" in capsys.readouterr().err
    # a run killed long ago whose process id now belongs to a live process (here: our parent)
    (out / "status.json").write_text(json.dumps({"state": "running", "pid": os.getppid(), "experiment": "x",
                                                 "config_digest": "0", "epoch": 0, "step": 0}))
    assert main(["run", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    # a lock file that is a link is never written through
    (tmp_path / "target").write_text("keep")
    (out / "autospec.lock").unlink()
    (out / "autospec.lock").symlink_to(tmp_path / "target")
    assert main(["run", *SMALL, "--epochs", "1", "--out", str(out)]) == 2
    assert "autospec.lock is not a plain file" in capsys.readouterr().err
    assert (tmp_path / "target").read_text() == "keep"


def test_a_damaged_checkpoint_is_named_and_the_run_starts_over_keeping_the_old_files(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    data = (out / "checkpoint.npz").read_bytes()
    (out / "checkpoint.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="damaged or foreign checkpoint"):
        load_checkpoint(out / "checkpoint.npz")
    assert main(["run", *SMALL, "--epochs", "1", "--out", str(out)]) == 0
    assert "starting over" in capsys.readouterr().err
    [backup] = out.glob("backup-*")
    assert (backup / "checkpoint.npz").read_bytes() == data[: len(data) // 2]


def test_data_options_reach_the_loaders_with_data(tmp_path):
    from autospec.experiments import load_experiment_data, resolve_config

    csv = tmp_path / "volumes.csv"
    rows = [f"s{i},{'SZ' if i % 2 else 'HC'},{4000 + i},{4100 + i},{900 + i}" for i in range(12)]
    csv.write_text("subject,group,Left-Hippocampus,Right-Hippocampus,Brain-Stem\n" + "\n".join(rows) + "\n")
    cfg = resolve_config("freesurfer-mlp", overrides={"data_path": str(csv), "standardize": "none", "data": {
        "regions": ["Brain-Stem", "Left-Hippocampus"], "n": 5}})
    data, X, groups, _ = load_experiment_data(cfg)
    assert X.shape == (5, 2) and len(set(X[:, 0])) == 5  # 5 of the 12 subjects (data.n)
    assert set(X[:, 0]) <= {900.0 + i for i in range(12)}  # Brain-Stem first, as data.regions asks
    assert set(X[:, 1]) <= {4000.0 + i for i in range(12)}
    bad = resolve_config("freesurfer-mlp", overrides={"data_path": str(csv), "data": {"variable": "x"}})
    with pytest.raises(Exception, match=r"data setting\(s\) \['variable'\] do not apply to load_volume_csv"):
        load_experiment_data(bad)


def test_a_bug_prints_its_traceback_and_says_so(monkeypatch, capsys):
    def broken(args):
        raise ValueError("an internal mistake")

    monkeypatch.setattr(cli, "cmd_list", broken)
    assert main(["list"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback" in err and "ValueError: an internal mistake" in err and "this is a bug" in err


def _truncated_npz(tmp):
    path = tmp / "data.npz"
    np.savez(path, X=np.zeros((30, 9)), y=np.arange(30) % 2)
    path.write_bytes(path.read_bytes()[:200])
    return str(path)


@pytest.mark.parametrize("argv, message", [
    (["run", "freesurfer-mlp", "--out", "{file}"], "is an existing file, not a folder"),
    (["demo", "--out", "{file}"], "is an existing file, not a folder"),
    (["sweep", "--experiments", "freesurfer-mlp", "--out", "{file}"], "is an existing file, not a folder"),
    (["run", "sinusoid-rnn", "--data", "{npz}", "--out", "{out}"], "cannot read as .npz"),
    (["run", "freesurfer-mlp", "--epochs", "1e20", "--out", "{out}"], "epochs must be <= 10000000"),
    (["run", "freesurfer-mlp", "--set", "epochs=1e20", "--out", "{out}"], "epochs must be <= 10000000"),
    (["run", "digits-mlp", "--width", "100000000000", "--out", "{out}"], "of memory (model"),
    (["run", "digits-mlp", "--set", "data.image_size=100000", "--out", "{out}"], "of memory, but"),
    (["run", "freesurfer-mlp", "--set", "data.n=100000000000", "--out", "{out}"], "of memory, but"),
    (["run", "freesurfer-mlp", "--depth", "100000", "--out", "{out}"], "depth must be <= 64"),
    (["run", "freesurfer-mlp", "--depth", "2000", "--out", "{out}"], "depth must be <= 64"),
    (["sweep", "--dask-local", "0", "--out", "{out}"], "--dask-local: must be >= 1"),
])
def test_bad_input_gives_one_line_and_exit_code_2(argv, message, tmp_path, capsys):
    (tmp_path / "afile").write_text("mine")
    fill = {"{file}": str(tmp_path / "afile"), "{out}": str(tmp_path / "out"), "{npz}": _truncated_npz(tmp_path)}
    argv = [fill.get(a, a) for a in argv]
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("autospec: error:") and err.count("\n") == 1 and message in err, err
    assert (tmp_path / "afile").read_text() == "mine"


@pytest.mark.parametrize("make", [
    lambda params: optim.Adam(params, lr=1e-2),
    lambda params: optim.SGD(params, lr=1e-2, momentum=0.9, nesterov=True),
], ids=["adam", "sgd-nesterov"])
def test_optimizer_state_dict_continues_training_exactly(make):

    x = mg.tensor(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))

    def train(model, opt, steps):
        for _ in range(steps):
            loss = ((model(x) - x) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

    mg.manual_seed(0)
    whole = nn.Linear(4, 4)
    opt = make(whole.parameters())
    train(whole, opt, 6)
    mg.manual_seed(0)
    first = nn.Linear(4, 4)
    opt1 = make(first.parameters())
    train(first, opt1, 3)
    mg.manual_seed(1)
    second = nn.Linear(4, 4)  # other weights, fresh optimizer: everything comes from the saved state
    second.load_state_dict(first.state_dict())
    opt2 = make(second.parameters())
    opt2.load_state_dict(opt1.state_dict())
    train(second, opt2, 3)
    for a, b in zip(whole.parameters(), second.parameters()):
        assert np.array_equal(a.numpy(), b.numpy())
