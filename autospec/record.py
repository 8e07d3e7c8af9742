"""Records of singular-value spectra over training: append per step, store as HDF5, load lazily.

A :class:`Record` holds, for every training step taken, spectra keyed by
``(layer, quantity, group, position)`` (quantity "G", "A" or "D"; group None = whole batch or a
str label; position None = summed over tied positions, or an int position), plus the loss,
named extra scalars, optional per-sample values, the noise floor of each spectrum, and which
samples the step saw (their group labels and dataset indices, for mini-batches).
``series(layer, quantity, group, position)`` gives an ``(n_steps, k)`` float64 array, NaN where a
step did not record that key (a key first seen at step 5 has NaN rows before it) and NaN-padded to
the longest spectrum of the key.

HDF5 layout (format version 2; version 1 files, which lack floors/ and step_samples/, still load;
all names below are link names, ``<x>`` percent-escaped so that any str is allowed, e.g.
"/" -> "%2F", and a group literally named "all" -> "%61ll")::

    /  attrs: format="autospec-record", format_version=2, run_id (hex str), n_steps (int),
              journal (file name of the append journal, "" once the record is finished)
    /steps                                   int64 (n_steps,)
    /losses                                  float64 (n_steps,), NaN where not given
    /extra/<name>                            float64 (n_steps,)
    /spectra/<layer>/<Q>/<group|all>/<p|sum> float64 (n_steps, k), NaN-padded
    /floors/<layer>/<Q>/<group|all>/<p|sum>  float64 (n_steps,): noise floor of that spectrum per
                                             step, NaN where unknown (only keys given a floor)
    /per_sample/<layer>                      float64 (n_steps, N, k_s), NaN-padded
    /step_samples/counts                     int64 (n_steps,): samples in each step, -1 unknown
    /step_samples/group_labels               utf-8 str (L,): table of the per-step labels
    /step_samples/group_codes                int32 (n_steps, N_max): index into group_labels of
                                             each sample's label, -1 pads (a step without
                                             per-step labels is all -1)
    /step_samples/ids                        int64 (n_steps, N_max): dataset index of each sample,
                                             -1 pads / unknown
    /sample_groups                           utf-8 str (N,): record-level labels (only when set)
    /metadata                                utf-8 JSON str
    /index                                   utf-8 JSON str: the original names of every dataset
                                             above and the layer order (so nothing is decoded
                                             from link names)

Every numeric dataset is chunked along steps (resizable) and carries HDF5's fletcher32 checksum,
so a flipped bit is reported as RecordError naming the dataset. The npz export (``to_npz``) holds
the same arrays under flat names (see ``to_npz``).

Crash safety (file-backed records, ``Record(path=...)``). An HDF5 file modified in place is not
safe against SIGKILL: a process killed while HDF5 flushes its metadata can leave the whole file
unreadable. So the HDF5 file is never modified in place. It is only ever *replaced* atomically
(written to a temporary file beside it, fsync'ed, renamed over it), and steps go to an
append-only journal ``<file>.journal`` beside it (format in :mod:`autospec._journal`): each
``append`` encodes the step as one checksummed, self-describing frame and hands it to the OS
with ``write()`` before returning (``fsync=True`` also forces it to the disk, for power loss; a
process kill never loses what ``write()`` returned). ``Record(path)`` first writes an HDF5 file
with no steps that names the journal; ``checkpoint()`` and ``close()`` rewrite the HDF5 file with
every step and then empty (close: delete) the journal. ``load_record`` reads the HDF5 file plus
the journal frames that continue it, so a run killed at any moment (or never closed) loads with
every completed step: a kill mid-``write`` leaves at most an incomplete last frame, which is
ignored; a kill mid-rewrite leaves the previous HDF5 file (plus a stray ``.<file>.<hex>.tmp``)
and the full journal. A damaged frame inside the journal costs only its own step (a warning
says so). Loading never modifies files; ``load_record(p).save(p)`` consolidates a killed run
into one finished file. ``Record.resume(p, through_step)`` continues a killed run.

Laziness and file handles. ``load_record`` reads only the small header (index, metadata); each
``series()`` / ``per_sample()`` / ``steps`` call opens the file, reads one dataset and closes it
again (small per-step columns are cached after the first read). No handle is held between
calls, so any number of records can be open at once, and writers can replace the file while
readers hold it (no Windows-style sharing violations, no HDF5 file locks). A loaded record is a
snapshot: steps appended by a live writer after ``load_record`` are not seen.

The writer keeps its steps since the last checkpoint in memory (reads on it are served from
there); call ``checkpoint()`` now and then on very long runs to bound that memory.
"""
import datetime
import json
import os
import stat
import uuid
import warnings
from collections.abc import Mapping

import numpy as np

from . import _h5, _journal
from . import _record_input as check
from ._h5 import RecordError
from ._journal import StepData

__all__ = ["Record", "RecordError", "load_record", "from_npz"]

QUANTITIES = check.QUANTITIES


# ----------------------------------------------------------------------------- rows

class _Rows:
    """Growable (rows, *inner) buffer, ``fill`` where nothing was put; inner sizes grow on demand."""

    __slots__ = ("buf", "fill")

    def __init__(self, inner_ndim, dtype=np.float64, fill=np.nan):
        self.fill = fill
        self.buf = np.full((16,) + (0,) * inner_ndim, fill, dtype=dtype)

    def put(self, row, a):
        buf = self.buf
        if row >= buf.shape[0] or any(s > b for s, b in zip(a.shape, buf.shape[1:])):
            shape = (max(row + 1, 2 * buf.shape[0]),) + tuple(max(s, b) for s, b in zip(a.shape, buf.shape[1:]))
            grown = np.full(shape, self.fill, dtype=buf.dtype)
            grown[(slice(0, buf.shape[0]),) + tuple(slice(0, b) for b in buf.shape[1:])] = buf
            self.buf = buf = grown
        if a.ndim == 0:
            buf[row] = a
        else:
            buf[(row,) + tuple(slice(0, s) for s in a.shape)] = a

    def take(self, n):
        buf = self.buf
        if buf.shape[0] >= n:
            return buf[:n].copy()
        out = np.full((n,) + buf.shape[1:], self.fill, dtype=buf.dtype)
        out[: buf.shape[0]] = buf
        return out


def _concat(pieces, inner_ndim, dtype=np.float64, fill=np.nan):
    """Stack (n_rows, array or None) pieces along rows, padded with ``fill``; None = all ``fill``."""
    total = sum(n for n, _ in pieces)
    present = [a for n, a in pieces if a is not None and n]
    if len(present) == 1 and present[0].shape[0] == total:
        return np.asarray(present[0], dtype=dtype)
    inner = tuple(max([a.shape[1 + d] for a in present] + [0]) for d in range(inner_ndim))
    out = np.full((total,) + inner, fill, dtype=dtype)
    at = 0
    for n, a in pieces:
        if a is not None and n:
            out[(slice(at, at + n),) + tuple(slice(0, s) for s in a.shape[1:])] = a[:n]
        at += n
    return out


def _sample_count(s):
    """Number of samples of a step: its labels, ids or per-sample rows; -1 when unknown."""
    if s.groups is not None:
        return len(s.groups)
    if s.ids is not None:
        return len(s.ids)
    return max((a.shape[0] for _, a in s.per_sample), default=-1)


class _Tail:
    """Steps held in memory: everything of an in-memory record, the unconsolidated steps of a file."""

    def __init__(self):
        self.n = 0
        self.steps = _Rows(0, np.int64, 0)
        self.losses = _Rows(0)
        self.counts = _Rows(0, np.int64, -1)
        self.extras, self.spectra, self.floors, self.per_sample = {}, {}, {}, {}
        self.label_codes = {}  # per-step label -> code (this tail's own label table)
        self.codes = None  # _Rows of label codes, once a step had labels
        self.ids = None  # _Rows of sample ids, once a step had them

    def add(self, s):
        row = self.n
        self.steps.put(row, np.int64(s.step))
        self.losses.put(row, np.float64(s.loss))
        self.counts.put(row, np.int64(_sample_count(s)))
        for name, value in s.extra.items():
            col = self.extras.get(name) or self.extras.setdefault(name, _Rows(0))
            col.put(row, np.float64(value))
        for key, arr in s.spectra:
            rows = self.spectra.get(key) or self.spectra.setdefault(key, _Rows(1))
            rows.put(row, arr)
        for key, value in s.floors.items():
            col = self.floors.get(key) or self.floors.setdefault(key, _Rows(0))
            col.put(row, np.float64(value))
        for layer, arr in s.per_sample:
            rows = self.per_sample.get(layer) or self.per_sample.setdefault(layer, _Rows(2))
            rows.put(row, arr)
        if s.groups is not None:
            table = self.label_codes
            codes = np.array([table.setdefault(label, len(table)) for label in s.groups.tolist()], dtype=np.int32)
            self.codes = self.codes or _Rows(1, np.int32, -1)
            self.codes.put(row, codes)
        if s.ids is not None:
            self.ids = self.ids or _Rows(1, np.int64, -1)
            self.ids.put(row, s.ids)
        self.n = row + 1


class _Catalog:
    """Ordered names present in a record (union of its stored parts and the in-memory part)."""

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

    def add_step(self, s):
        for key, _ in s.spectra:
            self.add_key(key)
        for layer, _ in s.per_sample:
            self.add_per_sample(layer)
        for name in s.extra:
            self.extras.setdefault(name, None)


class _Part:
    """Rows ``[0, n)`` stored in one file, with the dataset name of everything its index lists."""

    def __init__(self, source):
        self.source = source
        self.n = source.n
        index = source.index
        try:
            self.layers = list(index["layers"])
            self.spectra = {(e[0], e[1], e[2], e[3]): e[4] for e in index["spectra"]}
            self.floors = {(e[0], e[1], e[2], e[3]): e[4] for e in index.get("floors", [])}
            self.per_sample = {layer: name for layer, name in index["per_sample"]}
            self.extras = {extra: name for extra, name in index["extra"]}
            self.sample_groups = index.get("sample_groups")
            self.step_samples = dict(index.get("step_samples") or {})
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise RecordError(f"{source.path}: damaged record index ({type(exc).__name__}: {exc})") from None
        self._cache = {}

    def read(self, name, cache=False, rows=True):
        if name is None or self.n == 0:
            return None
        if cache and name in self._cache:
            return self._cache[name]
        data = self.source.read(name, rows=rows)
        if cache:
            self._cache[name] = data
        return data


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
        self._init_empty(check.as_metadata(metadata))
        self._writable = True
        if path is not None:
            self._start_file(path, overwrite, fsync)

    def _init_empty(self, metadata):
        self._metadata = metadata
        self._path = None
        self._run_id = None
        self._journal = None
        self._writable = False
        self._sample_groups = None  # record-level labels: None, an array, or the _Part holding them
        self._last_step = None
        self._key_cache = {}
        self._journal_file = None  # the journal a loaded record was read with (verified to be its own)
        self._loaded_run_id = None
        self.resumed_backup = None
        self._set_parts([])

    def _set_parts(self, parts):
        """Make the stored ``parts`` (lazy file rows) the first rows; the memory part starts empty."""
        self._parts = list(parts)
        self._tail = _Tail()
        self._catalog = cat = _Catalog()
        for part in parts:
            for layer in part.layers:
                cat.layers.setdefault(layer, None)
            for key in part.spectra:
                cat.add_key(key)
            for layer in part.per_sample:
                cat.add_per_sample(layer)
            for extra in part.extras:
                cat.extras.setdefault(extra, None)
            if part.sample_groups and self._sample_groups is None:
                self._sample_groups = part

    # -- file-backed writing -------------------------------------------------------------

    def _start_file(self, path, overwrite, fsync, keep=None):
        """Become the writer of ``path``: write an HDF5 file holding the first ``keep`` rows of this
        record (none for a new record) that names a fresh journal, then open that journal."""
        try:
            path = os.path.abspath(os.fspath(path))
        except TypeError:
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
        if path.lower().endswith(".npz"):
            raise ValueError(f"file-backed records are HDF5 files; {path!r} ends in .npz "
                             f"(use an .h5 path, and Record.to_npz for an npz export)")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} exists and overwrite=False")
        run_id = uuid.uuid4().hex
        journal_name = os.path.basename(path) + _journal.JOURNAL_SUFFIX
        # 1. an HDF5 file that names the journal, 2. a fresh journal for this run
        content = self._content(run_id, keep)
        _h5.atomic_write(path, lambda tmp: _h5.write_h5(tmp, journal=journal_name, **content))
        self._last_step = int(content["steps"][-1]) if len(content["steps"]) else None
        try:
            self._journal = _journal.JournalWriter(os.path.join(os.path.dirname(path), journal_name), run_id, fsync)
        except _journal.JournalDamage as exc:
            raise RecordError(str(exc)) from None
        self._path, self._run_id = path, run_id
        self._sample_groups = self._record_labels()
        self._set_parts([_Part(_h5.H5Source(path))])
        _h5.remove_stale_temporaries(path)

    def _consolidate(self, final):
        """Rewrite the HDF5 file with every step, then empty (final: delete) the journal."""
        journal_name = "" if final else os.path.basename(self._journal.path)
        content = self._content(self._run_id)
        _h5.atomic_write(self._path, lambda tmp: _h5.write_h5(tmp, journal=journal_name, **content))
        # from here on the file holds every step and the journal frames are redundant
        if final:
            self._journal.close(remove=True)
            self._journal = None
        else:
            self._journal.reset()
        self._sample_groups = self._record_labels()
        self._set_parts([_Part(_h5.H5Source(self._path))])

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

    @classmethod
    def resume(cls, path, through_step, *, fsync=False):
        """Continue writing the record file at ``path`` after its last kept step.

        Keeps every row with step <= ``through_step`` (e.g. the step of the last training
        checkpoint) and drops later ones; before dropping anything, the whole old record (file,
        journal and all) is saved into a backup beside it, ``<name>.bak-<YYYYmmdd-HHMMSS>[-n]``,
        never overwriting a file; ``rec.resumed_backup`` is its path, or None when nothing was
        dropped. Returns a writable file-backed Record. Raises FileNotFoundError for a missing
        file and RecordError for a file that is not an HDF5 record.
        """
        if isinstance(through_step, (bool, np.bool_)) or not isinstance(through_step, (int, np.integer)):
            raise TypeError(f"through_step must be an int, got {type(through_step).__name__} ({through_step!r})")
        old = load_record(path)
        if old._path.lower().endswith(".npz"):
            raise RecordError(f"{old._path}: an npz export cannot be resumed; resume the HDF5 record")
        keep = old.n_steps_through(through_step)
        backup = None
        if keep < len(old):
            backup = old._save_backup()
        old_journal = old._journal_file  # verified to be this run's journal when it was loaded
        old._writable = True
        old._start_file(old._path, True, fsync, keep=keep)
        if old_journal and old_journal != old._journal.path:
            _remove_if_own_journal(old_journal, old._loaded_run_id)
        old.resumed_backup = backup
        return old

    def _save_backup(self):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{self._path}.bak-{stamp}"
        content = self._content(uuid.uuid4().hex)
        for n in range(1, 10000):
            candidate = base if n == 1 else f"{base}-{n}"
            if os.path.lexists(candidate):
                continue
            try:
                _h5.atomic_write(candidate, lambda tmp: _h5.write_h5(tmp, journal="", **content), replace=False)
            except FileExistsError:
                continue
            return candidate
        raise RecordError(f"{base}: no free backup name")

    def _check_writable(self):
        if not self._writable:
            where = f" ({self._path})" if self._path else ""
            raise RecordError(f"this record{where} is read-only: it was loaded from a file or closed")

    def append(self, step, spectra, loss=None, per_sample=None, extra=None, *, floors=None,
               sample_groups=None, sample_ids=None):
        """Add one training step.

        step: int, larger than the previous step. spectra: {(layer, quantity, group, position):
        1-D array}. loss: number or None. per_sample: {layer: (N, k_s) array; (N,) means k_s = 1}.
        extra: {name: number}. Arrays may be NumPy or CuPy; they are stored as float64.
        floors: {key of spectra: number}, the noise floor of those spectra at this step.
        sample_groups: the group label of each of this step's N samples (mini-batches: per step).
        sample_ids: the dataset index (int >= 0) of each of this step's N samples.
        """
        self._check_writable()
        step = self._check_step(step)
        entries = self._spectra_entries(spectra)
        floor_values = self._floor_entries(floors, entries)
        loss = check.scalar(loss, "loss")
        extras = {}
        for name, value in (extra or {}).items():
            extras[check.check_name(name, "extra name")] = check.scalar(value, f"extra[{name!r}]")
        samples = []
        for layer, values in (per_sample or {}).items():
            arr = check.floats(values, f"per_sample[{layer!r}]")
            if arr.ndim == 1:
                arr = arr[:, None]
            if arr.ndim != 2:
                raise ValueError(f"per_sample[{layer!r}] must be an (N, k_s) array, got shape {arr.shape}")
            samples.append((check.check_name(layer, "per_sample layer name"), arr))
        labels = None if sample_groups is None else check.check_labels(sample_groups)
        if labels is not None and (labels == "").any():
            raise ValueError('sample_groups labels must not be empty strings ("" marks padding)')
        ids = None if sample_ids is None else check.check_sample_ids(sample_ids)
        _check_sample_counts(labels, ids, samples)
        s = StepData(len(self), step, loss, extras, entries, floor_values, samples, labels, ids)
        if self._journal is not None:
            self._journal.write_step(s)
        self._add_step(s)

    def _check_step(self, step):
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"step must be an int, got {type(step).__name__} ({step!r})")
        step = int(step)
        if self._last_step is not None and step <= self._last_step:
            raise ValueError(f"steps must increase: got step {step} after step {self._last_step}")
        return step

    def _key(self, raw):
        try:
            key = self._key_cache.get(raw)
        except TypeError:  # unhashable: normalize_key says what is wrong
            key = None
        if key is None:
            key = self._key_cache[raw] = check.normalize_key(raw)
        return key

    def _spectra_entries(self, spectra):
        if spectra is None:
            return []
        if not isinstance(spectra, Mapping):
            raise TypeError(f"spectra must be a dict {{(layer, quantity, group, position): array}}, "
                            f"got {type(spectra).__name__}")
        entries = []
        for raw, values in zip(spectra.keys(), check.batch_to_host(list(spectra.values()))):
            key = self._key(raw)
            arr = values if type(values) is np.ndarray and values.dtype == np.float64 else check.floats(
                values, f"spectrum {key}")
            if arr.ndim != 1:
                raise ValueError(f"spectrum {key} must be a 1-D array of singular values, got shape {arr.shape}")
            entries.append((key, arr))
        if len({k for k, _ in entries}) != len(entries):
            raise ValueError("spectra holds the same (layer, quantity, group, position) twice "
                             "(e.g. group 3 and group '3')")
        return entries

    def _floor_entries(self, floors, entries):
        if floors is None:
            return {}
        if not isinstance(floors, Mapping):
            raise TypeError(f"floors must be a dict {{(layer, quantity, group, position): number}}, "
                            f"got {type(floors).__name__}")
        present = {key for key, _ in entries}
        out = {}
        for raw, value in floors.items():
            key = self._key(raw)
            if key not in present:
                raise ValueError(f"floors[{key}] names a spectrum that is not in this step's spectra")
            value = check.scalar(value, f"floors[{key}]")
            if not np.isnan(value):
                out[key] = value
        return out

    def _add_step(self, s):
        self._catalog.add_step(s)
        self._tail.add(s)
        self._last_step = s.step

    def set_sample_groups(self, labels):
        """Store the group label of every sample (length N), once per record."""
        self._check_writable()
        labels = check.check_labels(labels)
        if self._journal is not None:
            self._journal.write_sample_groups(labels)
        self._sample_groups = labels

    def update_metadata(self, update):
        """Add or replace metadata entries (JSON-serializable); journaled like a step."""
        self._check_writable()
        update = check.as_metadata(update)
        if self._journal is not None:
            self._journal.write_metadata(update)
        self._metadata.update(update)

    # -- reading ---------------------------------------------------------------------------

    def __len__(self):
        return sum(p.n for p in self._parts) + self._tail.n

    def _rows(self, name_of, tail_rows, inner_ndim, dtype=np.float64, fill=np.nan, cache=False):
        """One column over all steps: each stored part's dataset ``name_of(part)`` then the tail's."""
        pieces = [(p.n, p.read(name_of(p), cache)) for p in self._parts]
        pieces.append((self._tail.n, None if tail_rows is None else tail_rows.take(self._tail.n)))
        return _concat(pieces, inner_ndim, dtype, fill)

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
        return self._rows(lambda p: "steps", self._tail.steps, 0, np.int64, 0, cache=True)

    @property
    def losses(self):
        return self._rows(lambda p: "losses", self._tail.losses, 0, cache=True)

    def n_steps_through(self, step):
        """Number of rows whose step is <= ``step``."""
        return int(np.searchsorted(self.steps, step, side="right"))

    def _record_labels(self):
        if isinstance(self._sample_groups, _Part):
            part = self._sample_groups
            self._sample_groups = np.asarray(part.source.read(part.sample_groups, rows=False)).astype(str)
        return None if self._sample_groups is None else self._sample_groups.copy()

    @property
    def sample_groups(self):
        """The record-level labels (set_sample_groups); else the per-step labels when every step has
        the same ones; else None."""
        labels = self._record_labels()
        if labels is not None or not len(self):
            return labels
        coded = self._step_codes()
        if coded is None:
            return None
        table, codes = coded
        if (codes[:, 0] < 0).any() or (codes != codes[0]).any():
            return None
        return table[codes[0][codes[0] >= 0]]

    def _counts(self):
        return self._rows(lambda p: p.step_samples.get("counts"), self._tail.counts, 0, np.int64, -1, cache=True)

    def _step_codes(self):
        """(label table, codes (n_steps, N_max) int32, -1 = none) of the per-step labels, or None."""
        tail = self._tail
        if tail.codes is None and not any(p.step_samples.get("group_codes") for p in self._parts):
            return None
        table = {}
        pieces = []
        for part in self._parts:
            codes = part.read(part.step_samples.get("group_codes"), cache=True)
            if codes is not None:
                labels = part.read(part.step_samples["group_labels"], cache=True, rows=False)
                codes = _recode(codes, labels.tolist(), table)
            pieces.append((part.n, codes))
        codes = None
        if tail.codes is not None:
            codes = _recode(tail.codes.take(tail.n), list(tail.label_codes), table)
        pieces.append((tail.n, codes))
        return np.array(list(table), dtype=str), _concat(pieces, 1, np.int32, -1)

    def step_sample_groups(self):
        """The group label of every sample of every step: str (n_steps, N_max), "" pads.

        Steps recorded without per-step labels get the record-level labels (set_sample_groups)
        when those fit the step's number of samples, else "". None when the record has no labels.
        """
        record = self._record_labels()
        coded = self._step_codes()
        if record is None and coded is None:
            return None
        n = len(self)
        labelled = np.zeros(n, dtype=bool) if coded is None else coded[1][:, 0] >= 0
        counts = self._counts()
        fits = ~labelled & (record is not None) & ((counts < 0) | (counts == (0 if record is None else len(record))))
        width = max(coded[1].shape[1] if coded is not None and labelled.any() else 0,
                    len(record) if record is not None and fits.any() else 0)
        out = np.full((n, width), "", dtype=object)
        if coded is not None and labelled.any():
            table, codes = coded
            rows = codes[labelled]
            names = np.where(rows >= 0, table[np.maximum(rows, 0)], "")
            out[labelled, : codes.shape[1]] = names
        if fits.any():
            out[fits, : len(record)] = record
        return out.astype(str)

    def step_sample_ids(self):
        """The dataset index of every sample of every step: int64 (n_steps, N_max), -1 pads or
        unknown; None when no step was given sample ids."""
        if self._tail.ids is None and not any(p.step_samples.get("ids") for p in self._parts):
            return None
        return self._rows(lambda p: p.step_samples.get("ids"), self._tail.ids, 1, np.int64, -1)

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
                              f"{check.choices(list(self._catalog.tree))}")
        return tree

    def extra(self, name):
        """Per-step values of the extra scalar ``name`` (NaN where not given)."""
        if name not in self._catalog.extras:
            raise RecordError(f"unknown extra {name!r}: recorded extras are {check.choices(self.extra_names)}")
        return self._rows(lambda p: p.extras.get(name), self._tail.extras.get(name), 0, cache=True)

    def series(self, layer, quantity, group=None, position=None, above_floor=False):
        """Spectra of one key over steps: float64 (n_steps, k), NaN-padded.

        above_floor=True: values at or below that step's noise floor become NaN (steps with an
        unknown floor keep their values).
        """
        key = self._check_key(layer, quantity, group, position)
        values = self._series(key)
        if above_floor:
            values = np.where(values <= self._floor(key)[:, None], np.nan, values)
        return values

    def floor(self, layer, quantity, group=None, position=None):
        """The noise floor of one key's spectrum at every step: float64 (n_steps,), NaN where unknown."""
        return self._floor(self._check_key(layer, quantity, group, position))

    def _check_key(self, layer, quantity, group, position):
        tree = self._layer_tree(layer)
        groups = tree.get(quantity)
        if groups is None:
            raise RecordError(f"quantity {quantity!r} is not recorded for layer {layer!r}: recorded are "
                              f"{check.choices([q for q in QUANTITIES if q in tree])}")
        try:
            group = check.check_group(group)
            position = check.check_position(position)
        except (TypeError, ValueError) as exc:
            raise RecordError(str(exc)) from None
        positions = groups.get(group)
        if positions is None:
            order = [g for g in [None, *self._catalog.groups] if g in groups]
            raise RecordError(f"group {group!r} is not recorded for ({layer!r}, {quantity!r}): recorded groups are "
                              f"{check.choices(order)} (None = whole batch)")
        if position not in positions:
            order = sorted(positions, key=lambda p: -1 if p is None else p)
            raise RecordError(f"position {position!r} is not recorded for ({layer!r}, {quantity!r}, group "
                              f"{group!r}): recorded positions are {check.choices(order)} (None = sum)")
        return (layer, quantity, group, position)

    def _series(self, key):
        return self._rows(lambda p: p.spectra.get(key), self._tail.spectra.get(key), 1)

    def _floor(self, key):
        return self._rows(lambda p: p.floors.get(key), self._tail.floors.get(key), 0)

    def per_sample(self, layer):
        """Per-sample values of ``layer`` over steps: float64 (n_steps, N, k_s), NaN-padded."""
        if layer not in self._catalog.per_sample:
            raise RecordError(f"no per-sample values for layer {layer!r}: layers with per-sample values are "
                              f"{check.choices(self.per_sample_layers)}")
        return self._per_sample(layer)

    def _per_sample(self, layer):
        return self._rows(lambda p: p.per_sample.get(layer), self._tail.per_sample.get(layer), 2)

    # -- export ------------------------------------------------------------------------------

    def _content(self, run_id, rows=None):
        """Everything to write (the first ``rows`` steps, default all), arrays produced lazily."""
        cat = self._catalog
        n = len(self) if rows is None else rows
        coded = self._step_codes()
        ids = self.step_sample_ids()
        floors = ((key, f[:n]) for key, f in ((key, self._floor(key)) for key in cat.keys) if not np.isnan(f).all())
        return dict(
            run_id=run_id, metadata=self._metadata, layers=list(cat.layers), steps=self.steps[:n],
            losses=self.losses[:n], sample_groups=self._record_labels(),
            step_samples={"counts": self._counts()[:n],
                          "group_labels": None if coded is None else coded[0],
                          "group_codes": None if coded is None else coded[1][:n],
                          "ids": None if ids is None else ids[:n]},
            spectra=((key, self._series(key)[:n]) for key in cat.keys),
            floors=floors,
            per_sample=((layer, self._per_sample(layer)[:n]) for layer in cat.per_sample),
            extras=((name, self.extra(name)[:n]) for name in cat.extras),
        )

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
        content = self._content(run_id)
        _h5.atomic_write(path, lambda tmp: _h5.write_h5(tmp, journal="", **content))
        if own:
            if self._journal_file:
                _remove_if_own_journal(self._journal_file, self._loaded_run_id)
                self._journal_file = None
            self._sample_groups = self._record_labels()
            self._set_parts([_Part(_h5.H5Source(path))])
            self._run_id = self._loaded_run_id = run_id

    def to_npz(self, path):
        """Flat export: keys like "G/0.weight/all/sum", "floor/G/0.weight/all/sum", "steps", "losses",
        "extra/<name>", "per_sample/<layer>", "step_samples/...", "metadata" (JSON str); loads with
        ``np.load(path, allow_pickle=False)``."""
        content = self._content(uuid.uuid4().hex)
        _h5.atomic_write(os.fspath(path), lambda tmp: _h5.write_npz(tmp, **content))

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
        rec._run_id = rec._loaded_run_id = source.run_id
        rec._journal_file = None
        rec._set_parts([_Part(source)])
        return rec

    def _replay(self, events):
        """Apply journal events that continue the stored part; returns the bytes of damaged frames."""
        lost_rows, damaged = 0, 0
        for event in events:
            if isinstance(event, StepData):
                expected = len(self) + lost_rows
                if event.row < expected:
                    continue  # already in the HDF5 file (a checkpoint was cut short before emptying the journal)
                if event.row > expected:
                    if not damaged:
                        raise _h5.JournalGap()
                    lost_rows += event.row - expected  # steps in the damaged frames
                self._add_step(event)
            elif event[0] == _journal.SKIPPED:
                damaged += event[2]
            elif event[0] == "groups":
                self._sample_groups = event[1]
            elif event[0] == "meta":
                self._metadata.update(event[1])
        return damaged


def _recode(codes, labels, table):
    """Codes into ``labels`` -> codes into ``table`` (a shared label -> code dict, grown as needed)."""
    remap = np.array([table.setdefault(label, len(table)) for label in labels] + [-1], dtype=np.int32)
    return remap[np.where(codes >= 0, codes, len(labels))]


def _check_sample_counts(labels, ids, samples):
    n = len(labels) if labels is not None else (len(ids) if ids is not None else None)
    if labels is not None and ids is not None and len(ids) != n:
        raise ValueError(f"sample_groups has {n} labels but sample_ids has {len(ids)} indices")
    for layer, arr in samples:
        if n is not None and arr.shape[0] != n:
            what = "sample_groups has" if labels is not None else "sample_ids has"
            raise ValueError(f"{what} {n} samples but per_sample[{layer!r}] has {arr.shape[0]} rows")


# ----------------------------------------------------------------------------- journal files

def _damaged_or_foreign(path, why):
    return RecordError(f"{path}: damaged or foreign record ({why})")


def _journal_beside(record_path, name):
    """Path of the journal ``name`` that the record file names: only a plain file name beside it."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or os.sep in name or "\x00" in name:
        raise _damaged_or_foreign(record_path, f"its journal {name!r} is not a plain file name beside it")
    return os.path.join(os.path.dirname(record_path), name)


def _read_regular_file(record_path, path):
    """The bytes of ``path`` (never following a link, only a regular file), or None when missing."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:  # ELOOP: a symbolic link
        raise _damaged_or_foreign(record_path, f"its journal {os.path.basename(path)!r} cannot be opened "
                                               f"as a plain file ({exc.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _damaged_or_foreign(record_path, f"its journal {os.path.basename(path)!r} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        return fh.read(st.st_size)  # never more than the file's real size


def _remove_if_own_journal(path, run_id):
    """Delete ``path`` only when it is a regular file whose header names this run."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return
        with open(path, "rb") as fh:
            head = fh.read(len(_journal.journal_header(run_id)))
    except OSError:
        return
    if head[len(_journal.JOURNAL_MAGIC) + 4:] == run_id.encode("ascii") and head.startswith(_journal.JOURNAL_MAGIC):
        os.unlink(path)


def load_record(path):
    """Open a record file (.h5 written by Record, or .npz from to_npz) lazily and read-only.

    A file-backed run that was killed (or never closed) loads with every completed step; a
    damaged journal frame costs only its own step (with a warning). Raises FileNotFoundError
    for a missing file and RecordError for anything that is not a readable record (random
    bytes, truncated HDF5, another HDF5 file, a newer format version, a journal reference
    that leads out of the record's folder).
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(f"no record file at {path}")
    if os.path.isdir(path):
        raise RecordError(f"{path}: is a directory, not a record file")
    if not os.path.isfile(path):
        raise RecordError(f"{path}: is not a regular file, so not a record file")
    with open(path, "rb") as fh:
        magic = fh.read(len(_journal.JOURNAL_MAGIC))
    if magic.startswith(b"PK\x03\x04"):
        return from_npz(path)
    if magic == _journal.JOURNAL_MAGIC:
        raise RecordError(f"{path}: is the append journal of a record; load the HDF5 file beside it")
    for _ in range(5):
        before = _identity(path)
        source = _h5.H5Source(path)
        rec = Record._from_source(source)
        if not source.journal:
            return rec
        journal = _journal_beside(path, source.journal)
        data = _read_regular_file(path, journal)
        try:
            events = None if data is None else _journal.read_journal(data, source.run_id, journal)
        except _journal.JournalDamage as exc:
            raise RecordError(str(exc)) from None
        if _identity(path) != before:
            continue  # a writer replaced the file (checkpoint/close) between our two reads: read both again
        try:
            damaged = rec._replay(events or [])
        except _h5.JournalGap:
            continue
        if events is not None:
            rec._journal_file = journal
        if damaged:
            warnings.warn(f"{journal}: skipped {damaged} damaged bytes of the journal; the steps stored there "
                          f"are lost (the record has {len(rec)} steps)", stacklevel=2)
        return rec
    raise RecordError(f"{path}: the file kept changing while it was read (a writer is checkpointing); try again")


def _identity(path):
    st = os.stat(path)
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def from_npz(path):
    """Open a record exported with ``Record.to_npz`` (lazily, read-only; never unpickles)."""
    rec = Record._from_source(_h5.NpzSource(path))
    return rec
