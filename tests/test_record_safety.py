"""Records safe to open: a record file can never make us read or delete files outside it, a
damaged journal frame costs one step, and flipped bits in HDF5 datasets are reported."""
import os
import time

import h5py
import numpy as np
import pytest

from autospec import _journal
from autospec.record import Record, RecordError, load_record

KEY = ("l", "G", None, None)


def values(step):
    return np.array([3.0, 2.0, 1.0]) * (step + 1)


def killed_run(path, n_steps):
    """A file-backed run that was never closed: an HDF5 file with no steps plus its journal."""
    writer = Record(path=path, metadata={"m": 1})
    for s in range(n_steps):
        writer.append(s, {KEY: values(s)}, loss=float(s), floors={KEY: 0.5}, sample_groups=["a", "b"],
                      sample_ids=[s, s + 1])
    writer._journal.close()  # as if killed: nothing consolidated
    return writer


def set_journal_attr(path, name):
    with h5py.File(path, "a") as f:
        f.attrs["journal"] = name


def snapshot(folder):
    return {p: (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("reference", ["../outside.bin", "ABS", "sub/outside.bin", "..", ".", "LINK"])
def test_a_journal_reference_leading_out_of_the_folder_is_refused(tmp_path, reference):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"a user's precious file")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "outside.bin").write_bytes(b"another user file")
    run = tmp_path / "run"
    run.mkdir()
    path = run / "r.h5"
    killed_run(path, 3)
    (run / "r.h5.journal").unlink()
    if reference == "ABS":
        reference = str(outside)
    elif reference == "LINK":  # a plain name beside the record, but a link leading out of the folder
        os.symlink(outside, run / "r.h5.journal")
        reference = "r.h5.journal"
    elif reference == "sub/outside.bin":
        reference = os.path.join("..", "sub", "outside.bin")
    set_journal_attr(path, reference)
    before = snapshot(tmp_path)
    with pytest.raises(RecordError, match="damaged or foreign record") as info:
        load_record(path)
    assert "\n" not in str(info.value) and "r.h5" in str(info.value)
    with pytest.raises(RecordError, match="damaged or foreign record"):
        Record.resume(path, 1)
    assert snapshot(tmp_path) == before  # every file untouched, none created or deleted


def test_special_files_as_journal_are_refused_fast(tmp_path):
    path = tmp_path / "r.h5"
    killed_run(path, 2)
    os.unlink(tmp_path / "r.h5.journal")
    cases = [("/dev/zero", None)]
    if os.path.exists("/dev/zero"):
        cases.append(("r.h5.journal", lambda p: os.symlink("/dev/zero", p)))
    if hasattr(os, "mkfifo"):
        cases.append(("r.h5.journal", os.mkfifo))  # a pipe would block a plain open()
    cases.append(("r.h5.journal", os.mkdir))
    for name, make in cases:
        target = tmp_path / name
        if make is not None:
            make(target)
        set_journal_attr(path, name)
        start = time.perf_counter()
        with pytest.raises(RecordError, match="damaged or foreign record"):
            load_record(path)
        assert time.perf_counter() - start < 2.0
        if make is not None:
            os.rmdir(target) if target.is_dir() and not target.is_symlink() else os.unlink(target)


def test_saving_onto_itself_deletes_only_its_own_verified_journal(tmp_path):
    other = tmp_path / "other.h5"
    killed_run(other, 4)  # another live run's journal in the same folder
    other_journal = (tmp_path / "other.h5.journal").read_bytes()
    path = tmp_path / "r.h5"
    killed_run(path, 2)
    set_journal_attr(path, "other.h5.journal")  # names another run's journal: its frames are not ours
    rec = load_record(path)
    assert len(rec) == 0
    rec.save(path)
    assert (tmp_path / "other.h5.journal").read_bytes() == other_journal
    assert (tmp_path / "r.h5.journal").exists()  # not named by the file any more: left alone
    assert len(load_record(other)) == 4

    user = tmp_path / "notes.txt"
    user.write_bytes(b"my notes")
    killed_run(path, 2)
    set_journal_attr(path, "notes.txt")  # a user's file that is not a journal at all
    with pytest.raises(RecordError, match="notes.txt"):
        load_record(path)
    assert user.read_bytes() == b"my notes"

    killed_run(path, 2)  # its own journal: folded in and removed
    rec = load_record(path)
    rec.save(path)
    assert not (tmp_path / "r.h5.journal").exists() and len(load_record(path)) == 2


def test_a_flipped_journal_byte_loses_at_most_one_step(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    killed_run(live / "r.h5", 50)
    data = (live / "r.h5.journal").read_bytes()
    header = len(_journal.journal_header("0" * 32))
    frame = (len(data) - header) // 50
    work = tmp_path / "work"
    work.mkdir()
    (work / "r.h5").write_bytes((live / "r.h5").read_bytes())
    positions = list(range(header + 20 * frame, header + 21 * frame + 1, max(1, frame // 9)))
    positions += [header + 3, len(data) - 5]  # inside the first and the last frame
    for pos in positions:
        damaged = bytearray(data)
        damaged[pos] ^= 0x5A
        (work / "r.h5.journal").write_bytes(bytes(damaged))
        with pytest.warns(UserWarning, match="damaged") as caught:
            rec = load_record(work / "r.h5")
        assert len(caught) == 1, pos  # one warning per load
        steps = rec.steps
        assert len(steps) >= 49 and set(steps) <= set(range(50)), pos
        series = rec.series(*KEY)
        for row, s in enumerate(steps):
            np.testing.assert_array_equal(series[row], values(s))
        np.testing.assert_array_equal(rec.losses, steps.astype(float))
        np.testing.assert_array_equal(rec.step_sample_ids()[:, 0], steps)
        np.testing.assert_array_equal(rec.floor(*KEY), 0.5)


def test_a_flipped_bit_in_an_hdf5_dataset_is_reported(tmp_path):
    path = tmp_path / "r.h5"
    killed_run(path, 40)
    load_record(path).save(path)
    with h5py.File(path, "r") as f:
        ds = f["spectra/l/G/all/sum"]
        assert ds.fletcher32
        offset = ds.id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 17] ^= 0x04
    path.write_bytes(bytes(data))
    rec = load_record(path)  # the header is fine
    np.testing.assert_array_equal(rec.steps, np.arange(40))
    with pytest.raises(RecordError, match=r"r\.h5.*'spectra/l/G/all/sum'"):
        rec.series(*KEY)
