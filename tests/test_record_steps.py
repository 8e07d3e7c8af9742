"""Record additions: noise floors, per-step sample labels and ids, resume, old-format files."""
import json
import os
import struct
import zlib

import h5py
import numpy as np
import pytest

from autospec import _journal
from autospec.record import Record, RecordError, load_record

G = ("l", "G", None, None)
A = ("l", "A", None, None)
G_SZ = ("l", "G", "SZ", None)


def batch(step):
    """Labels and ids of a mini-batch that changes every step (sizes 3 or 4)."""
    n = 3 + step % 2
    ids = (np.arange(n) * 7 + step) % 11
    labels = np.where(ids % 2 == 0, "SZ", "HC")
    if step == 2:
        labels[0] = "MDD"  # a label first seen mid-run
    return labels, ids


def write_steps(rec, steps):
    for s in steps:
        labels, ids = batch(s)
        spectra = {G: np.array([3.0, 1.0, 1e-9]) * (s + 1), A: np.array([2.0, 0.5])}
        floors = {G: 1e-6 * (s + 1)}
        if s >= 1:
            spectra[G_SZ] = np.array([1.0, 1e-12])
            floors[G_SZ] = 1e-9
        rec.append(s, spectra, loss=float(s), floors=floors, sample_groups=labels, sample_ids=ids,
                   per_sample={"l": np.full((len(ids), 2), float(s))})
    return rec


def check_steps(rec, steps, record_labels=None):
    assert list(rec.steps) == list(steps)
    f = rec.floor("l", "G")
    np.testing.assert_array_equal(f, [1e-6 * (s + 1) for s in steps])
    assert np.isnan(rec.floor("l", "A")).all()  # never given: unknown
    sz = rec.floor("l", "G", "SZ")
    assert np.isnan(sz[list(steps).index(0)]) if 0 in steps else True
    above = rec.series("l", "G", above_floor=True)
    raw = rec.series("l", "G")
    assert np.isnan(above[:, 2]).all() and not np.isnan(raw[:, 2]).any()  # 1e-9*(s+1) <= floor
    np.testing.assert_array_equal(above[:, :2], raw[:, :2])
    np.testing.assert_array_equal(rec.series("l", "A", above_floor=True), rec.series("l", "A"))  # no floor: kept
    groups, ids = rec.step_sample_groups(), rec.step_sample_ids()
    assert groups.shape == ids.shape == (len(steps), 4) and ids.dtype == np.int64
    for row, s in enumerate(steps):
        labels, want = batch(s)
        n = len(want)
        assert list(groups[row, :n]) == list(labels) and (groups[row, n:] == "").all()
        assert list(ids[row, :n]) == list(want) and (ids[row, n:] == -1).all()
    if record_labels is None:
        assert rec.sample_groups is None  # the labels differ between steps
    else:
        np.testing.assert_array_equal(rec.sample_groups, record_labels)


def test_floors_labels_and_ids_round_trip_everywhere(tmp_path):
    steps = range(6)
    check_steps(write_steps(Record(), steps), steps)
    path = tmp_path / "r.h5"
    writer = write_steps(Record(path=path), range(3))
    writer.checkpoint()  # stored part + memory part, each with its own label table
    write_steps(writer, range(3, 6))
    check_steps(writer, steps)
    check_steps(load_record(path), steps)  # killed run: file part + journal replay
    writer.close()
    loaded = load_record(path)
    check_steps(loaded, steps)
    loaded.to_npz(tmp_path / "r.npz")
    check_steps(load_record(tmp_path / "r.npz"), steps)
    with h5py.File(path, "r") as f:
        assert f["step_samples/group_codes"].dtype == np.int32 and f["step_samples/group_labels"].shape == (3,)
        assert f["floors"].shape == (6, 2) and f["floors"].fletcher32  # one column per key given a floor
        floors = json.loads(f["index"].asstr()[()])["floors"]
        assert floors == [["l", "G", None, None, 0], ["l", "G", "SZ", None, 1]]


def test_record_level_labels_fill_steps_without_their_own():
    rec = Record()
    rec.set_sample_groups(["a", "b", "a"])
    rec.append(0, {G: np.ones(1)}, per_sample={"l": np.ones((3, 1))})  # N = 3: record labels fit
    rec.append(1, {G: np.ones(1)}, per_sample={"l": np.ones((5, 1))})  # N = 5: they do not
    rec.append(2, {G: np.ones(1)}, sample_groups=["x", "y"])
    rec.append(3, {G: np.ones(1)})  # N unknown: record labels
    np.testing.assert_array_equal(rec.step_sample_groups(), [["a", "b", "a"], ["", "", ""], ["x", "y", ""],
                                                             ["a", "b", "a"]])
    np.testing.assert_array_equal(rec.sample_groups, ["a", "b", "a"])  # record-level ones win
    assert rec.step_sample_ids() is None
    assert Record().step_sample_groups() is None


def test_sample_groups_from_identical_per_step_labels(tmp_path):
    rec = Record()
    for s in range(3):
        rec.append(s, {G: np.ones(2)}, sample_groups=["SZ", "HC"])
    np.testing.assert_array_equal(rec.sample_groups, ["SZ", "HC"])
    rec.append(3, {G: np.ones(2)})  # a step without labels: no single set of labels any more
    assert rec.sample_groups is None


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(floors={G_SZ: 1.0}), ValueError, "not in this step's spectra"),
    (dict(floors={G: np.ones(2)}), ValueError, "single number"),
    (dict(floors=[1.0]), TypeError, "floors must be a dict"),
    (dict(sample_groups=["a", ""]), ValueError, "empty strings"),
    (dict(sample_ids=[0.5, 1.0]), TypeError, "integer"),
    (dict(sample_ids=[-1, 2]), ValueError, ">= 0"),
    (dict(sample_groups=["a", "b"], sample_ids=[1, 2, 3]), ValueError, "2 labels but sample_ids has 3"),
    (dict(sample_groups=["a", "b"], per_sample={"l": np.ones(3)}), ValueError, r"per_sample\['l'\] has 3 rows"),
])
def test_bad_step_samples_and_floors_are_refused(kwargs, error, match):
    rec = Record()
    with pytest.raises(error, match=match):
        rec.append(0, {G: np.ones(2)}, **kwargs)
    assert len(rec) == 0


# ----------------------------------------------------------------------------- resume

def test_resume_keeps_rows_backs_up_and_equals_an_uninterrupted_run(tmp_path):
    whole = write_steps(Record(metadata={"m": 1}), range(8))
    path = tmp_path / "r.h5"
    killed = write_steps(Record(path=path, metadata={"m": 1}), range(6))
    killed.set_sample_groups(["SZ", "HC", "SZ"])
    whole.set_sample_groups(["SZ", "HC", "SZ"])
    del killed  # never closed: HDF5 file + journal
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    rec = Record.resume(path, through_step=3)
    assert len(rec) == 4 and rec.n_steps_through(3) == 4 and rec.n_steps_through(-1) == 0
    backup = rec.resumed_backup
    assert backup is not None and os.path.dirname(backup) == str(tmp_path)
    assert os.path.basename(backup).startswith("r.h5.bak-")
    check_steps(load_record(backup), range(6), ["SZ", "HC", "SZ"])  # the whole old record, steps 4 and 5 included
    with pytest.raises(ValueError, match="steps must increase"):
        rec.append(3, {G: np.ones(1)})
    write_steps(rec, range(4, 8))
    check_steps(load_record(path), range(8), ["SZ", "HC", "SZ"])  # killed again: still readable with every step
    rec.close()
    done = load_record(path)
    check_steps(done, range(8), ["SZ", "HC", "SZ"])
    assert done.metadata == {"m": 1}
    np.testing.assert_array_equal(done.sample_groups, ["SZ", "HC", "SZ"])
    for key in whole.keys():
        np.testing.assert_array_equal(done.series(*key), whole.series(*key))
        np.testing.assert_array_equal(done.floor(*key), whole.floor(*key))
    assert done.keys() == whole.keys()
    np.testing.assert_array_equal(done.per_sample("l"), whole.per_sample("l"))
    np.testing.assert_array_equal(done.losses, whole.losses)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["r.h5", os.path.basename(backup)])
    assert set(before) == {"r.h5", "r.h5.journal"}

    again = Record.resume(path, through_step=100)  # nothing dropped: no backup
    assert again.resumed_backup is None and len(again) == 8
    again.append(9, {G: np.ones(1)})
    again.close()
    assert len(load_record(path)) == 9
    second = Record.resume(path, through_step=0)  # a second backup in the same second gets its own name
    assert second.resumed_backup != backup and os.path.exists(backup)
    second.close()
    assert len(load_record(path)) == 1 and len(load_record(second.resumed_backup)) == 9


def test_resume_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Record.resume(tmp_path / "missing.h5", 3)
    (tmp_path / "junk.h5").write_bytes(b"not a record")
    with pytest.raises(RecordError, match="junk.h5"):
        Record.resume(tmp_path / "junk.h5", 3)
    write_steps(Record(), range(2)).to_npz(tmp_path / "r.npz")
    with pytest.raises(RecordError, match="npz"):
        Record.resume(tmp_path / "r.npz", 3)
    with pytest.raises(TypeError, match="through_step"):
        Record.resume(tmp_path / "r.npz", 1.5)


# ----------------------------------------------------------------------------- format version 1

def _write_v1(path, journal=""):
    """A record file as format version 1 wrote it (no floors, no step_samples, unchunked)."""
    string = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.attrs.update(format="autospec-record", format_version=1, run_id="ab" * 16, n_steps=2, journal=journal)
        f["steps"] = np.array([0, 5])
        f["losses"] = np.array([1.0, 0.5])
        f["spectra/l/G/all/sum"] = np.array([[2.0, 1.0], [3.0, np.nan]])
        f.create_dataset("sample_groups", data=np.array(["a", "b"], dtype=object), dtype=string)
        index = {"layers": ["l"], "spectra": [["l", "G", None, None, "spectra/l/G/all/sum"]], "per_sample": [],
                 "extra": [], "sample_groups": "sample_groups"}
        f.create_dataset("index", data=json.dumps(index), dtype=string)
        f.create_dataset("metadata", data=json.dumps({"v": 1}), dtype=string)


def _v1_frame(head, payload):
    hb = json.dumps(head).encode()
    body = struct.pack("<I", len(hb)) + hb + payload
    return b"ASJF" + struct.pack("<II", len(body), zlib.crc32(body)) + body


def test_version_1_records_and_journals_still_load(tmp_path):
    path = tmp_path / "old.h5"
    _write_v1(path)
    rec = load_record(path)
    np.testing.assert_array_equal(rec.series("l", "G"), [[2.0, 1.0], [3.0, np.nan]])
    assert np.isnan(rec.floor("l", "G")).all() and rec.step_sample_ids() is None
    np.testing.assert_array_equal(rec.step_sample_groups(), [["a", "b"], ["a", "b"]])
    np.testing.assert_array_equal(rec.series("l", "G", above_floor=True), rec.series("l", "G"))
    assert rec.metadata == {"v": 1}

    _write_v1(path, journal="old.h5.journal")  # a version-1 run that was killed
    frames = [_v1_frame({"t": "step", "i": 2, "s": 9, "l": None, "x": {}, "d": [[0, "l", "G", None, None]],
                         "k": [[0, 1]], "p": []}, np.array([7.0]).tobytes()),
              _v1_frame({"t": "step", "i": 3, "s": 10, "l": 2.0, "x": {}, "d": [], "k": [[0, 2]], "p": []},
                        np.array([8.0, 6.0]).tobytes())]
    (tmp_path / "old.h5.journal").write_bytes(_journal.journal_header("ab" * 16, version=1) + b"".join(frames))
    rec = load_record(path)
    np.testing.assert_array_equal(rec.steps, [0, 5, 9, 10])
    np.testing.assert_array_equal(rec.series("l", "G")[2:], [[7.0, np.nan], [8.0, 6.0]])
    rec.save(path)  # consolidates into a version-2 file and removes the verified journal
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.h5"]
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 2
    np.testing.assert_array_equal(load_record(path).steps, [0, 5, 9, 10])


def test_arrays_handed_out_are_the_callers_own(tmp_path):
    key = ("L", "G", None, None)
    with Record(tmp_path / "r.h5") as rec:
        for s in range(3):
            rec.append(s, {key: np.array([2.0, 1.0])}, loss=0.5, floors={key: 1e-9}, extra={"t": 1.0})
    loaded = load_record(tmp_path / "r.h5")
    for read in (lambda: loaded.steps, lambda: loaded.losses, lambda: loaded.extra("t"), lambda: loaded.floor(*key)):
        first = read()
        first[:] = 7
        assert not np.any(read() == 7)  # a later read is not changed by what a caller did to an earlier one
