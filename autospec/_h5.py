"""On-disk side of :mod:`autospec.record`: the HDF5 and npz layouts and the append journal.

Private helper; the layout and the crash-safety scheme are described in the docstring of
:mod:`autospec.record`. Everything that touches bytes on disk lives here, the Record logic
(keys, padding, views) lives there.
"""
import json
import os
import struct
import uuid
import zipfile
import zlib
from urllib.parse import quote

import numpy as np

from .errors import AutoSpecError

FORMAT = "autospec-record"
FORMAT_VERSION = 1
JOURNAL_SUFFIX = ".journal"


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


# ----------------------------------------------------------------------------- writing

def atomic_write(path, write):
    """Call ``write(tmp)`` for a temporary file beside ``path``, fsync it, then rename it onto ``path``.

    The rename is atomic: a reader (or a process killed at any moment) sees either the old
    file or the complete new one, never a half-written one.
    """
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def remove_stale_temporaries(path):
    """Delete temporaries that ``atomic_write`` left beside ``path`` when a process was killed."""
    directory, base = os.path.split(os.path.abspath(path))
    prefix = f".{base}."
    for name in os.listdir(directory):
        stem = name[len(prefix):-len(".tmp")]
        if name.startswith(prefix) and name.endswith(".tmp") and len(stem) == 8 and \
                all(c in "0123456789abcdef" for c in stem):
            try:
                os.unlink(os.path.join(directory, name))
            except OSError:
                pass


def _chunks(shape):
    """Chunks of about 64 KiB along the step axis, whole rows (spectra) per chunk."""
    inner = tuple(max(1, int(s)) for s in shape[1:])
    row_bytes = 8 * int(np.prod(inner))
    rows = min(4096, max(1, (1 << 16) // row_bytes), max(1, int(shape[0])))
    return (rows,) + inner


def _index(layers, spectra_keys, per_sample_layers, extra_names, has_groups, npz):
    pick = 1 if npz else 0
    return {
        "layers": list(layers),
        "spectra": [[*key, spectrum_names(key)[pick]] for key in spectra_keys],
        "per_sample": [[layer, per_sample_name(layer)] for layer in per_sample_layers],
        "extra": [[name, extra_name(name)] for name in extra_names],
        "sample_groups": "sample_groups" if has_groups else None,
    }


def write_h5(path, *, run_id, journal, metadata, layers, steps, losses, spectra, per_sample, extras,
             sample_groups):
    """Write a whole record to a new HDF5 file.

    spectra / per_sample / extras: iterables of (key, array) produced lazily, so that only one
    dataset is in memory at a time. ``journal``: file name of the append journal that continues
    this file ("" when the record is finished).
    """
    h5py = _h5py()
    keys, ps_layers, extra_names = [], [], []
    string = h5py.string_dtype("utf-8")
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["run_id"] = run_id
        f.attrs["n_steps"] = len(steps)
        f.attrs["journal"] = journal
        f.create_dataset("steps", data=np.asarray(steps, dtype=np.int64))
        f.create_dataset("losses", data=np.asarray(losses, dtype=np.float64))
        for key, data in spectra:
            keys.append(key)
            _chunked(f, spectrum_names(key)[0], data)
        for layer, data in per_sample:
            ps_layers.append(layer)
            _chunked(f, per_sample_name(layer), data)
        for name, data in extras:
            extra_names.append(name)
            f.create_dataset(extra_name(name), data=np.asarray(data, dtype=np.float64))
        if sample_groups is not None:
            f.create_dataset("sample_groups", data=np.asarray(sample_groups, dtype=object), dtype=string)
        index = _index(layers, keys, ps_layers, extra_names, sample_groups is not None, npz=False)
        f.create_dataset("index", data=json.dumps(index), dtype=string)
        f.create_dataset("metadata", data=json.dumps(metadata), dtype=string)


def _chunked(f, name, data):
    data = np.asarray(data, dtype=np.float64)
    f.create_dataset(name, data=data, chunks=_chunks(data.shape), maxshape=(None,) * data.ndim)


def write_npz(path, *, run_id, metadata, layers, steps, losses, spectra, per_sample, extras, sample_groups):
    """Write a whole record as a flat .npz (plain arrays only: loads with allow_pickle=False)."""
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "run_id": np.array(run_id),
        "n_steps": np.array(len(steps)),
        "metadata": np.array(json.dumps(metadata)),
        "steps": np.asarray(steps, dtype=np.int64),
        "losses": np.asarray(losses, dtype=np.float64),
    }
    keys, ps_layers, extra_names = [], [], []
    for key, data in spectra:
        keys.append(key)
        arrays[spectrum_names(key)[1]] = np.asarray(data, dtype=np.float64)
    for layer, data in per_sample:
        ps_layers.append(layer)
        arrays[per_sample_name(layer)] = np.asarray(data, dtype=np.float64)
    for name, data in extras:
        extra_names.append(name)
        arrays[extra_name(name)] = np.asarray(data, dtype=np.float64)
    if sample_groups is not None:
        arrays["sample_groups"] = np.asarray(sample_groups, dtype=str)
    index = _index(layers, keys, ps_layers, extra_names, sample_groups is not None, npz=True)
    arrays["index"] = np.array(json.dumps(index))
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


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

    kind = "HDF5"

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        with open_h5(self.path) as f:
            try:
                attrs = f.attrs
                if "format" not in attrs:
                    raise _damaged(self.path, "an HDF5 file but not an autospec record (no 'format' attribute)")
                _check_header(self.path, _as_str(attrs["format"]), attrs.get("format_version"))
                self.run_id = _as_str(attrs["run_id"])
                self.n = int(attrs["n_steps"])
                self.journal = _as_str(attrs.get("journal", ""))
                self.index = json.loads(f["index"].asstr()[()])
                self.metadata = json.loads(f["metadata"].asstr()[()])
            except RecordError:
                raise
            except (KeyError, ValueError, TypeError, OSError) as exc:
                raise _damaged(self.path, f"damaged record header ({type(exc).__name__}: {exc})") from None

    def read(self, name, rows=True):
        """Dataset ``name`` (its first n rows when ``rows``), as a NumPy array."""
        with open_h5(self.path) as f:
            try:
                if _as_str(f.attrs.get("run_id", "")) != self.run_id:
                    raise _damaged(self.path, "the file was replaced by another run since it was loaded; "
                                              "load it again")
                ds = f[name]
                if ds.dtype.kind == "O":
                    return np.asarray(ds.asstr()[()], dtype=str)
                if not rows:
                    return ds[()]
                if ds.shape[0] < self.n:
                    raise _damaged(self.path, f"damaged record: dataset {name!r} has {ds.shape[0]} rows, "
                                              f"the record has {self.n} steps")
                return ds[: self.n]
            except RecordError:
                raise
            except KeyError:
                raise _damaged(self.path, f"damaged record: dataset {name!r} named in its index is missing") from None
            except (OSError, ValueError, TypeError) as exc:
                raise _damaged(self.path, f"damaged record: cannot read {name!r} ({exc})") from None


def _open_npz(path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise _damaged(path, f"cannot be read as an .npz file ({exc})") from None


class NpzSource:
    """Lazy rows of a record exported with ``Record.to_npz`` (each read opens the archive)."""

    kind = "npz"

    def __init__(self, path):
        self.path = os.path.abspath(os.fspath(path))
        self.journal = ""
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


# ----------------------------------------------------------------------------- journal
#
# File: JOURNAL_MAGIC (16 bytes) | uint32 version | run_id (32 ascii hex) | frames...
# Frame: b"ASJF" | uint32 body length | uint32 crc32(body) | body
# Body:  uint32 header length | JSON header | little-endian float64 payload
# A frame is written with one write() of a complete buffer; a writer killed mid-write leaves a
# prefix of the file, i.e. at worst an incomplete last frame, which readers ignore.

JOURNAL_MAGIC = b"AUTOSPEC-JOURNAL"
_FRAME = struct.Struct("<4sII")
_FRAME_MAGIC = b"ASJF"
_U32 = struct.Struct("<I")
_JOURNAL_VERSION = 1


def _journal_header(run_id):
    return JOURNAL_MAGIC + _U32.pack(_JOURNAL_VERSION) + run_id.encode("ascii")


class JournalWriter:
    """Append-only journal: one frame per step, each handed to the OS before append returns."""

    def __init__(self, path, run_id, fsync=False):
        self.path = path
        self._header = _journal_header(run_id)
        self._fsync = fsync
        self._ids = {}  # spectrum key -> small int, defined in the first frame that uses it
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        self._size = 0
        self._write_all(self._header)

    def _write_all(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
            if self._fsync:
                os.fsync(self._fd)
        except BaseException:
            # never leave a torn frame in the middle of the journal: cut back to the last whole one
            try:
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass
            raise
        self._size += len(data)

    def _frame(self, head, payload=b""):
        hb = json.dumps(head, separators=(",", ":")).encode("utf-8")
        body = b"".join((_U32.pack(len(hb)), hb, payload))
        self._write_all(_FRAME.pack(_FRAME_MAGIC, len(body), zlib.crc32(body)) + body)

    def write_step(self, row, step, loss, extra, spectra, per_sample):
        """spectra: [(key, 1-D float64)], per_sample: [(layer, 2-D float64)], already validated."""
        new = {}
        defs, lengths = [], []
        for key, arr in spectra:
            kid = self._ids.get(key)
            if kid is None:
                kid = new.get(key)
                if kid is None:
                    kid = new[key] = len(self._ids) + len(new)
                    defs.append([kid, *key])
            lengths.append([kid, arr.shape[0]])
        head = {"t": "step", "i": row, "s": step, "l": loss, "x": extra, "d": defs, "k": lengths,
                "p": [[layer, a.shape[0], a.shape[1]] for layer, a in per_sample]}
        parts = [a for _, a in spectra] + [a.ravel() for _, a in per_sample]
        payload = np.concatenate(parts).astype("<f8", copy=False).tobytes() if parts else b""
        self._frame(head, payload)
        self._ids.update(new)

    def write_sample_groups(self, labels):
        self._frame({"t": "groups", "v": [str(x) for x in labels]})

    def write_metadata(self, update):
        self._frame({"t": "meta", "v": update})

    def reset(self):
        """Drop every frame (they are now in the HDF5 file); the next frames start afresh."""
        os.ftruncate(self._fd, len(self._header))
        self._size = len(self._header)
        self._ids = {}

    def close(self, remove=False):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def read_journal(path, run_id):
    """Decoded events of a journal, or None when it is missing or belongs to another run.

    Events: ("step", row, step, loss, extra, [(key, 1-D)], [(layer, 2-D)]), ("groups", labels),
    ("meta", dict). An incomplete or damaged *last* frame (a writer killed mid-write, or a write
    still in progress) is ignored; a damaged frame followed by more data raises RecordError.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    header = _journal_header(run_id)
    if len(data) < len(header):
        return None  # still being created (or killed while creating it): no frames yet
    if not data.startswith(JOURNAL_MAGIC):
        raise _damaged(path, "not an autospec record journal (bad magic bytes)")
    if data[: len(header)] != header:
        return None  # a stale journal of another run
    events, ids, pos, size = [], {}, len(header), len(data)
    while pos < size:
        if size - pos < _FRAME.size:
            break  # torn tail
        magic, blen, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + blen
        if magic != _FRAME_MAGIC:
            raise _damaged(path, f"damaged journal: no frame marker at byte {pos}")
        if end > size:
            break  # torn tail
        body = memoryview(data)[pos + _FRAME.size: end]
        if zlib.crc32(body) != crc:
            if end == size:
                break  # damaged last frame: the step was never completed
            raise _damaged(path, f"damaged journal: checksum mismatch in the frame at byte {pos}")
        events.append(_decode(path, pos, body, ids))
        pos = end
    return events


def _decode(path, pos, body, ids):
    try:
        (hlen,) = _U32.unpack_from(body, 0)
        head = json.loads(bytes(body[4: 4 + hlen]))
        kind = head["t"]
        if kind == "groups":
            return ("groups", np.asarray(head["v"], dtype=str))
        if kind == "meta":
            return ("meta", head["v"])
        payload = np.frombuffer(body, dtype="<f8", offset=4 + hlen)
        for kid, layer, quantity, group, position in head["d"]:
            ids[kid] = (layer, quantity, group, position)
        spectra, at = [], 0
        for kid, length in head["k"]:
            spectra.append((ids[kid], payload[at: at + length]))
            at += length
        per_sample = []
        for layer, n, k in head["p"]:
            per_sample.append((layer, payload[at: at + n * k].reshape(n, k)))
            at += n * k
        if at != payload.size:
            raise ValueError(f"payload holds {payload.size} values, the header describes {at}")
        loss = np.nan if head["l"] is None else float(head["l"])
        return ("step", int(head["i"]), int(head["s"]), loss, head["x"], spectra, per_sample)
    except (KeyError, ValueError, TypeError, struct.error) as exc:
        raise _damaged(path, f"damaged journal frame at byte {pos} ({type(exc).__name__}: {exc})") from None
