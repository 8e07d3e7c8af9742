"""Tests of autospec.record: round trips, padding, laziness, npz export, errors, crash safety."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from autospec import _h5, _journal
from autospec.record import Record, RecordError, from_npz, load_record

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def spectrum(step, salt, k):
    """Deterministic descending spectrum for (step, salt), length k."""
    return (k - np.arange(k)) * (1.0 + step) + 0.001 * salt


def fill(rec, n_steps=6, start=0):
    """Append steps with varying lengths, a group that appears at step 3, positions, per-sample values."""
    for s in range(start, start + n_steps):
        spectra = {
            ("0.weight", "G", None, None): spectrum(s, 1, 2 + s % 3),
            ("0.weight", "A", None, None): spectrum(s, 2, 4),
            ("lstm.weight_hh_l0", "G", None, 0): spectrum(s, 3, 3),
            ("lstm.weight_hh_l0", "G", None, 1): spectrum(s, 4, 3),
        }
        if s >= 3:
            spectra[("0.weight", "G", "SZ", None)] = spectrum(s, 5, 2)
        rec.append(s * 10, spectra, loss=1.0 / (s + 1) if s != 1 else None,
                   per_sample={"0.weight": np.full((5, 1), float(s))}, extra={"seconds": 0.5 * s})
    return rec


def check_filled(rec, n_steps=6):
    assert len(rec) == n_steps
    np.testing.assert_array_equal(rec.steps, 10 * np.arange(n_steps))
    assert rec.steps.dtype == np.int64
    losses = rec.losses
    assert np.isnan(losses[1]) and losses[0] == 1.0 and losses[2] == pytest.approx(1 / 3)
    g = rec.series("0.weight", "G")
    assert g.shape == (n_steps, 4) and g.dtype == np.float64
    for s in range(n_steps):
        k = 2 + s % 3
        np.testing.assert_array_equal(g[s, :k], spectrum(s, 1, k))
        assert np.isnan(g[s, k:]).all()
    sz = rec.series("0.weight", "G", "SZ")
    assert np.isnan(sz[:3]).all()
    np.testing.assert_array_equal(sz[3:], np.stack([spectrum(s, 5, 2) for s in range(3, n_steps)]))
    np.testing.assert_array_equal(rec.series("lstm.weight_hh_l0", "G", None, 1)[-1], spectrum(n_steps - 1, 4, 3))
    ps = rec.per_sample("0.weight")
    assert ps.shape == (n_steps, 5, 1)
    np.testing.assert_array_equal(ps[:, 0, 0], np.arange(n_steps))
    np.testing.assert_array_equal(rec.extra("seconds"), 0.5 * np.arange(n_steps))
    assert rec.layers == ["0.weight", "lstm.weight_hh_l0"]
    assert rec.quantities == ["G", "A"]
    assert rec.groups == ["SZ"]
    assert rec.positions("lstm.weight_hh_l0") == [0, 1] and rec.positions("0.weight") == []
    assert rec.keys() == [("0.weight", "G", None, None), ("0.weight", "A", None, None),
                          ("lstm.weight_hh_l0", "G", None, 0), ("lstm.weight_hh_l0", "G", None, 1),
                          ("0.weight", "G", "SZ", None)]
    assert rec.per_sample_layers == ["0.weight"] and rec.extra_names == ["seconds"]


# ----------------------------------------------------------------------------- round trips

def test_in_memory_round_trip():
    rec = fill(Record(metadata={"model": "mlp", "seed": np.int64(3), "dims": np.array([32, 8])}))
    check_filled(rec)
    assert rec.metadata == {"model": "mlp", "seed": 3, "dims": [32, 8]}
    rec.metadata["model"] = "changed"  # a copy: the record is unaffected
    assert rec.metadata["model"] == "mlp"
    assert rec.path is None and rec.sample_groups is None


def test_file_backed_round_trip_and_save(tmp_path):
    path = tmp_path / "run.h5"
    with Record(path=path, metadata={"model": "mlp"}) as rec:
        fill(rec)
        rec.set_sample_groups(np.array(["SZ", "HC", "SZ", "HC", "HC"]))
        rec.update_metadata({"epochs": 6})
        check_filled(rec)  # readable while being written
    assert not os.path.exists(str(path) + ".journal")
    assert [p.name for p in tmp_path.iterdir()] == ["run.h5"]  # no stray temporary files
    loaded = load_record(path)
    check_filled(loaded)
    assert loaded.metadata == {"model": "mlp", "epochs": 6}
    np.testing.assert_array_equal(loaded.sample_groups, ["SZ", "HC", "SZ", "HC", "HC"])
    with pytest.raises(RecordError, match="read-only"):
        loaded.append(100, {})
    with pytest.raises(RecordError, match="read-only"):
        rec.append(100, {})

    memory = fill(Record(metadata={"m": 1}))
    memory.save(tmp_path / "mem.h5")
    check_filled(load_record(tmp_path / "mem.h5"))
    loaded.save(tmp_path / "copy.h5")
    check_filled(load_record(tmp_path / "copy.h5"))


def test_layout_is_browsable_with_h5py(tmp_path):
    rec = fill(Record())
    rec.save(tmp_path / "r.h5")
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["format"] == "autospec-record" and f.attrs["format_version"] == 2
        ds = f["spectra/0.weight/G/all/sum"]
        assert ds.shape == (6, 4) and ds.maxshape == (None, None) and ds.chunks is not None
        assert "spectra/lstm.weight_hh_l0/G/all/1" in f and "spectra/0.weight/G/SZ/sum" in f
        assert json.loads(f["metadata"].asstr()[()]) == {}


def test_awkward_names_round_trip(tmp_path):
    rec = Record()
    names = [("enc/0.weight", "G", "all", None), ("enc/0.weight", "G", None, None), (".", "A", "a/b%2F", 3),
             ("x", "D", "", 0), ("x", "D", "é ü", None)]
    for s in range(2):
        rec.append(s, {key: spectrum(s, i, 3) for i, key in enumerate(names)}, extra={"a/b": 1.0})
    rec.save(tmp_path / "r.h5")
    rec.to_npz(tmp_path / "r.npz")
    for loaded in (load_record(tmp_path / "r.h5"), load_record(tmp_path / "r.npz")):
        assert loaded.keys() == names
        for i, key in enumerate(names):
            np.testing.assert_array_equal(loaded.series(*key)[1], spectrum(1, i, 3))
        assert loaded.groups == ["all", "a/b%2F", "", "é ü"]
        np.testing.assert_array_equal(loaded.extra("a/b"), [1.0, 1.0])


def test_group_and_position_given_as_ints():
    rec = Record()
    rec.append(0, {("l", "G", 3, np.int64(2)): np.ones(2)})
    assert rec.keys() == [("l", "G", "3", 2)]
    np.testing.assert_array_equal(rec.series("l", "G", 3, 2), [[1.0, 1.0]])
    with pytest.raises(ValueError, match="same"):
        rec.append(1, {("l", "G", 3, 2): np.ones(2), ("l", "G", "3", 2): np.ones(2)})


# ----------------------------------------------------------------------------- padding, new keys

def test_nan_padding_when_k_grows_and_keys_are_missing(tmp_path):
    rec = Record(path=tmp_path / "r.h5")
    rec.append(0, {("l", "G", None, None): np.array([3.0])})
    rec.append(1, {("l", "A", None, None): np.array([1.0])})  # G missing at this step
    rec.append(2, {("l", "G", None, None): np.array([5.0, 4.0, 3.0]), ("l", "A", None, None): np.array([])})
    expected_g = np.array([[3.0, np.nan, np.nan], [np.nan] * 3, [5.0, 4.0, 3.0]])
    np.testing.assert_array_equal(rec.series("l", "G"), expected_g)
    rec.close()
    np.testing.assert_array_equal(load_record(tmp_path / "r.h5").series("l", "G"), expected_g)
    np.testing.assert_array_equal(load_record(tmp_path / "r.h5").series("l", "A"), [[np.nan], [1.0], [np.nan]])


def test_new_keys_after_a_checkpoint(tmp_path):
    path = tmp_path / "r.h5"
    rec = Record(path=path)
    fill(rec, 3)
    rec.checkpoint()  # the first 3 steps move into the HDF5 file
    assert sum(part.n for part in load_record(path)._parts) == 3  # stored, not in the journal
    fill(rec, 3, start=3)  # group "SZ" first appears here; k of G grows
    check_filled(rec)
    check_filled(load_record(path))  # file part + journal
    rec.checkpoint()
    check_filled(load_record(path))
    rec.close()
    check_filled(load_record(path))


def test_per_sample_values_pad_n_and_k():
    rec = Record()
    rec.append(0, {}, per_sample={"conv.weight": np.ones((4, 2))})
    rec.append(1, {}, per_sample={"conv.weight": 2 * np.ones((3, 3)), "fc.weight": np.arange(3.0)})
    ps = rec.per_sample("conv.weight")
    assert ps.shape == (2, 4, 3)
    assert np.isnan(ps[0, :, 2]).all() and np.isnan(ps[1, 3]).all()
    np.testing.assert_array_equal(ps[1, :3], 2.0)
    np.testing.assert_array_equal(rec.per_sample("fc.weight")[:, :, 0], [[np.nan] * 3, [0.0, 1.0, 2.0]])
    assert rec.layers == ["conv.weight", "fc.weight"]


# ----------------------------------------------------------------------------- laziness

def test_loading_is_lazy_and_keeps_no_file_open(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    fill(Record()).save(path)
    reads = []
    real_read = _h5.H5Source.read
    monkeypatch.setattr(_h5.H5Source, "read", lambda self, name, rows=True: reads.append(name)
                        or real_read(self, name, rows))
    rec = load_record(path)
    assert reads == [] and len(rec) == 6 and rec.layers == ["0.weight", "lstm.weight_hh_l0"]
    rec.series("0.weight", "A")
    assert reads == ["spectra/0.weight/A/all/sum"]
    rec.steps, rec.steps
    assert reads.count("steps") == 1  # small columns are cached
    if os.path.isdir("/proc/self/fd"):
        open_files = {os.path.realpath(os.path.join("/proc/self/fd", fd)) for fd in os.listdir("/proc/self/fd")
                      if os.path.exists(os.path.join("/proc/self/fd", fd))}
        assert str(path.resolve()) not in open_files
    os.replace(path, tmp_path / "moved.h5")  # nothing holds the file: it can be renamed away
    with pytest.raises(FileNotFoundError):
        rec.series("0.weight", "G")


def test_loaded_record_is_a_snapshot_of_a_live_writer(tmp_path):
    path = tmp_path / "r.h5"
    writer = Record(path=path)
    fill(writer, 3)
    early = load_record(path)  # HDF5 file with no steps + journal
    writer.checkpoint()
    middle = load_record(path)  # 3 steps in the file
    fill(writer, 3, start=3)
    writer.checkpoint()  # replaces the file under both readers
    writer.close()
    for rec in (early, middle):
        assert len(rec) == 3
        np.testing.assert_array_equal(rec.series("0.weight", "A")[:, 0], [spectrum(s, 2, 4)[0] for s in range(3)])
    check_filled(load_record(path))
    Record(path=path).close()  # another run replaces the file
    with pytest.raises(RecordError, match="replaced by another run"):
        middle.series("0.weight", "G")


# ----------------------------------------------------------------------------- npz

def test_npz_export_loads_without_pickle(tmp_path):
    rec = fill(Record(metadata={"seed": 1}))
    rec.set_sample_groups(["a", "b", "a", "b", "a"])
    rec.to_npz(tmp_path / "r.npz")
    with np.load(tmp_path / "r.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["G/0.weight/all/sum"], rec.series("0.weight", "G"))
        np.testing.assert_array_equal(z["G/0.weight/SZ/sum"], rec.series("0.weight", "G", "SZ"))
        np.testing.assert_array_equal(z["G/lstm.weight_hh_l0/all/1"], rec.series("lstm.weight_hh_l0", "G", None, 1))
        np.testing.assert_array_equal(z["steps"], rec.steps)
        np.testing.assert_array_equal(z["losses"], rec.losses)
        np.testing.assert_array_equal(z["extra/seconds"], rec.extra("seconds"))
        np.testing.assert_array_equal(z["per_sample/0.weight"], rec.per_sample("0.weight"))
        assert json.loads(str(z["metadata"])) == {"seed": 1}
        assert all(z[name].dtype != object for name in z.files)
    for loaded in (load_record(tmp_path / "r.npz"), from_npz(tmp_path / "r.npz")):
        check_filled(loaded)
        np.testing.assert_array_equal(loaded.sample_groups, ["a", "b", "a", "b", "a"])


# ----------------------------------------------------------------------------- errors

def test_unknown_names_list_the_valid_choices():
    rec = fill(Record())
    with pytest.raises(RecordError, match=r"unknown layer 'nope'.*'0\.weight', 'lstm\.weight_hh_l0'"):
        rec.series("nope", "G")
    with pytest.raises(RecordError, match=r"quantity 'D' is not recorded.*'G', 'A'"):
        rec.series("0.weight", "D")
    with pytest.raises(RecordError, match=r"group 'HC' .*None, 'SZ'"):
        rec.series("0.weight", "G", "HC")
    with pytest.raises(RecordError, match=r"position 7 .*0, 1"):
        rec.series("lstm.weight_hh_l0", "G", None, 7)
    with pytest.raises(RecordError, match=r"position None .*0, 1"):
        rec.series("lstm.weight_hh_l0", "G")
    with pytest.raises(RecordError, match=r"unknown extra 'acc'.*'seconds'"):
        rec.extra("acc")
    with pytest.raises(RecordError, match=r"per-sample.*'0\.weight'"):
        rec.per_sample("lstm.weight_hh_l0")
    with pytest.raises(RecordError, match="unknown layer"):
        rec.positions("nope")
    with pytest.raises(KeyError):  # RecordError is KeyError-like and a ValueError
        rec.series("nope", "G")
    assert isinstance(RecordError("x"), ValueError) and str(RecordError("msg")) == "msg"


@pytest.mark.parametrize("call, error, match", [
    (lambda r: r.append(5, {}), ValueError, "steps must increase"),
    (lambda r: r.append(1.5, {}), TypeError, "step must be an int"),
    (lambda r: r.append(20, {("l", "G", None, None): np.ones((2, 2))}), ValueError, "1-D"),
    (lambda r: r.append(20, {("l", "X", None, None): np.ones(2)}), ValueError, "quantity must be one of"),
    (lambda r: r.append(20, {("l", "G", None): np.ones(2)}), TypeError, "tuples"),
    (lambda r: r.append(20, {("l", "G", 1.5, None): np.ones(2)}), TypeError, "group"),
    (lambda r: r.append(20, {("l", "G", None, -1): np.ones(2)}), ValueError, "position"),
    (lambda r: r.append(20, {("l", "G", None, None): ["a"]}), TypeError, "real array"),
    (lambda r: r.append(20, {}, loss=np.ones(2)), ValueError, "single number"),
    (lambda r: r.append(20, {}, per_sample={"l": np.ones((2, 2, 2))}), ValueError, r"\(N, k_s\)"),
    (lambda r: r.set_sample_groups(np.ones((2, 2))), ValueError, "1-D"),
    (lambda r: r.update_metadata({"f": object()}), TypeError, "JSON"),
])
def test_bad_input_is_refused_with_a_clear_message(call, error, match):
    rec = Record()
    rec.append(10, {("l", "G", None, None): np.ones(2)})
    with pytest.raises(error, match=match):
        call(rec)
    assert len(rec) == 1  # nothing half-appended
    np.testing.assert_array_equal(rec.series("l", "G"), [[1.0, 1.0]])


def test_bad_constructor_arguments(tmp_path):
    with pytest.raises(TypeError, match="metadata="):
        Record({"model": "x"})
    with pytest.raises(TypeError, match="JSON"):
        Record(metadata={"x": object()})
    with pytest.raises(ValueError, match=".npz"):
        Record(path=tmp_path / "r.npz")
    Record(path=tmp_path / "r.h5").close()
    with pytest.raises(FileExistsError):
        Record(path=tmp_path / "r.h5", overwrite=False)


def _record_file(tmp_path):
    path = tmp_path / "good.h5"
    fill(Record()).save(path)
    return path


def test_corrupt_files_raise_record_error_naming_the_file(tmp_path):
    good = _record_file(tmp_path)
    cases = {}
    cases["random.h5"] = np.random.default_rng(0).bytes(5000)
    cases["empty.h5"] = b""
    data = good.read_bytes()
    cases["truncated.h5"] = data[: len(data) // 2]
    cases["text.npz"] = b"PK\x03\x04 definitely not a zip"
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    newer = tmp_path / "newer.h5"
    newer.write_bytes(data)
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = 99
    np.savez(tmp_path / "plain.npz", x=np.arange(3))
    np.savez(tmp_path / "pickled.npz", format=np.array("autospec-record"), format_version=np.array(1),
             run_id=np.array("0"), n_steps=np.array(0), metadata=np.array([{"evil": 1}], dtype=object),
             index=np.array("{}"))
    expectations = {
        "random.h5": "not a record or it is damaged",
        "empty.h5": "not a record or it is damaged",
        "truncated.h5": "damaged/truncated",
        "text.npz": "cannot be read as an .npz",
        "other.h5": "not an autospec record",
        "newer.h5": "newer autospec.*version 99",
        "plain.npz": "not an autospec record",
        "pickled.npz": "damaged record header",
    }
    for name, match in expectations.items():
        with pytest.raises(RecordError, match=match) as info:
            load_record(tmp_path / name)
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        load_record(tmp_path / "missing.h5")


def test_damaged_dataset_and_journal_errors(tmp_path):
    good = _record_file(tmp_path)
    with h5py.File(good, "a") as f:
        del f["spectra/0.weight/A/all/sum"]
    rec = load_record(good)
    with pytest.raises(RecordError, match=r"good\.h5.*'spectra/0\.weight/A/all/sum'.*missing"):
        rec.series("0.weight", "A")

    path = tmp_path / "live.h5"
    writer = fill(Record(path=path), 4)
    journal = str(path) + ".journal"
    with pytest.raises(RecordError, match="journal of a record"):
        load_record(journal)
    data = bytearray(open(journal, "rb").read())
    first_frame_body = len(_journal.journal_header(writer._run_id)) + _journal._FRAME.size + 8
    data[first_frame_body] ^= 0xFF  # a damaged frame followed by more frames: that step alone is lost
    with open(journal, "wb") as fh:
        fh.write(bytes(data))
    with pytest.warns(UserWarning, match=r"live\.h5\.journal.*damaged"):
        rec = load_record(path)
    np.testing.assert_array_equal(rec.steps, [10, 20, 30])


# ----------------------------------------------------------------------------- crash safety

def test_every_cut_of_the_journal_loads_the_completed_steps(tmp_path):
    """A kill at any moment leaves a prefix of the journal: every prefix must load, with exactly
    the steps whose frames are complete."""
    live = tmp_path / "live"
    live.mkdir()
    writer = Record(path=live / "r.h5", metadata={"m": 1})
    journal = live / "r.h5.journal"
    boundaries = [journal.stat().st_size]
    for s in range(4):
        writer.append(s, {("l", "G", None, None): spectrum(s, 0, 2)}, loss=float(s), extra={"x": s})
        boundaries.append(journal.stat().st_size)
    data = journal.read_bytes()
    cut_dir = tmp_path / "cut"
    cut_dir.mkdir()
    (cut_dir / "r.h5").write_bytes((live / "r.h5").read_bytes())
    cuts = list(range(0, boundaries[0] + 1, 7)) + list(range(boundaries[0], len(data) + 1, 3))
    for cut in cuts + boundaries:
        (cut_dir / "r.h5.journal").write_bytes(data[:cut])
        rec = load_record(cut_dir / "r.h5")
        completed = sum(b <= cut for b in boundaries[1:])
        assert len(rec) == completed, cut
        np.testing.assert_array_equal(rec.steps, np.arange(completed))
        if completed:
            np.testing.assert_array_equal(rec.series("l", "G")[-1], spectrum(completed - 1, 0, 2))
        assert rec.metadata == {"m": 1}


def test_checkpoint_cut_short_and_stale_journals(tmp_path):
    path = tmp_path / "r.h5"
    writer = fill(Record(path=path), 6)
    journal = tmp_path / "r.h5.journal"
    before = journal.read_bytes()
    writer.checkpoint()
    journal.write_bytes(before)  # killed after the file was replaced but before the journal was emptied
    check_filled(load_record(path))
    writer.close()
    journal.write_bytes(before)  # killed after the finished file was written, before the journal was removed
    check_filled(load_record(path))
    # a journal of another run beside a fresh file is ignored; temporaries of killed rewrites are cleaned up
    (tmp_path / ".r.h5.0123abcd.tmp").write_bytes(b"left by a killed rewrite")
    (tmp_path / ".r.h5.notmine.tmp").write_bytes(b"someone else's")
    Record(path=path).close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.h5.notmine.tmp", "r.h5"]
    journal.write_bytes(before)
    assert len(load_record(path)) == 0


def test_saving_a_killed_run_onto_itself_consolidates_it(tmp_path):
    path = tmp_path / "r.h5"
    writer = fill(Record(path=path), 6)
    writer.set_sample_groups(["a"] * 5)
    del writer  # never closed: HDF5 file with no steps + journal
    rec = load_record(path)
    check_filled(rec)
    rec.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]
    check_filled(rec)
    again = load_record(path)
    check_filled(again)
    np.testing.assert_array_equal(again.sample_groups, ["a"] * 5)


CHILD = r"""
import sys, time
import numpy as np
from autospec.record import Record

def expected(step):
    k = 1 + step % 7
    spectra = {("0.weight", q, None, None): np.arange(k, 0, -1) * (step + 1.0) + i
               for i, q in enumerate("GAD")}
    spectra[("rnn.weight_hh_l0", "G", None, step % 3)] = np.full(3, float(step))
    if step >= 5:
        spectra[("0.weight", "G", "late", None)] = np.array([step + 0.5])
    return spectra

if __name__ == "__main__":
    path, mode = sys.argv[1], sys.argv[2]
    rec = Record(path=path, metadata={"child": True})
    for step in range(100000):
        rec.append(step, expected(step), loss=step / 2, extra={"t": -step},
                   per_sample={"0.weight": np.full((4, 1 + step % 2), float(step))})
        print(step, flush=True)
        if mode == "checkpoint" and step % 5 == 4:
            rec.checkpoint()
        if mode == "close" and step == 40:
            rec.close()
            print("closed", flush=True)
            time.sleep(60)
"""


def _check_child_record(path, completed):
    ns = {}
    exec(compile(CHILD, "child", "exec"), ns)
    rec = load_record(path)
    n = len(rec)
    assert n >= len(completed) and all(s < n for s in completed)
    np.testing.assert_array_equal(rec.steps, np.arange(n))
    np.testing.assert_array_equal(rec.losses, np.arange(n) / 2)
    np.testing.assert_array_equal(rec.extra("t"), -np.arange(n))
    assert rec.metadata == {"child": True}
    ps = rec.per_sample("0.weight")
    got = {key: rec.series(*key) for key in rec.keys()}
    for step in range(n):
        spectra = ns["expected"](step)
        for key, series in got.items():
            if key in spectra:
                k = len(spectra[key])
                np.testing.assert_array_equal(series[step, :k], spectra[key])
                assert np.isnan(series[step, k:]).all()
            else:
                assert np.isnan(series[step]).all()
        np.testing.assert_array_equal(ps[step, :, : 1 + step % 2], step)
    return n


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_at_any_moment_keeps_every_completed_step(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rnd = random.Random(1)
    plans = [("append", 1), ("append", 30), ("append", 120), ("checkpoint", 12), ("checkpoint", 47),
             ("close", 40), ("close", 40)]
    for i, (mode, kill_after) in enumerate(plans):
        path = tmp_path / f"run{i}.h5"
        child = subprocess.Popen([sys.executable, str(script), str(path), mode], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=env, text=True)
        try:
            seen = []
            while True:
                line = child.stdout.readline()
                assert line, f"child died early: {child.stderr.read()}"
                if line.strip().isdigit():
                    seen.append(int(line))
                if len(seen) > kill_after:
                    break
            time.sleep(rnd.random() * 0.01)  # land somewhere inside the next appends / checkpoint / close
            child.send_signal(signal.SIGKILL)
            rest = child.stdout.read()  # what it printed before dying (the buffered reader holds some)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
            child.stderr.close()
        completed = seen + [int(x) for x in rest.split() if x.isdigit()]
        assert completed == list(range(len(completed)))
        n = _check_child_record(path, completed)
        if mode == "close" and "closed" in rest:
            assert n == 41 and not os.path.exists(str(path) + ".journal")


# ----------------------------------------------------------------------------- devices

class _FakeDeviceArray:
    """Looks like a CuPy array to the record (CUDA array interface + .get()), without a GPU."""

    __cuda_array_interface__ = {}

    def __init__(self, host):
        self._host = np.asarray(host)

    def get(self):
        return self._host.copy()

    def __array__(self, *args, **kwargs):
        raise TypeError("implicit conversion of a device array to NumPy is not allowed")


def test_device_arrays_are_copied_to_host(xp):
    rec = Record()
    rec.append(0, {("l", "G", None, None): xp.asarray([2.0, 1.0], dtype=xp.float32),
                   ("l", "A", None, None): _FakeDeviceArray([3.0, 1.0])},
               loss=xp.asarray(0.25), per_sample={"l": _FakeDeviceArray(np.ones((2, 1)))},
               extra={"acc": _FakeDeviceArray(0.5)})
    rec.set_sample_groups(_FakeDeviceArray(np.array([0, 1])))
    assert type(rec.series("l", "G")) is np.ndarray
    np.testing.assert_array_equal(rec.series("l", "G"), [[2.0, 1.0]])
    np.testing.assert_array_equal(rec.series("l", "A"), [[3.0, 1.0]])
    assert rec.losses[0] == 0.25 and rec.extra("acc")[0] == 0.5
    np.testing.assert_array_equal(rec.sample_groups, ["0", "1"])
