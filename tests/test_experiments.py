"""The experiment registry, settings resolution, real-data loading and interrupted runs."""
import json
import struct
import tomllib

import numpy as np
import pytest

from autospec.experiments import (PANELS, ExperimentConfig, ExperimentError, RunInterrupted, config_to_toml,
                                  describe_stale, experiment_info, list_experiments, load_experiment_data,
                                  parse_assignment, read_status, resolve_config, run_experiment)
from autospec.record import load_record

TABLE2 = {"digits-mlp", "digits-cnn2d", "sinusoid-rnn", "freesurfer-mlp", "cobre-lstm", "cobre-bert",
          "cobre-cnn1d", "spatialmap-cnn3d"}


def test_registry_covers_table2_and_every_panel_resolves():
    names = set(list_experiments())
    assert TABLE2 <= names
    for name in names:
        for panel in experiment_info(name)["panels"]:
            cfg = resolve_config(name, panel)
            assert (cfg.task, cfg.width, cfg.activation) == tuple(PANELS[panel][0][k] for k in
                                                                  ("task", "width", "activation"))
            assert cfg.per_sample == (panel in "GH")
            assert cfg.epochs == 1000 and cfg.lr == 1e-3 and cfg.batch_size == 0 and cfg.seed == 0


def test_settings_resolve_in_order_registry_panel_file_overrides(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('activation = "tanh"\nepochs = 7\n[data]\nn = 40\n')
    cfg = resolve_config("digits-mlp", "E", config_file=path, overrides={"epochs": 3, "data": {"seed": 5}})
    assert cfg.width == 8  # panel E
    assert cfg.activation == "tanh"  # the file beats the panel
    assert cfg.epochs == 3  # the overrides beat the file
    assert cfg.data == {"n": 40, "flatten": True, "seed": 5}  # tables merge key by key
    path.write_text('experiment = "freesurfer-mlp"\npanel = "b"\n')
    cfg = resolve_config(config_file=path)
    assert (cfg.experiment, cfg.panel, cfg.task) == ("freesurfer-mlp", "B", "classify")


def test_resolved_config_round_trips_through_toml():
    cfg = resolve_config("cobre-bert", "C", overrides={"data_path": "/x", "compare": ["SZ", "HC"], "lr": 0.5})
    again = ExperimentConfig(**tomllib.loads(config_to_toml(cfg, header="a\nb")))
    assert again == cfg and again.digest() == cfg.digest()


@pytest.mark.parametrize("call, match", [
    (lambda: resolve_config("nope"), "valid experiments are: cobre-bert"),
    (lambda: resolve_config("digits-mlp", "Q"), "panels are A, B, C"),
    (lambda: resolve_config("digits-mlp", overrides={"epochs": "many"}), "'epochs' must be an integer"),
    (lambda: resolve_config("digits-mlp", overrides={"group_by": "age"}), "group_by must be one of"),
    (lambda: resolve_config("digits-mlp", overrides={"device": "tpu"}), "unknown device"),
    (lambda: parse_assignment("data.n"), "KEY=VALUE"),
    (lambda: parse_assignment("widht=3"), "unknown setting 'widht'"),
    (lambda: parse_assignment("epochs.x=3"), "not a table"),
])
def test_bad_settings_are_named(call, match):
    with pytest.raises(ExperimentError, match=match):
        call()


def test_parse_assignment_reads_toml_values():
    assert parse_assignment("data.shape=[8, 8, 8]") == (["data", "shape"], [8, 8, 8])
    assert parse_assignment("lr=1e-2") == (["lr"], 0.01)
    assert parse_assignment("loader=mnist") == (["loader"], "mnist")


def test_malformed_config_files_are_rejected(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [1,\n")
    with pytest.raises(ExperimentError, match="not valid TOML"):
        resolve_config("digits-mlp", config_file=bad)
    bad.write_text("epochz = 3\n")
    with pytest.raises(ExperimentError, match=r"unknown setting\(s\) \['epochz'\]"):
        resolve_config("digits-mlp", config_file=bad)
    with pytest.raises(ExperimentError, match="not found"):
        resolve_config("digits-mlp", config_file=tmp_path / "missing.toml")


# ----------------------------------------------------------------------------- real data files


def _idx(path, arr, code):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    path.write_bytes(header + arr.astype(">u1").tobytes())


def _participants(folder, n):
    rows = ["subject,group,sex"] + [f"sub{i:03d},{'SZ' if i % 2 else 'HC'},{'M' if i % 3 else 'F'}"
                                    for i in range(n)]
    (folder / "participants.csv").write_text("\n".join(rows) + "\n")


def test_mnist_idx_folder_feeds_the_digit_models(tmp_path):
    rng = np.random.default_rng(0)
    _idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 256, (12, 6, 6)), 0x08)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.arange(12) % 3, 0x08)
    for name, shape in (("digits-mlp", (12, 36)), ("digits-cnn2d", (12, 1, 6, 6))):
        cfg = resolve_config(name, "B", overrides={"data_path": str(tmp_path)})
        data, X, groups, desc = load_experiment_data(cfg)
        assert X.shape == shape and desc["source"] == str(tmp_path) and desc["n_classes"] == 3
        assert sorted(set(groups)) == ["0", "1", "2"]
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(ExperimentError, match="no MNIST labels file"):
        load_experiment_data(resolve_config("digits-mlp", overrides={"data_path": str(tmp_path)}))


def test_gift_timecourses_folder_feeds_the_cobre_models(tmp_path):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(0)
    for i in range(6):
        img = nib.Nifti1Image(rng.standard_normal((20, 7)).astype(np.float32), np.eye(4))
        nib.save(img, tmp_path / f"cobre_sub{i:03d}_timecourses_ica_s1_.nii")
    cfg = resolve_config("cobre-lstm", overrides={"data_path": str(tmp_path), "group_by": "group+sex"})
    with pytest.raises(ExperimentError, match="participants.csv"):
        load_experiment_data(cfg)
    _participants(tmp_path, 6)
    data, X, groups, desc = load_experiment_data(cfg)
    assert X.shape == (6, 20, 7) and set(groups) == {"SZ-M", "SZ-F", "HC-M", "HC-F"}
    np.testing.assert_allclose(X.mean(axis=(0, 1)), 0, atol=1e-5)  # standardized per component
    cnn = resolve_config("cobre-cnn1d", overrides={"data_path": str(tmp_path)})
    assert load_experiment_data(cnn)[1].shape == (6, 7, 20)  # components as channels
    nib.save(nib.Nifti1Image(np.zeros((20, 5), np.float32), np.eye(4)), tmp_path / "x_sub005_timecourses.nii")
    with pytest.raises(ValueError, match="sub005"):  # a second file for one subject, of another shape
        load_experiment_data(cfg)


def test_volume_csv_and_npz_files(tmp_path):
    csv = tmp_path / "volumes.csv"
    csv.write_text("subject,group,Left-Hippocampus,Right-Hippocampus\n"
                   "s1,SZ,4000,4100\ns2,HC,4300,4400\ns3,SZ,3900,4000\ns4,HC,4250,nan\n")
    cfg = resolve_config("freesurfer-mlp", overrides={"data_path": str(csv)})
    with pytest.raises(ValueError, match="NaN"):
        load_experiment_data(cfg)
    csv.write_text(csv.read_text().replace("nan", "4350"))
    data, X, groups, _ = load_experiment_data(cfg)
    assert X.shape == (4, 2) and list(groups) == ["SZ", "HC", "SZ", "HC"]
    npz = tmp_path / "seq.npz"
    np.savez(npz, X=np.zeros((5, 9)), y=np.arange(5) % 2)
    data, X, groups, _ = load_experiment_data(resolve_config("sinusoid-rnn", overrides={"data_path": str(npz)}))
    assert X.shape == (5, 9, 1) and list(groups) == ["0", "1", "0", "1", "0"]
    np.savez(npz, X=np.zeros((5, 9)))
    with pytest.raises(ExperimentError, match="needs arrays X and y"):
        load_experiment_data(resolve_config("sinusoid-rnn", overrides={"data_path": str(npz)}))
    with pytest.raises(ExperimentError, match="no such file"):
        load_experiment_data(resolve_config("sinusoid-rnn", overrides={"data_path": str(tmp_path / "nope")}))


# ----------------------------------------------------------------------------- running


def _tiny(name, **extra):
    return resolve_config(name, "A", overrides={"data": {"n": 40}, "figures": False, **extra})


def test_run_writes_record_with_full_metadata_and_status(tmp_path):
    result = run_experiment(_tiny("digits-mlp", epochs=3, batch_size=16, compare=["0", "1"]), tmp_path, quiet=True)
    rec = load_record(result.record_path)
    assert len(rec) == 9  # 3 epochs x 3 mini-batches of 40 samples
    meta = rec.metadata
    assert meta["config"]["batch_size"] == 16 and meta["seed"] == 0 and meta["loss_reduction"] == "mean"
    assert meta["data"]["group_counts"] == {str(k): 4 for k in range(10)}
    assert set(rec.groups) == {str(k) for k in range(10)}
    status = read_status(tmp_path)
    assert status["state"] == "finished" and status["epoch"] == 3 and status["step"] == 9
    assert (tmp_path / "summary.txt").read_text().startswith("AutoSpec run: digits-mlp panel A")


def test_interrupted_run_keeps_its_steps_and_says_where(tmp_path, monkeypatch):
    from minigrad import optim

    calls = {"n": 0}
    original = optim.Adam.step

    def step(self):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(optim.Adam, "step", step)
    with pytest.raises(RunInterrupted) as info:
        run_experiment(_tiny("freesurfer-mlp", epochs=50, data={"n": 20}), tmp_path, quiet=True)
    status = read_status(tmp_path)
    assert info.value.status["epoch"] == 3 and status["state"] == "interrupted" and status["step"] == 3
    assert len(load_record(tmp_path / "record.h5")) == 4  # the 4th step was recorded before the update failed
    assert "interrupted at epoch 3 of 50" in describe_stale(status)
    killed = dict(status, state="running", pid=2 ** 22 + 12345)  # a writer that no longer exists
    assert "stopped without finishing" in describe_stale(killed)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_diverging_training_stops_with_a_clear_error(tmp_path):
    with pytest.raises(ExperimentError, match="diverged"):
        run_experiment(_tiny("digits-mlp", epochs=5, lr=1e30, optimizer="sgd"), tmp_path, quiet=True)
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"
