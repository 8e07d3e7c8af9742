"""Records of singular-value spectra over training: append per step, store as HDF5, load lazily.

A :class:`Record` holds, for every training step taken, spectra keyed by
``(layer, quantity, group, position)`` (quantity "G", "A" or "D"; group None = whole batch or a
str label; position None = summed over tied positions, or an int position), plus the loss,
named extra scalars and optional per-sample values. ``series(layer, quantity, group, position)``
gives an ``(n_steps, k)`` float64 array, NaN where a step did not record that key (a key first
seen at step 5 has NaN rows before it) and NaN-padded to the longest spectrum of the key.

HDF5 layout (format version 1; all names below are link names, ``<x>`` percent-escaped so that
any str is allowed, e.g. "/" -> "%2F", and a group literally named "all" -> "%61ll")::

    /  attrs: format="autospec-record", format_version=1, run_id (hex str), n_steps (int),
              journal (file name of the append journal, "" once the record is finished)
    /steps                                   int64 (n_steps,)
    /losses                                  float64 (n_steps,), NaN where not given
    /extra/<name>                            float64 (n_steps,)
    /spectra/<layer>/<Q>/<group|all>/<p|sum> float64 (n_steps, k), NaN-padded, chunked along steps,
                                             resizable
    /per_sample/<layer>                      float64 (n_steps, N, k_s), NaN-padded
    /sample_groups                           utf-8 str (N,)   (only when set)
    /metadata                                utf-8 JSON str
    /index                                   utf-8 JSON str: the original names of every dataset
                                             above and the layer order (so nothing is decoded
                                             from link names)

Crash safety (file-backed records, ``Record(path=...)``). An HDF5 file modified in place is not
safe against SIGKILL: a process killed while HDF5 flushes its metadata can leave the whole file
unreadable. So the HDF5 file is never modified in place. It is only ever *replaced* atomically
(written to a temporary file beside it, fsync'ed, renamed over it), and steps go to an
append-only journal ``<file>.journal`` beside it: each ``append`` encodes the step as one
checksummed frame and hands it to the OS with ``write()`` before returning (``fsync=True`` also
forces it to the disk, for power loss; a process kill never loses what ``write()`` returned).
``Record(path)`` first writes an HDF5 file with no steps that names the journal;
``checkpoint()`` and ``close()`` rewrite the HDF5 file with every step and then empty (close:
delete) the journal. ``load_record`` reads the HDF5 file plus the journal frames that continue
it, so a run killed at any moment (or never closed) loads with every completed step: a kill
mid-``write`` leaves at most an incomplete last frame, which is ignored; a kill mid-rewrite
leaves the previous HDF5 file (plus a stray ``.<file>.<hex>.tmp``) and the full journal. Loading
never modifies files; ``load_record(p).save(p)`` consolidates a killed run into one finished file.

Laziness and file handles. ``load_record`` reads only the small header (index, metadata); each
``series()`` / ``per_sample()`` / ``steps`` call opens the file, reads one dataset and closes it
again (steps/losses/extras/sample groups are cached after the first read). No handle is held
between calls, so any number of records can be open at once, and writers can replace the file
while readers hold it (no Windows-style sharing violations, no HDF5 file locks). A loaded record
is a snapshot: steps appended by a live writer after ``load_record`` are not seen.

The writer keeps its steps since the last checkpoint in memory (reads on it are served from
there); call ``checkpoint()`` now and then on very long runs to bound that memory.
"""
import json
import os
import sys
import uuid
from collections.abc import Mapping

import numpy as np

from minigrad.backend import to_numpy

from . import _h5
from ._h5 import RecordError

__all__ = ["Record", "RecordError", "load_record", "from_npz"]

QUANTITIES = ("G", "A", "D")


# ----------------------------------------------------------------------------- input checks

def _host(x):
    """A NumPy array from NumPy/CuPy arrays, minigrad Tensors, scalars (CuPy is never imported)."""
    if type(x) is np.ndarray:
        return x
    if hasattr(x, "__cuda_array_interface__") and callable(getattr(x, "get", None)):
        return x.get()  # a CuPy device array, even when minigrad did not import CuPy itself
    return to_numpy(x)


def _batch_to_host(values):
    """Copy many CuPy arrays to the host in one transfer (one sync instead of one per array)."""
    cupy = sys.modules.get("cupy")  # loaded whenever CuPy arrays exist; never imported here
    if cupy is None:
        return values
    device = [i for i, v in enumerate(values) if isinstance(v, cupy.ndarray)]
    if len(device) < 2:
        return values
    f64 = cupy.dtype(np.float64)
    parts = [values[i] for i in device]
    try:
        parts = [p if p.ndim == 1 and p.dtype == f64 else p.reshape(-1).astype(f64, copy=False) for p in parts]
        flat = cupy.concatenate(parts).get()
    except (TypeError, ValueError):
        return values  # odd dtypes: the per-array path reports what is wrong
    values = list(values)
    at = 0
    for i in device:
        shape = values[i].shape
        size = values[i].size
        values[i] = flat[at: at + size] if len(shape) == 1 else flat[at: at + size].reshape(shape)
        at += size
    return values


def _floats(x, what):
    try:
        return np.asarray(_host(x), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a real array or number, got {type(x).__name__} ({exc})") from None


def _scalar(x, what):
    if x is None:
        return np.nan
    a = _floats(x, what)
    if a.size != 1:
        raise ValueError(f"{what} must be a single number, got an array of shape {a.shape}")
    return float(a.reshape(()))


def _name(x, what):
    if not isinstance(x, str):
        raise TypeError(f"{what} must be a str, got {type(x).__name__} ({x!r})")
    return str(x)


def _group(group):
    if group is None:
        return None
    if isinstance(group, str):
        return str(group)
    if isinstance(group, (int, np.integer)) and not isinstance(group, (bool, np.bool_)):
        return str(int(group))
    raise TypeError(f"group must be None (whole batch) or a str label, got {type(group).__name__} ({group!r})")


def _position(position):
    if position is None:
        return None
    if isinstance(position, (int, np.integer)) and not isinstance(position, (bool, np.bool_)):
        if position < 0:
            raise ValueError(f"position must be a tied position >= 0 (or None for the sum), got {position}")
        return int(position)
    raise TypeError(f"position must be None (sum over positions) or an int, got {type(position).__name__} "
                    f"({position!r})")


def _quantity(quantity):
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {list(QUANTITIES)}, got {quantity!r}")
    return str(quantity)


def _normalize_key(key):
    if not isinstance(key, tuple) or len(key) != 4:
        raise TypeError(f"spectra keys must be tuples (layer, quantity, group, position), got {key!r}")
    layer, quantity, group, position = key
    layer = _name(layer, "layer name")
    if not layer:
        raise ValueError("layer name must not be empty")
    return (layer, _quantity(quantity), _group(group), _position(position))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"metadata must be JSON-serializable, but holds a {type(obj).__name__} ({obj!r})")


def _as_metadata(metadata):
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    return json.loads(json.dumps(dict(metadata), default=_json_default))


def _labels(labels):
    arr = np.asarray(_host(labels))
    if arr.ndim != 1:
        raise ValueError(f"sample group labels must be a 1-D array (one label per sample), got shape {arr.shape}")
    return arr.astype(str)


def _choices(values):
    return ", ".join("None" if v is None else repr(v) for v in values) or "(none recorded)"


# ----------------------------------------------------------------------------- in-memory rows

class _Rows:
    """Growable (rows, *inner) buffer, NaN where nothing was put; inner sizes grow on demand."""

    __slots__ = ("buf",)

    def __init__(self, inner_ndim, dtype=np.float64, fill=np.nan):
        self.buf = np.full((16,) + (0,) * inner_ndim, fill, dtype=dtype)

    def put(self, row, a):
        buf = self.buf
        if row >= buf.shape[0] or any(s > b for s, b in zip(a.shape, buf.shape[1:])):
            shape = (max(row + 1, 2 * buf.shape[0]),) + tuple(max(s, b) for s, b in zip(a.shape, buf.shape[1:]))
            fill = 0 if buf.dtype.kind == "i" else np.nan
            grown = np.full(shape, fill, dtype=buf.dtype)
            grown[(slice(0, buf.shape[0]),) + tuple(slice(0, b) for b in buf.shape[1:])] = buf
            self.buf = buf = grown
        if a.ndim == 0:
            buf[row] = a
        elif a.ndim == 1:
            buf[row, : a.shape[0]] = a
        else:
            buf[(row,) + tuple(slice(0, s) for s in a.shape)] = a

    def take(self, n):
        buf = self.buf
        if buf.shape[0] >= n:
            return buf[:n].copy()
        out = np.full((n,) + buf.shape[1:], np.nan)
        out[: buf.shape[0]] = buf
        return out


def _stack(top, bottom, n_top, n_bottom, inner_ndim, dtype=np.float64):
    """Rows of ``top`` (n_top, ...) over rows of ``bottom`` (n_bottom, ...), NaN-padded; None = all NaN."""
    if n_bottom == 0 and top is not None:
        return top
    if n_top == 0 and bottom is not None:
        return bottom
    parts = [p for p in (top, bottom) if p is not None]
    inner = tuple(max([p.shape[1 + d] for p in parts] + [0]) for d in range(inner_ndim))
    out = np.full((n_top + n_bottom,) + inner, np.nan if np.dtype(dtype).kind == "f" else 0, dtype=dtype)
    if top is not None:
        out[(slice(0, n_top),) + tuple(slice(0, s) for s in top.shape[1:])] = top
    if bottom is not None:
        out[(slice(n_top, n_top + n_bottom),) + tuple(slice(0, s) for s in bottom.shape[1:])] = bottom
    return out


class _Tail:
    """Steps held in memory: everything of an in-memory record, the unconsolidated steps of a file."""

    def __init__(self):
        self.n = 0
        self.steps = _Rows(0, np.int64, 0)
        self.losses = _Rows(0)
        self.extras = {}
        self.spectra = {}
        self.per_sample = {}

    def add(self, step, loss, extra, spectra, per_sample):
        row = self.n
        self.steps.put(row, np.int64(step))
        self.losses.put(row, np.float64(loss))
        for name, value in extra.items():
            col = self.extras.get(name) or self.extras.setdefault(name, _Rows(0))
            col.put(row, np.float64(value))
        for key, arr in spectra:
            rows = self.spectra.get(key) or self.spectra.setdefault(key, _Rows(1))
            rows.put(row, arr)
        for layer, arr in per_sample:
            rows = self.per_sample.get(layer) or self.per_sample.setdefault(layer, _Rows(2))
            rows.put(row, arr)
        self.n = row + 1


class _Catalog:
    """Ordered names present in a record (union of the file part and the in-memory part)."""

    def __init__(self):
        self.keys = {}
        self.layers = {}
        self.tree = {}  # layer -> quantity -> group -> {positions}
        self.per_sample = {}
        self.extras = {}
        self.groups = {}

    def add_key(self, key):
        if key in self.keys:
            return
        layer, quantity, group, position = key
        self.keys[key] = None
        self.layers.setdefault(layer, None)
        self.tree.setdefault(layer, {}).setdefault(quantity, {}).setdefault(group, set()).add(position)
        if group is not None:
            self.groups.setdefault(group, None)

    def add_per_sample(self, layer):
        if layer not in self.per_sample:
            self.per_sample[layer] = None
            self.layers.setdefault(layer, None)


# ----------------------------------------------------------------------------- the record

class Record:
    """Per-step spectra of a training run (see the module docstring for storage and crash safety).

    ``Record(metadata={...})`` keeps everything in memory; ``Record(path="run.h5", metadata={...})``
    is file-backed: every ``append`` is on disk when it returns and a killed run loses nothing.
    ``overwrite=False`` refuses to replace an existing file; ``fsync=True`` also syncs every step
    to the disk (survives power loss, costs a disk sync per step).
    """

    def __init__(self, path=None, metadata=None, *, overwrite=True, fsync=False):
        if isinstance(path, Mapping):
            raise TypeError("Record(path=None, metadata=None): the first argument is the file path; "
                            "pass the metadata dict as metadata=...")
        self._init_empty(_as_metadata(metadata))
        self._writable = True
        if path is not None:
            self._start_file(path, overwrite, fsync)

    def _init_empty(self, metadata):
        self._metadata = metadata
        self._path = None
        self._run_id = None
        self._journal = None
        self._writable = False
        self._sample_groups = None
        self._last_step = None
        self._key_cache = {}
        self._set_base(None)

    def _set_base(self, base):
        """Make ``base`` (a lazy file source, or None) the first rows; the memory part starts empty."""
        self._base = base
        self._n_base = 0 if base is None else base.n
        self._tail = _Tail()
        self._catalog = cat = _Catalog()
        self._base_spectra, self._base_per_sample, self._base_extras = {}, {}, {}
        self._base_cache = {}
        if base is None:
            return
        index = base.index
        try:
            for layer in index["layers"]:
                cat.layers.setdefault(layer, None)
            for layer, quantity, group, position, name in index["spectra"]:
                key = (layer, quantity, group, position)
                self._base_spectra[key] = name
                cat.add_key(key)
            for layer, name in index["per_sample"]:
                self._base_per_sample[layer] = name
                cat.add_per_sample(layer)
            for extra, name in index["extra"]:
                self._base_extras[extra] = name
                cat.extras.setdefault(extra, None)
            self._base_groups_name = index.get("sample_groups")
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordError(f"{base.path}: damaged record index ({type(exc).__name__}: {exc})") from None
        if self._sample_groups is None and self._base_groups_name:
            self._sample_groups = _FROM_BASE

    # -- file-backed writing -------------------------------------------------------------

    def _start_file(self, path, overwrite, fsync):
        try:
            path = os.path.abspath(os.fspath(path))
        except TypeError:
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
        if path.lower().endswith(".npz"):
            raise ValueError(f"file-backed records are HDF5 files; {path!r} ends in .npz "
                             f"(use an .h5 path, and Record.to_npz for an npz export)")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} exists and overwrite=False")
        self._run_id = uuid.uuid4().hex
        journal_name = os.path.basename(path) + _h5.JOURNAL_SUFFIX
        # 1. an HDF5 file with no steps that names the journal, 2. a fresh journal for this run
        _h5.atomic_write(path, lambda tmp: self._write_h5(tmp, self._run_id, journal_name))
        self._journal = _h5.JournalWriter(os.path.join(os.path.dirname(path), journal_name), self._run_id, fsync)
        self._path = path
        _h5.remove_stale_temporaries(path)

    def _consolidate(self, final):
        """Rewrite the HDF5 file with every step, then empty (final: delete) the journal."""
        journal_name = "" if final else os.path.basename(self._journal.path)
        _h5.atomic_write(self._path, lambda tmp: self._write_h5(tmp, self._run_id, journal_name))
        # from here on the file holds every step and the journal frames are redundant
        if final:
            self._journal.close(remove=True)
            self._journal = None
        else:
            self._journal.reset()
        self._set_base(_h5.H5Source(self._path))

    def checkpoint(self):
        """Move the steps held in memory into the HDF5 file (file-backed records being written)."""
        if self._journal is None:
            raise RecordError("checkpoint() needs a file-backed record that is still being written")
        self._consolidate(final=False)

    def close(self):
        """Finish the record: a file-backed one becomes a single HDF5 file. Afterwards it is read-only."""
        if self._journal is not None:
            self._consolidate(final=True)
        self._writable = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _check_writable(self):
        if not self._writable:
            where = f" ({self._path})" if self._path else ""
            raise RecordError(f"this record{where} is read-only: it was loaded from a file or closed")

    def append(self, step, spectra, loss=None, per_sample=None, extra=None):
        """Add one training step.

        step: int, larger than the previous step. spectra: {(layer, quantity, group, position):
        1-D array}. loss: number or None. per_sample: {layer: (N, k_s) array; (N,) means k_s = 1}.
        extra: {name: number}. Arrays may be NumPy or CuPy; they are stored as float64.
        """
        self._check_writable()
        step = self._check_step(step)
        entries = self._spectra_entries(spectra)
        loss = _scalar(loss, "loss")
        extras = {}
        for name, value in (extra or {}).items():
            extras[_name(name, "extra name")] = _scalar(value, f"extra[{name!r}]")
        samples = []
        for layer, values in (per_sample or {}).items():
            arr = _floats(values, f"per_sample[{layer!r}]")
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError(f"per_sample[{layer!r}] must be an (N, k_s) array, got shape {arr.shape}")
            samples.append((_name(layer, "per_sample layer name"), arr))
        if self._journal is not None:
            self._journal.write_step(self._n_base + self._tail.n, step, loss, extras, entries, samples)
        self._add_step(step, loss, extras, entries, samples)

    def _check_step(self, step):
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"step must be an int, got {type(step).__name__} ({step!r})")
        step = int(step)
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"steps must increase: got step {step} after step {self._last_step}")
        return step

    def _spectra_entries(self, spectra):
        if spectra is None:
            return []
        if not isinstance(spectra, Mapping):
            raise TypeError(f"spectra must be a dict {{(layer, quantity, group, position): array}}, "
                            f"got {type(spectra).__name__}")
        cache = self._key_cache
        entries = []
        for raw, values in zip(spectra.keys(), _batch_to_host(list(spectra.values()))):
            try:
                key = cache.get(raw)
            except TypeError:  # unhashable: _normalize_key says what is wrong
                key = None
            if key is None:
                key = _normalize_key(raw)
                cache[raw] = key
            arr = values if type(values) is np.ndarray and values.dtype == np.float64 else _floats(
                values, f"spectrum {key}")
            if arr.ndim != 1:
                raise ValueError(f"spectrum {key} must be a 1-D array of singular values, got shape {arr.shape}")
            entries.append((key, arr))
        if len({k for k, _ in entries}) != len(entries):
            raise ValueError("spectra holds the same (layer, quantity, group, position) twice "
                             "(e.g. group 3 and group '3')")
        return entries

    def _add_step(self, step, loss, extras, entries, samples):
        cat = self._catalog
        for key, _ in entries:
            cat.add_key(key)
        for layer, _ in samples:
            cat.add_per_sample(layer)
        for name in extras:
            cat.extras.setdefault(name, None)
        self._tail.add(step, loss, extras, entries, samples)
        self._last_step = step

    def set_sample_groups(self, labels):
        """Store the group label of every sample (length N), once per record."""
        self._check_writable()
        labels = _labels(labels)
        if self._journal is not None:
            self._journal.write_sample_groups(labels)
        self._sample_groups = labels

    def update_metadata(self, update):
        """Add or replace metadata entries (JSON-serializable); journaled like a step."""
        self._check_writable()
        update = _as_metadata(update)
        if self._journal is not None:
            self._journal.write_metadata(update)
        self._metadata.update(update)

    # -- reading ---------------------------------------------------------------------------

    def _base_read(self, name, cache=False):
        if cache and name in self._base_cache:
            return self._base_cache[name]
        data = self._base.read(name)
        if cache:
            self._base_cache[name] = data
        return data

    def __len__(self):
        return self._n_base + self._tail.n

    @property
    def path(self):
        """The HDF5/npz file behind this record, or None for an in-memory one."""
        return self._path

    @property
    def layers(self):
        return list(self._catalog.layers)

    @property
    def quantities(self):
        present = {q for qs in self._catalog.tree.values() for q in qs}
        return [q for q in QUANTITIES if q in present]

    @property
    def groups(self):
        return list(self._catalog.groups)

    @property
    def extra_names(self):
        return list(self._catalog.extras)

    @property
    def per_sample_layers(self):
        return list(self._catalog.per_sample)

    @property
    def metadata(self):
        return json.loads(json.dumps(self._metadata))

    @property
    def steps(self):
        base = self._base_read("steps", cache=True).astype(np.int64) if self._n_base else None
        return _stack(base, self._tail.steps.take(self._tail.n), self._n_base, self._tail.n, 0, np.int64)

    @property
    def losses(self):
        base = self._base_read("losses", cache=True).astype(np.float64) if self._n_base else None
        return _stack(base, self._tail.losses.take(self._tail.n), self._n_base, self._tail.n, 0)

    @property
    def sample_groups(self):
        if self._sample_groups is _FROM_BASE:
            self._sample_groups = np.asarray(self._base.read(self._base_groups_name, rows=False)).astype(str)
        return None if self._sample_groups is None else self._sample_groups.copy()

    def keys(self):
        return list(self._catalog.keys)

    def positions(self, layer):
        """Tied positions recorded for ``layer`` (any quantity or group), sorted."""
        tree = self._layer_tree(layer)
        return sorted({p for qs in tree.values() for ps in qs.values() for p in ps if p is not None})

    def _layer_tree(self, layer):
        tree = self._catalog.tree.get(layer)
        if tree is None:
            raise RecordError(f"unknown layer {layer!r}: layers with spectra are "
                              f"{_choices(list(self._catalog.tree))}")
        return tree

    def extra(self, name):
        """Per-step values of the extra scalar ``name`` (NaN where not given)."""
        if name not in self._catalog.extras:
            raise RecordError(f"unknown extra {name!r}: recorded extras are {_choices(self.extra_names)}")
        base = None
        if name in self._base_extras:
            base = self._base_read(self._base_extras[name], cache=True).astype(np.float64)
        col = self._tail.extras.get(name)
        return _stack(base, None if col is None else col.take(self._tail.n), self._n_base, self._tail.n, 0)

    def series(self, layer, quantity, group=None, position=None):
        """Spectra of one key over steps: float64 (n_steps, k), NaN-padded."""
        return self._series(self._check_key(layer, quantity, group, position))

    def _check_key(self, layer, quantity, group, position):
        tree = self._layer_tree(layer)
        groups = tree.get(quantity)
        if groups is None:
            raise RecordError(f"quantity {quantity!r} is not recorded for layer {layer!r}: recorded are "
                              f"{_choices([q for q in QUANTITIES if q in tree])}")
        try:
            group = _group(group)
            position = _position(position)
        except (TypeError, ValueError) as exc:
            raise RecordError(str(exc)) from None
        positions = groups.get(group)
        if positions is None:
            order = [g for g in [None, *self._catalog.groups] if g in groups]
            raise RecordError(f"group {group!r} is not recorded for ({layer!r}, {quantity!r}): recorded groups are "
                              f"{_choices(order)} (None = whole batch)")
        if position not in positions:
            order = sorted(positions, key=lambda p: -1 if p is None else p)
            raise RecordError(f"position {position!r} is not recorded for ({layer!r}, {quantity!r}, group "
                              f"{group!r}): recorded positions are {_choices(order)} (None = sum)")
        return (layer, quantity, group, position)

    def _series(self, key):
        name = self._base_spectra.get(key)
        base = None if name is None else self._base_read(name).astype(np.float64, copy=False)
        rows = self._tail.spectra.get(key)
        tail = None if rows is None else rows.take(self._tail.n)
        return _stack(base, tail, self._n_base, self._tail.n, 1)

    def per_sample(self, layer):
        """Per-sample values of ``layer`` over steps: float64 (n_steps, N, k_s), NaN-padded."""
        if layer not in self._catalog.per_sample:
            raise RecordError(f"no per-sample values for layer {layer!r}: layers with per-sample values are "
                              f"{_choices(self.per_sample_layers)}")
        return self._per_sample(layer)

    def _per_sample(self, layer):
        name = self._base_per_sample.get(layer)
        base = None if name is None else self._base_read(name).astype(np.float64, copy=False)
        rows = self._tail.per_sample.get(layer)
        tail = None if rows is None else rows.take(self._tail.n)
        return _stack(base, tail, self._n_base, self._tail.n, 2)

    # -- export ------------------------------------------------------------------------------

    def _content(self, run_id):
        cat = self._catalog
        return dict(
            run_id=run_id, metadata=self._metadata, layers=list(cat.layers), steps=self.steps,
            losses=self.losses, sample_groups=self.sample_groups,
            spectra=((key, self._series(key)) for key in cat.keys),
            per_sample=((layer, self._per_sample(layer)) for layer in cat.per_sample),
            extras=((name, self.extra(name)) for name in cat.extras),
        )

    def _write_h5(self, tmp, run_id, journal):
        _h5.write_h5(tmp, journal=journal, **self._content(run_id))

    def save(self, path):
        """Write the record as one finished HDF5 file at ``path`` (atomically: all or nothing).

        Saving a loaded record onto its own file consolidates it (e.g. a killed run: its journal
        is folded in and removed). A file-backed record being written is finished by close().
        """
        path = os.path.abspath(os.fspath(path))
        if path.lower().endswith(".npz"):
            raise ValueError(f"save() writes HDF5; use to_npz() for {path!r}")
        own = self._path is not None and os.path.exists(path) and os.path.samefile(path, self._path)
        if own and self._journal is not None:
            raise ValueError(f"{path} is the file this record is being written to: close() (or checkpoint()) "
                             f"writes it; save() a copy elsewhere")
        run_id = uuid.uuid4().hex
        _h5.atomic_write(path, lambda tmp: self._write_h5(tmp, run_id, ""))
        if own:
            stale = getattr(self._base, "journal", "")
            if stale:
                try:
                    os.unlink(os.path.join(os.path.dirname(path), stale))
                except FileNotFoundError:
                    pass
            groups = self.sample_groups
            self._sample_groups = groups
            self._set_base(_h5.H5Source(path))
            self._run_id = run_id

    def to_npz(self, path):
        """Flat export: keys like "G/0.weight/all/sum", "steps", "losses", "extra/<name>",
        "per_sample/<layer>", "metadata" (JSON str); loads with ``np.load(path, allow_pickle=False)``."""
        _h5.atomic_write(os.fspath(path), lambda tmp: _h5.write_npz(tmp, **self._content(uuid.uuid4().hex)))

    def __repr__(self):
        where = "in memory" if self._path is None else repr(self._path)
        state = "writing" if self._writable else "read-only"
        return (f"<Record {where} ({state}): {len(self)} steps, {len(self._catalog.layers)} layers, "
                f"{len(self._catalog.keys)} spectra>")

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def _from_source(cls, source):
        rec = cls.__new__(cls)
        rec._init_empty(dict(source.metadata))
        rec._path = source.path
        rec._run_id = source.run_id
        rec._set_base(source)
        return rec

    def _replay(self, events):
        """Apply journal events that continue the file part (rows >= n_base)."""
        for event in events:
            kind = event[0]
            if kind == "groups":
                self._sample_groups = event[1]
            elif kind == "meta":
                self._metadata.update(event[1])
            else:
                _, row, step, loss, extra, spectra, per_sample = event
                expected = self._n_base + self._tail.n
                if row < expected:
                    continue  # already in the HDF5 file (a checkpoint was cut short before emptying the journal)
                if row > expected:
                    raise _h5.JournalGap()
                entries = [((k[0], k[1], k[2], k[3]), a) for k, a in spectra]
                self._add_step(step, loss, extra, entries, per_sample)


_FROM_BASE = object()  # sample groups stored in the file, read on first use


def load_record(path):
    """Open a record file (.h5 written by Record, or .npz from to_npz) lazily and read-only.

    A file-backed run that was killed (or never closed) loads with every completed step.
    Raises FileNotFoundError for a missing file and RecordError for anything that is not a
    readable record (random bytes, truncated HDF5, another HDF5 file, a newer format version).
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"no record file at {path}")
    if os.path.isdir(path):
        raise RecordError(f"{path}: is a directory, not a record file")
    with open(path, "rb") as fh:
        magic = fh.read(len(_h5.JOURNAL_MAGIC))
    if magic.startswith(b"PK\x03\x04"):
        return from_npz(path)
    if magic == _h5.JOURNAL_MAGIC:
        raise RecordError(f"{path}: is the append journal of a record; load the HDF5 file beside it")
    for _ in range(5):
        before = _identity(path)
        source = _h5.H5Source(path)
        rec = Record._from_source(source)
        if not source.journal:
            return rec
        events = _h5.read_journal(os.path.join(os.path.dirname(path), source.journal), source.run_id)
        if _identity(path) != before:
            continue  # a writer replaced the file (checkpoint/close) between our two reads: read both again
        try:
            rec._replay(events or [])
        except _h5.JournalGap:
            continue
        return rec
    raise RecordError(f"{path}: the file kept changing while it was read (a writer is checkpointing); try again")


def _identity(path):
    st = os.stat(path)
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def from_npz(path):
    """Open a record exported with ``Record.to_npz`` (lazily, read-only; never unpickles)."""
    return Record._from_source(_h5.NpzSource(path))
