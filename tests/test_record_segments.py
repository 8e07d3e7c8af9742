"""Long runs stay bounded: the writer moves its steps into segment files as it goes, so its memory
stays flat and the bytes it writes grow linearly with the steps; loads stay lazy and exact."""
import os

import h5py
import numpy as np
import pytest

from autospec import _h5
from autospec.record import Record, RecordError, estimate_record_bytes, load_record

KEYS = [(f"layer{i}", q, None, None) for i in range(3) for q in "GA"]


def spectra(step):
    return {key: np.arange(4, 0, -1) * (step + 1.0) + i for i, key in enumerate(KEYS)}


def run(path, n_steps, segment_bytes=4096, **kwargs):
    """Write n_steps; returns the writer (open) and the most steps it ever held in memory."""
    rec = Record(path=path, segment_bytes=segment_bytes, **kwargs)
    held = 0
    for s in range(n_steps):
        rec.append(s, spectra(s), loss=float(s), floors={KEYS[0]: 0.25}, sample_ids=[s, s + 1],
                   sample_groups=["a", "b"] if s % 2 else ["b", "b"], per_sample={"layer0": np.full((2, 1), s)})
        held = max(held, rec._tail.n)
    return rec, held


def check(rec, n_steps):
    assert len(rec) == n_steps
    np.testing.assert_array_equal(rec.steps, np.arange(n_steps))
    np.testing.assert_array_equal(rec.losses, np.arange(n_steps, dtype=float))
    for i, key in enumerate(KEYS):
        np.testing.assert_array_equal(rec.series(*key), [spectra(s)[key] for s in range(n_steps)])
    np.testing.assert_array_equal(rec.floor(*KEYS[0]), 0.25)
    np.testing.assert_array_equal(rec.step_sample_ids()[:, 0], np.arange(n_steps))
    np.testing.assert_array_equal(rec.step_sample_groups()[:, 0], ["a" if s % 2 else "b" for s in range(n_steps)])
    np.testing.assert_array_equal(rec.per_sample("layer0")[:, 0, 0], np.arange(n_steps))


def segment_files(folder):
    return sorted(p.name for p in folder.iterdir() if ".seg" in p.name)


def test_memory_stays_flat_and_bytes_written_grow_linearly(tmp_path):
    results = {}
    for n_steps in (80, 160, 320):
        folder = tmp_path / str(n_steps)
        folder.mkdir()
        rec, held = run(folder / "r.h5", n_steps)
        assert len(segment_files(folder)) >= n_steps // 20  # steps moved out of memory as the run went
        check(load_record(folder / "r.h5"), n_steps)  # a killed run: segments + journal
        rec.close()
        results[n_steps] = (held, rec.bytes_written)
        assert segment_files(folder) == [] and sorted(p.name for p in folder.iterdir()) == ["r.h5"]
        check(load_record(folder / "r.h5"), n_steps)
    held = [h for h, _ in results.values()]
    assert max(held) == min(held) and max(held) < 40  # the same bound whatever the length of the run
    written = [b for _, b in results.values()]
    assert 1.8 < written[1] / written[0] < 2.2 and 1.8 < written[2] / written[1] < 2.2  # O(steps), not O(steps^2)


def test_segments_are_written_once_and_listed_by_the_record_file(tmp_path):
    path = tmp_path / "r.h5"
    rec, _ = run(path, 100)
    names = segment_files(tmp_path)
    stamps = {name: os.stat(tmp_path / name).st_mtime_ns for name in names}
    with h5py.File(path, "r") as f:
        assert f.attrs["n_steps"] == 100 - rec._tail.n and "spectra" not in f  # the record file holds no rows
    for s in range(100, 140):
        rec.append(s, spectra(s))
    assert all(os.stat(tmp_path / name).st_mtime_ns == stamps[name] for name in names)  # never rewritten
    assert len(segment_files(tmp_path)) > len(names)
    rec.close()
    rec.save(path)  # a closed writer saved onto its own file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"] and len(load_record(path)) == 140


def test_loads_stay_lazy_across_segments(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"
    run(path, 120)
    reads = []
    real_read = _h5.H5Source.read
    monkeypatch.setattr(_h5.H5Source, "read", lambda self, name, *a, **k: reads.append(name)
                        or real_read(self, name, *a, **k))
    rec = load_record(path)
    assert reads == [] and len(rec) == 120
    rec.series(*KEYS[1])
    assert set(reads) == {"spectra/layer0/A/all/sum"}


def test_resume_and_save_remove_only_their_own_segments(tmp_path):
    path = tmp_path / "r.h5"
    rec, _ = run(path, 100)
    del rec  # killed
    other = tmp_path / "r.h5.0123abcd.seg00001"  # someone else's file that looks like a segment
    other.write_bytes(b"not mine")
    old_segments = set(segment_files(tmp_path)) - {other.name}
    killed_write = tmp_path / f".{sorted(old_segments)[-1][:-5]}99999.0123abcd.tmp"
    killed_write.write_bytes(b"half a segment")  # a segment write of that run that was killed
    resumed = Record.resume(path, 59, segment_bytes=4096)
    assert not old_segments & set(segment_files(tmp_path))  # the old run's segments are gone (rows kept)
    assert not killed_write.exists()
    check(load_record(resumed.resumed_backup), 100)
    for s in range(60, 100):
        resumed.append(s, spectra(s), loss=float(s), floors={KEYS[0]: 0.25}, sample_ids=[s, s + 1],
                       sample_groups=["a", "b"] if s % 2 else ["b", "b"], per_sample={"layer0": np.full((2, 1), s)})
    check(load_record(path), 100)
    loaded = load_record(path)
    loaded.save(path)  # consolidate the (killed) resumed run
    assert segment_files(tmp_path) == [other.name] and other.read_bytes() == b"not mine"
    check(load_record(path), 100)


def test_damaged_or_foreign_segment_lists(tmp_path):
    path = tmp_path / "r.h5"
    run(path, 60)
    with h5py.File(path, "r") as f:
        listed = f["segments"].asstr()[()]
    first = segment_files(tmp_path)[0]
    outside = tmp_path.parent / (tmp_path.name + "-outside.h5")
    Record().save(outside)
    for bad, match in [(listed.replace(first, "../" + outside.name), "not a plain file name"),
                       (listed.replace(first, "missing.seg"), "missing")]:
        with h5py.File(path, "a") as f:
            del f["segments"]
            f.create_dataset("segments", data=bad, dtype=h5py.string_dtype("utf-8"))
        with pytest.raises(RecordError, match=match):
            load_record(path)
    with h5py.File(path, "a") as f:
        del f["segments"]
        f.create_dataset("segments", data=listed, dtype=h5py.string_dtype("utf-8"))
    load_record(path)
    with h5py.File(tmp_path / first, "a") as f:
        f.attrs["run_id"] = "f" * 32
    with pytest.raises(RecordError, match="another run"):
        load_record(path)


def test_estimate_record_bytes_is_close_to_the_real_size(tmp_path):
    rec = Record()
    keys = [(f"l{i}", q, None, None) for i in range(10) for q in "GAD"]
    for s in range(400):
        rec.append(s, {key: np.ones(12) for key in keys}, loss=1.0, floors={key: 1e-9 for key in keys},
                   per_sample={"l0": np.ones((16, 2))}, sample_groups=["a", "b"] * 8, sample_ids=np.arange(16),
                   extra={"introspect_seconds": 0.1})
    rec.save(tmp_path / "r.h5")
    real = os.path.getsize(tmp_path / "r.h5")
    estimate = estimate_record_bytes(400, {key: 12 for key in keys}, {"l0": (16, 2)}, samples_per_step=16)
    assert 0.85 < estimate / real < 1.2
    assert estimate_record_bytes(800, [12] * 30) > 1.9 * estimate_record_bytes(400, [12] * 30) * 0.95


@pytest.mark.parametrize("value", [0, -5, 1.5, True, "16M"])
def test_bad_segment_bytes(tmp_path, value):
    with pytest.raises(ValueError, match="segment_bytes"):
        Record(path=tmp_path / "r.h5", segment_bytes=value)
