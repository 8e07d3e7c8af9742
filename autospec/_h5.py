"""On-disk side of :mod:`autospec.record`: the HDF5 and npz layouts (the journal is in _journal).

Private helper; the layout and the crash-safety scheme are described in the docstring of
:mod:`autospec.record`. Everything that touches HDF5/npz bytes lives here, the Record logic
(keys, padding, views) lives there.
"""
import contextlib
import json
import os
import zipfile
from collections.abc import Mapping
from urllib.parse import quote

import numpy as np

from .errors import AutoSpecError

FORMAT = "autospec-record"
FORMAT_VERSION = 2  # 2 added floors, step_samples/ and segments; version 1 files are still read


def _h5py():
    """h5py, imported on first use (so in-memory records never load it)."""
    import h5py

    return h5py


class RecordError(AutoSpecError, KeyError, ValueError):
    """Unknown layer/quantity/group/position, or a file that is not a readable record."""

    def __str__(self):  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


RecordError.__module__ = "autospec.record"


class JournalGap(Exception):
    """The journal moved on past the HDF5 file read just before it (a writer checkpointed)."""


# ----------------------------------------------------------------------------- names

def escape(name):
    """Injective map of any str to a name usable as an HDF5 link or zip path component."""
    if name == "":
        return "%"  # quote() never yields a lone '%'
    s = quote(name, safe="")
    if s in (".", ".."):
        s = s.replace(".", "%2E")
    return s


def spectrum_names(key):
    """(HDF5 dataset path, npz member name) of a spectrum key (layer, quantity, group, position).

    group None -> "all", position None -> "sum"; a group literally named "all" becomes "%61ll".
    """
    layer, quantity, group, position = key
    g = "all" if group is None else ("%61ll" if group == "all" else escape(group))
    p = "sum" if position is None else str(position)
    lay = escape(layer)
    return f"spectra/{lay}/{quantity}/{g}/{p}", f"{quantity}/{lay}/{g}/{p}"


def per_sample_name(layer):
    return "per_sample/" + escape(layer)


def extra_name(name):
    return "extra/" + escape(name)


STEP_SAMPLES = {"counts": "step_samples/counts", "group_labels": "step_samples/group_labels",
                "group_codes": "step_samples/group_codes", "ids": "step_samples/ids"}


# ----------------------------------------------------------------------------- writing

def _chunks(shape, itemsize):
    """Chunks of about 64 KiB along the step axis, whole rows (spectra) per chunk."""
    inner = tuple(max(1, int(s)) for s in shape[1:])
    row_bytes = itemsize * int(np.prod(inner))
    rows = min(4096, max(1, (1 << 16) // row_bytes), max(1, int(shape[0])))
    return (rows,) + inner


def _index(content, npz):
    """The JSON index of a file: original names of everything stored, and the dataset of each."""
    pick = 1 if npz else 0
    samples = content["step_samples"]
    return {
        "layers": list(content["layers"]),
        "spectra": [[*key, spectrum_names(key)[pick]] for key in content["spectra_keys"]],
        "floors": [[*key, column] for column, key in enumerate(content["floors"][0])] if content["floors"] else [],
        "per_sample": [[layer, per_sample_name(layer)] for layer in content["per_sample_layers"]],
        "extra": [[name, extra_name(name)] for name in content["extra_names"]],
        "sample_groups": "sample_groups" if content["sample_groups"] is not None else None,
        "step_samples": {part: STEP_SAMPLES[part] for part, data in samples.items() if data is not None},
    }


def _arrays(content):
    """(name index entry, key, array) of every array of a record's content, one at a time."""
    for key, data in content["spectra"]:
        yield "spectra_keys", key, spectrum_names(key), np.asarray(data, dtype=np.float64)
    for layer, data in content["per_sample"]:
        yield "per_sample_layers", layer, (per_sample_name(layer),) * 2, np.asarray(data, dtype=np.float64)
    for name, data in content["extras"]:
        yield "extra_names", name, (extra_name(name),) * 2, np.asarray(data, dtype=np.float64)


def write_h5(path, *, journal, segments=(), part_of="", **content):
    """Write a whole record to a new HDF5 file.

    content: run_id, metadata, layers, steps, losses, sample_groups, step_samples ({part: array or
    None}, parts as in STEP_SAMPLES), floors ((keys, (n_steps, len(keys)) matrix) or None), and
    spectra / per_sample / extras: iterables of
    (key, array) produced lazily, so that only one dataset is in memory at a time. ``journal``: file
    name of the append journal that continues this file ("" when the record is finished);
    ``segments``: [(file name, rows)] of the segment files that hold the record's later rows;
    ``part_of``: for a segment file, the name of its record file.
    Numeric datasets are chunked with HDF5's fletcher32 checksum, so a flipped bit is detected.
    """
    h5py = _h5py()
    string = h5py.string_dtype("utf-8")
    names = {"spectra_keys": [], "per_sample_layers": [], "extra_names": []}
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["run_id"] = content["run_id"]
        f.attrs["n_steps"] = len(content["steps"]) + sum(n for _, n in segments)
        f.attrs["journal"] = journal
        if part_of:
            f.attrs["part_of"] = part_of
        if segments:
            f.create_dataset("segments", data=json.dumps([[name, n] for name, n in segments]), dtype=string)
        _checked(f, "steps", np.asarray(content["steps"], dtype=np.int64))
        _checked(f, "losses", np.asarray(content["losses"], dtype=np.float64))
        for kind, key, (name, _), data in _arrays(content):
            names[kind].append(key)
            _checked(f, name, data)
        if content["floors"]:
            _checked(f, "floors", np.asarray(content["floors"][1], dtype=np.float64))
        for part, data in content["step_samples"].items():
            if data is None:
                continue
            if data.dtype.kind in "US":
                f.create_dataset(STEP_SAMPLES[part], data=np.asarray(data, dtype=object), dtype=string)
            else:
                _checked(f, STEP_SAMPLES[part], data)
        if content["sample_groups"] is not None:
            f.create_dataset("sample_groups", data=np.asarray(content["sample_groups"], dtype=object), dtype=string)
        index = _index(dict(content, **names), npz=False)
        f.create_dataset("index", data=json.dumps(index), dtype=string)
        f.create_dataset("metadata", data=json.dumps(content["metadata"]), dtype=string)


def _checked(f, name, data):
    """A resizable dataset chunked along steps, with a fletcher32 checksum per chunk."""
    f.create_dataset(name, data=data, chunks=_chunks(data.shape, data.dtype.itemsize),
                     maxshape=(None,) * data.ndim, fletcher32=True)


def write_npz(path, **content):
    """Write a whole record as a flat .npz (plain arrays only: loads with allow_pickle=False)."""
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "run_id": np.array(content["run_id"]),
        "n_steps": np.array(len(content["steps"])),
        "metadata": np.array(json.dumps(content["metadata"])),
        "steps": np.asarray(content["steps"], dtype=np.int64),
        "losses": np.asarray(content["losses"], dtype=np.float64),
    }
    names = {"spectra_keys": [], "per_sample_layers": [], "extra_names": []}
    for kind, key, (_, name), data in _arrays(content):
        names[kind].append(key)
        arrays[name] = data
    if content["floors"]:
        arrays["floors"] = np.asarray(content["floors"][1], dtype=np.float64)
    for part, data in content["step_samples"].items():
        if data is not None:
            arrays[STEP_SAMPLES[part]] = np.asarray(data, dtype=str) if data.dtype.kind in "US" else data
    if content["sample_groups"] is not None:
        arrays["sample_groups"] = np.asarray(content["sample_groups"], dtype=str)
    arrays["index"] = np.array(json.dumps(_index(dict(content, **names), npz=True)))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def estimate_record_bytes(n_steps, spectra_lengths, per_sample_shapes=None, *, samples_per_step=0, n_extras=1):
    """Expected size in bytes of the finished record file of a run, to print before it starts.

    n_steps: steps that will be recorded. spectra_lengths: the length k of every recorded
    spectrum, one per key (layer x quantity x group x position), as a list or a dict {key: k}.
    per_sample_shapes: {layer: (N, k_s)} of per-sample values, or None. samples_per_step: N when
    per-step sample labels and ids are recorded (mini-batches), else 0. n_extras: extra scalars
    per step (the Introspector records one). Floors are counted for every key. While the run
    goes, the files beside it hold about ``autospec.record.SEGMENT_BYTES`` more, plus the journal of the steps
    since the last segment.
    """
    if isinstance(spectra_lengths, Mapping):
        spectra_lengths = list(spectra_lengths.values())
    if isinstance(per_sample_shapes, Mapping):
        per_sample_shapes = list(per_sample_shapes.values())
    lengths = [int(k) for k in spectra_lengths]
    per_step = [8] * (4 + int(n_extras))  # steps, losses, sample counts, extras (+ metadata/index below)
    per_step += [8 * k for k in lengths] + [8 * len(lengths)]  # spectra, and their floors in one matrix
    per_step += [8 * int(n) * int(k) for n, k in (per_sample_shapes or [])]
    if samples_per_step:
        per_step += [4 * int(samples_per_step), 8 * int(samples_per_step)]  # label codes, sample ids
    n = int(n_steps)
    dataset_overhead = 6 << 10  # HDF5 object header, chunk index, checksums: measured about 4-6 KiB
    chunk = 1 << 16  # a partly filled last chunk is stored whole: on average half a chunk is padding
    total = sum(n * b + dataset_overhead + (chunk // 2 if n * b > chunk else 0) for b in per_step)
    return int(total + 2 * dataset_overhead + 100 * len(lengths))  # + metadata, index


# ----------------------------------------------------------------------------- reading

def _damaged(path, what):
    return RecordError(f"{path}: {what}")


def _check_header(path, fmt, version):
    if fmt != FORMAT:
        raise _damaged(path, f"not an autospec record (its 'format' marker is {fmt!r}, expected {FORMAT!r})")
    try:
        version = int(version)
    except (TypeError, ValueError):
        raise _damaged(path, f"damaged record: format_version {version!r} is not an integer") from None
    if version > FORMAT_VERSION:
        raise _damaged(path, f"written by a newer autospec (record format version {version}, this autospec "
                             f"reads versions up to {FORMAT_VERSION}); upgrade autospec to read it")
    if version < 1:
        raise _damaged(path, f"damaged record: format_version {version} is not valid")


def _as_str(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    return value if isinstance(value, str) else str(value)


def open_h5(path):
    """Open an HDF5 file read-only, turning HDF5's errors into RecordError naming the file."""
    try:
        return _h5py().File(path, "r", locking=False)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _damaged(path, f"cannot be read as an HDF5 file, so it is not a record or it is "
                             f"damaged/truncated ({exc})") from None


class H5Source:
    """Lazy rows ``[0, n)`` of an HDF5 record: each read opens the file, reads one dataset, closes it.

    No handle is kept between calls, so any number of records can be open, and a writer can
    atomically replace the file (checkpoint/close) while a reader holds this object.
    """

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self._held = None  # an open file while held_open() is active
        with open_h5(self.path) as f:
            try:
                attrs = f.attrs
                if "format" not in attrs:
                    raise _damaged(self.path, "an HDF5 file but not an autospec record (no 'format' attribute)")
                _check_header(self.path, _as_str(attrs["format"]), attrs.get("format_version"))
                self.run_id = _as_str(attrs["run_id"])
                self.journal = _as_str(attrs.get("journal", ""))
                self.segments = [(str(name), int(n)) for name, n in json.loads(f["segments"].asstr()[()])] \
                    if "segments" in f else []
                self.n = int(attrs["n_steps"]) - sum(n for _, n in self.segments)  # rows held by this file
                if self.n < 0 or any(n <= 0 for _, n in self.segments):
                    raise ValueError("its segment list does not match its number of steps")
                self.index = json.loads(f["index"].asstr()[()])
                self.metadata = json.loads(f["metadata"].asstr()[()])
            except RecordError:
                raise
            except (KeyError, ValueError, TypeError, OSError) as exc:
                raise _damaged(self.path, f"damaged record header ({type(exc).__name__}: {exc})") from None

    def read(self, name, rows=True, start=0, count=None):
        """Dataset ``name`` (rows [start, start + count), default its n rows, when ``rows``), as a NumPy array."""
        count = self.n if count is None else count
        held = self._held
        with contextlib.nullcontext(held) if held is not None else open_h5(self.path) as f:
            try:
                if held is None and _as_str(f.attrs.get("run_id", "")) != self.run_id:
                    raise _replaced(self.path)
                ds = f[name]
                if ds.dtype.kind == "O":
                    return np.asarray(ds.asstr()[()], dtype=str)
                if not rows:
                    return ds[()]
                if ds.shape[0] < start + count:
                    raise _damaged(self.path, f"damaged record: dataset {name!r} has {ds.shape[0]} rows, "
                                              f"the record has {start + count} steps")
                return ds[start: start + count]
            except RecordError:
                raise
            except KeyError:
                raise _damaged(self.path, f"damaged record: dataset {name!r} named in its index is missing") from None
            except (OSError, ValueError, TypeError) as exc:
                raise _damaged(self.path, f"damaged record: cannot read {name!r} ({exc})") from None

    @contextlib.contextmanager
    def held_open(self):
        """Keep the file open for the reads inside the block (one open for many datasets, e.g.
        while merging a record); reads outside it open and close the file each time."""
        self._held = open_h5(self.path)
        try:
            if _as_str(self._held.attrs.get("run_id", "")) != self.run_id:
                raise _replaced(self.path)
            yield
        finally:
            held, self._held = self._held, None
            held.close()


class SegmentSource(H5Source):
    """Rows ``[first_row, first_row + n)`` of a record, kept in a segment file beside it.

    Once the writer finished the record (merging its segments into the record file and removing
    them), the same rows are read from the finished record file instead, so a loaded record stays
    a readable snapshot.
    """

    def __init__(self, path, record_path, run_id, n, first_row):
        super().__init__(path)
        if self.run_id != run_id or self.n != n or self.segments:
            raise _damaged(record_path, f"damaged or foreign record (its segment {os.path.basename(path)!r} "
                                        f"belongs to another run or does not hold the {n} steps listed)")
        self.record_path, self.first_row = record_path, first_row

    def read(self, name, rows=True, start=0, count=None):
        try:
            return super().read(name, rows, start, count)
        except FileNotFoundError:
            finished = H5Source(self.record_path)
            if finished.run_id != self.run_id or finished.n < self.first_row + self.n:
                raise _replaced(self.record_path) from None
            return finished.read(name, rows, self.first_row + start, self.n if count is None else count)


def _replaced(path):
    return _damaged(path, "the file was replaced by another run since it was loaded; load it again")


def _open_npz(path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _damaged(path, f"cannot be read as an .npz file ({exc})") from None


class NpzSource:
    """Lazy rows of a record exported with ``Record.to_npz`` (each read opens the archive)."""

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.journal = ""
        self.segments = []
        with _open_npz(self.path) as z:
            try:
                if "format" not in z.files:
                    raise _damaged(self.path, "an .npz file but not an autospec record (no 'format' entry)")
                _check_header(self.path, _as_str(z["format"]), z["format_version"][()])
                self.run_id = _as_str(z["run_id"])
                self.n = int(z["n_steps"])
                self.index = json.loads(_as_str(z["index"]))
                self.metadata = json.loads(_as_str(z["metadata"]))
            except RecordError:
                raise
            except (KeyError, ValueError, TypeError, OSError, zipfile.BadZipFile) as exc:
                raise _damaged(self.path, f"damaged record header ({type(exc).__name__}: {exc})") from None

    def read(self, name, rows=True):
        with _open_npz(self.path) as z:
            try:
                data = z[name]
            except KeyError:
                raise _damaged(self.path, f"damaged record: entry {name!r} named in its index is missing") from None
            except (OSError, ValueError, zipfile.BadZipFile) as exc:
                raise _damaged(self.path, f"damaged record: cannot read {name!r} ({exc})") from None
        if not rows:
            return data
        if data.ndim == 0 or data.shape[0] < self.n:
            raise _damaged(self.path, f"damaged record: entry {name!r} has shape {data.shape}, "
                                      f"the record has {self.n} steps")
        return data[: self.n]


