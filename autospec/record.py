"""Records of singular-value spectra over training: append per step, store as HDF5, load lazily.

A :class:`Record` holds, for every training step taken, spectra keyed by
``(layer, quantity, group, position)`` (quantity "G", "A" or "D"; group None = whole batch or a
str label; position None = summed over tied positions, or an int position), plus the loss,
named extra scalars, optional per-sample values, the noise floor of each spectrum, and which
samples the step saw (their group labels and dataset indices, for mini-batches).
``series(layer, quantity, group, position)`` gives an ``(n_steps, k)`` float64 array, NaN where a
step did not record that key (a key first seen at step 5 has NaN rows before it) and NaN-padded to
the longest spectrum of the key.

HDF5 layout (format version 2; version 1 files, which lack floors and step_samples/, still load;
all names below are link names, ``<x>`` percent-escaped so that any str is allowed, e.g.
"/" -> "%2F", and a group literally named "all" -> "%61ll")::

    /  attrs: format="autospec-record", format_version=2, run_id (hex str), n_steps (int),
              journal (file name of the append journal, "" once the record is finished)
    /steps                                   int64 (n_steps,)
    /losses                                  float64 (n_steps,), NaN where not given
    /extra/<name>                            float64 (n_steps,)
    /spectra/<layer>/<Q>/<group|all>/<p|sum> float64 (n_steps, k), NaN-padded
    /floors                                  float64 (n_steps, F): noise floor of the spectra given
                                             one, one column per key (listed in the index), NaN
                                             where unknown
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
unreadable. So no HDF5 file is ever modified in place: each is written once to a temporary file
beside its name, fsync'ed and renamed over it (atomic: readers see the old or the new file).
A running writer keeps three kinds of files::

    run.h5                      the record file: header, metadata, labels and the list of its
                                segments (no rows), rewritten whenever a segment is added
    run.h5.<run>.seg00001 ...   segment files: consecutive rows, each an HDF5 file in the layout
                                above (attrs part_of="run.h5"), written once and never changed
    run.h5.journal              append-only journal of the steps since the last segment

Each ``append`` encodes the step as one checksummed, self-describing frame (format in
:mod:`autospec._journal`) and hands it to the OS with ``write()`` before returning (``fsync=True``
also forces it to the disk, for power loss; a process kill never loses what ``write()`` returned).
When the steps held in memory reach ``segment_bytes`` (default ``SEGMENT_BYTES``, 16 MiB; or on
``checkpoint()``), the writer writes them as the next segment, rewrites the small record file to
list it, and empties the journal. So its memory stays flat, and every step is written three
times in all (journal, segment, finished file): total work O(steps), never O(steps^2).
``close()`` merges the segments into one finished file once (its rows in the record file
itself, no segments, journal ""), then deletes the journal and the segments.

``load_record`` reads the record file, its segments and the journal frames that continue them,
so a run killed at any moment (or never closed) loads with every completed step: a kill
mid-``write`` leaves at most an incomplete last frame, which is ignored; a kill while a segment
or the record file is written leaves the previous files (plus a stray temporary file) and the
full journal; frames already stored in a segment are recognised by their row number. A damaged
frame inside the journal costs only its own step (one warning per load says so). Loading never
modifies files; ``load_record(p).save(p)`` consolidates a killed run into one finished file,
and ``Record.resume(p, through_step)`` continues it. Files beside a record are only opened when
the record names them by a plain file name and they are regular files, and deleted only after
checking that they belong to the same run (see :mod:`autospec._record_files`).

Laziness and file handles. ``load_record`` reads only the small headers (index, metadata) of the
record file and of each segment; each ``series()`` / ``per_sample()`` / ``steps`` call opens a
file, reads one dataset and closes it again, for each file holding rows (small per-step columns
are cached after the first read). No handle is held between calls, so any number of records can
be open at once, and writers can replace the file while readers hold it (no Windows-style
sharing violations, no HDF5 file locks). A loaded record is a snapshot: steps appended by a
live writer after ``load_record`` are not seen (and once the writer merged and removed the
segments, their rows are read from the finished file).
"""
import contextlib
import datetime
import json
import os
import uuid
import warnings
from collections.abc import Mapping

import numpy as np

from . import _h5, _journal
from .atomic import atomic_write, remove_stale_temporaries
from . import _record_files as files
from . import _record_input as check
from ._record_rows import Catalog, Part, Tail, concat, recode
from ._h5 import RecordError, estimate_record_bytes
from ._journal import StepData

__all__ = ["Record", "RecordError", "load_record", "from_npz", "estimate_record_bytes"]

QUANTITIES = check.QUANTITIES
SEGMENT_BYTES = 16 << 20  # a writer holds about this many bytes of steps before writing a segment


# ----------------------------------------------------------------------------- the record

class Record:
    """Per-step spectra of a training run (see the module docstring for storage and crash safety).

    ``Record(metadata={...})`` keeps everything in memory; ``Record(path="run.h5", metadata={...})``
    is file-backed: every ``append`` is on disk when it returns and a killed run loses nothing.
    ``overwrite=False`` refuses to replace an existing file; ``fsync=True`` also syncs every step
    to the disk (survives power loss, costs a disk sync per step); ``segment_bytes``: the writer
    holds about this many bytes of steps in memory before writing them into a segment file.
    """

    def __init__(self, path=None, metadata=None, *, overwrite=True, fsync=False, segment_bytes=SEGMENT_BYTES):
        if isinstance(path, Mapping):
            raise TypeError("Record(path=None, metadata=None): the first argument is the file path; "
                            "pass the metadata dict as metadata=...")
        self._init_empty(check.as_metadata(metadata))
        self._writable = True
        self._segment_bytes = _segment_bytes(segment_bytes)
        if path is not None:
            self._start_file(path, overwrite, fsync)

    def _init_empty(self, metadata):
        self._metadata = metadata
        self._path = None
        self._run_id = None
        self._journal = None
        self._writable = False
        self._sample_groups = None  # record-level labels: None, an array, or the Part holding them
        self._last_step = None
        self._key_cache = {}
        self._journal_file = None  # the journal a loaded record was read with (verified to be its own)
        self._loaded_run_id = None  # the run id of the files this record was read from or writes
        self.resumed_backup = None
        self._segment_bytes = SEGMENT_BYTES
        self._segments, self._bytes_written = [], 0
        self._set_parts([])

    def _set_parts(self, parts):
        """Make the stored ``parts`` (lazy file rows) the first rows; the memory part starts empty."""
        self._parts = list(parts)
        self._tail = Tail()
        self._catalog = cat = Catalog()
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
        """Become the writer of ``path``: the first ``keep`` rows of this record (none for a new
        record) go into a first segment file, then a record file naming it and a fresh journal."""
        try:
            path = os.path.abspath(os.fspath(path))
        except TypeError:
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
        if path.lower().endswith(".npz"):
            raise ValueError(f"file-backed records are HDF5 files; {path!r} ends in .npz "
                             f"(use an .h5 path, and Record.to_npz for an npz export)")
        if not overwrite and os.path.exists(path):
            raise FileExistsError(f"{path} exists and overwrite=False")
        replaced_run = files.record_run_id(path)
        run_id = uuid.uuid4().hex
        self._segments, self._bytes_written = [], 0
        parts = []
        if keep:
            with self.files_held_open():
                content = self._content(run_id, keep)
                self._last_step = int(content["steps"][-1])
                parts.append(self._write_segment(path, run_id, content, keep, first_row=0))
        self._sample_groups = self._record_labels()
        self._path, self._run_id = path, run_id
        self._loaded_run_id, self._journal_file = run_id, None
        journal_name = os.path.basename(path) + _journal.JOURNAL_SUFFIX
        self._write_main(journal_name)  # 1. a record file that names the journal, 2. a fresh journal
        try:
            self._journal = _journal.JournalWriter(os.path.join(os.path.dirname(path), journal_name), run_id, fsync)
        except _journal.JournalDamage as exc:
            raise RecordError(str(exc)) from None
        self._set_parts([Part(_h5.H5Source(path))] + parts)
        remove_stale_temporaries(path)
        if replaced_run is not None:
            files.remove_segments(path, replaced_run)  # the segments of the record this run replaced

    def _write_segment(self, path, run_id, content, n, first_row):
        """Write rows as the next segment file of the run (once, atomically); returns its Part."""
        name = files.segment_name(path, run_id, len(self._segments) + 1)
        seg_path = os.path.join(os.path.dirname(path), name)
        self._bytes_written += atomic_write(seg_path, lambda tmp: _h5.write_h5(
            tmp, journal="", part_of=os.path.basename(path), **content))
        self._segments.append((name, n))
        return Part(_h5.SegmentSource(seg_path, path, run_id, n, first_row))

    def _write_main(self, journal_name):
        """Rewrite the record file of a running writer: header, metadata and the list of segments
        (no rows: those live in the segments and the journal), so its size does not grow with steps."""
        content = dict(run_id=self._run_id, metadata=self._metadata, layers=[], steps=np.zeros(0, np.int64),
                       losses=np.zeros(0), sample_groups=self._record_labels(),
                       step_samples={"counts": np.zeros(0, np.int64)}, spectra=(), floors=None, per_sample=(),
                       extras=())
        self._bytes_written += atomic_write(self._path, lambda tmp: _h5.write_h5(
            tmp, journal=journal_name, segments=self._segments, **content))

    def checkpoint(self):
        """Move the steps held in memory into a new segment file beside the record (file-backed
        records being written; the writer also does this by itself every ``segment_bytes``)."""
        if self._journal is None:
            raise RecordError("checkpoint() needs a file-backed record that is still being written")
        tail = self._tail
        part = None
        if tail.n:
            part = self._write_segment(self._path, self._run_id, self._tail_content(), tail.n, len(self) - tail.n)
        self._write_main(os.path.basename(self._journal.path))
        # from here on the record file lists every step and the journal frames are redundant
        self._journal.reset()
        if part is not None:
            self._parts.append(part)
            self._tail = Tail()

    def close(self):
        """Finish the record: a file-backed one becomes a single HDF5 file (its segments merged in,
        its journal and segments removed). Afterwards it is read-only."""
        if self._journal is not None:
            with self.files_held_open():
                content = self._content(self._run_id)
                self._bytes_written += atomic_write(self._path, lambda tmp: _h5.write_h5(
                    tmp, journal="", **content))
            # from here on the file holds every step; the journal and the segments are redundant
            self._bytes_written += self._journal.bytes_written
            self._journal.close(remove=True)
            self._journal = None
            files.remove_segments(self._path, self._run_id)
            self._segments = []
            self._sample_groups = self._record_labels()
            self._set_parts([Part(_h5.H5Source(self._path))])
        self._writable = False

    @property
    def bytes_written(self):
        """Bytes this writer has written to disk so far (journal, segments, record file)."""
        journal = 0 if self._journal is None else self._journal.bytes_written
        return self._bytes_written + journal

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    @classmethod
    def resume(cls, path, through_step, *, fsync=False, segment_bytes=SEGMENT_BYTES):
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
        old._writable = True
        old._segment_bytes = _segment_bytes(segment_bytes)
        old._start_file(old._path, True, fsync, keep=keep)  # its journal is started afresh
        old.resumed_backup = backup
        return old

    def _save_backup(self):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = f"{self._path}.bak-{stamp}"
        for n in range(1, 10000):
            candidate = base if n == 1 else f"{base}-{n}"
            if os.path.lexists(candidate):
                continue
            try:
                with self.files_held_open():
                    content = self._content(uuid.uuid4().hex)
                    atomic_write(candidate, lambda tmp: _h5.write_h5(tmp, journal="", **content), replace=False)
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
        if self._journal is not None and self._tail.nbytes >= self._segment_bytes:
            self.checkpoint()

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
            value = float(value) if type(value) in (float, np.float64, np.float32) else \
                check.scalar(value, f"floors[{key}]")
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
        return concat(pieces, inner_ndim, dtype, fill)

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
        if isinstance(self._sample_groups, Part):
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
                codes = recode(codes, labels.tolist(), table)
            pieces.append((part.n, codes))
        codes = None
        if tail.codes is not None:
            codes = recode(tail.codes.take(tail.n), list(tail.label_codes), table)
        pieces.append((tail.n, codes))
        return np.array(list(table), dtype=str), concat(pieces, 1, np.int32, -1)

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
        labels = [np.zeros(0, str)] + ([coded[0]] if coded is not None else []) + ([record] if record is not None else [])
        out = np.full((n, width), "", dtype=np.concatenate(labels).dtype)
        if coded is not None and labelled.any():
            table, codes = coded
            with_pad = np.append(table, "")  # code -1 -> ""
            out[labelled, : codes.shape[1]] = with_pad[codes[labelled]]
        if fits.any():
            out[fits, : len(record)] = record
        return out

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
        tree = self.layer_tree(layer)
        return sorted({p for qs in tree.values() for ps in qs.values() for p in ps if p is not None})

    def layer_tree(self, layer):
        """What is recorded for ``layer``: {quantity: {group: positions}}; RecordError naming the
        layers with spectra when it has none."""
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
        tree = self.layer_tree(layer)
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
        pieces = []
        for part in self._parts:
            column = part.floors.get(key)
            matrix = None if column is None else part.read("floors", cache=True)
            if matrix is not None and not (matrix.ndim == 2 and 0 <= column < matrix.shape[1]):
                raise RecordError(f"{part.source.path}: damaged record: its floors have no column {column}")
            pieces.append((part.n, None if matrix is None else matrix[:, column]))
        rows = self._tail.floors.get(key)
        pieces.append((self._tail.n, None if rows is None else rows.take(self._tail.n)))
        return concat(pieces, 0)

    def per_sample(self, layer):
        """Per-sample values of ``layer`` over steps: float64 (n_steps, N, k_s), NaN-padded."""
        if layer not in self._catalog.per_sample:
            raise RecordError(f"no per-sample values for layer {layer!r}: layers with per-sample values are "
                              f"{check.choices(self.per_sample_layers)}")
        return self._per_sample(layer)

    def _per_sample(self, layer):
        return self._rows(lambda p: p.per_sample.get(layer), self._tail.per_sample.get(layer), 2)

    # -- tables ------------------------------------------------------------------------------

    def to_dataframe(self, layers=None, quantities=None, groups=..., positions=..., steps=None,
                     above_floor=False, floor=False):
        """The spectra as a tidy pandas DataFrame: one row per recorded singular value.

        Columns: ``step`` (int64), ``layer``, ``quantity`` ("G", "A", "D") and ``group``
        (categoricals, in record order), ``position`` (nullable Int64), ``index`` (int64),
        ``value`` (float64), ``below_floor`` (bool), and ``floor`` (float64, NaN where unknown)
        when ``floor=True``. Rows are ordered by key (as in ``keys()``), then step, then index.

        - ``index`` is 1-based as in the maths: index 1 is sigma_1, the largest value.
        - ``group`` is missing (``pd.NA``) for the whole batch (group None), so no label, not even
          one named "all", collides with it; ``groupby`` drops it unless ``dropna=False``.
        - ``position`` is missing (``pd.NA``) for the sum over tied positions (position None).
        - ``below_floor``: the value is at or below its step's noise floor (what
          ``series(..., above_floor=True)`` turns into NaN); False where no floor is known.
        - NaN padding (shorter spectra, steps without the key) gives no row.

        Filters (each keeps only what it names): ``layers``, ``quantities``: a name or a list, None
        = all; ``groups``: a label, None (the whole batch) or a list of them, ``...`` = all;
        ``positions``: an int, None (the sum) or a list of them, ``...`` = all; ``steps``: a step
        number or a list of them, None = all; ``above_floor=True`` drops the rows below the floor.

        Needs pandas (``pip install autospec[tables]``); RecordError says so when it is missing.
        """
        from .record_table import spectra_table

        return spectra_table(self, layers, quantities, groups, positions, steps, above_floor, floor)

    def per_sample_dataframe(self, layer, steps=None):
        """The per-sample values of ``layer`` as a tidy pandas DataFrame (one row per value).

        Columns: ``step`` (int64), ``sample`` (int64: the sample's row in its step's batch,
        0-based), ``sample_id`` (nullable Int64: its dataset index, from ``step_sample_ids()``;
        missing where unknown), ``group`` (categorical: its label at that step, from
        ``step_sample_groups()``; missing where unknown), ``index`` (int64, 1-based: 1 is the
        largest value of that sample's gradient spectrum) and ``value`` (float64). NaN padding
        gives no row. ``steps``: a step number or a list of them, None = all.
        Needs pandas (``pip install autospec[tables]``).
        """
        from .record_table import per_sample_table

        return per_sample_table(self, layer, steps)

    # -- export ------------------------------------------------------------------------------

    def _content(self, run_id, rows=None):
        """Everything to write (the first ``rows`` steps, default all), arrays produced lazily."""
        cat = self._catalog
        n = len(self) if rows is None else rows
        coded = self._step_codes()
        ids = self.step_sample_ids()
        floors = {key: f[:n] for key, f in ((key, self._floor(key)) for key in cat.keys) if not np.isnan(f).all()}
        return dict(
            run_id=run_id, metadata=self._metadata, layers=list(cat.layers), steps=self.steps[:n],
            losses=self.losses[:n], sample_groups=self._record_labels(),
            step_samples={"counts": self._counts()[:n],
                          "group_labels": None if coded is None else coded[0],
                          "group_codes": None if coded is None else coded[1][:n],
                          "ids": None if ids is None else ids[:n]},
            spectra=((key, self._series(key)[:n]) for key in cat.keys),
            floors=(list(floors), np.stack(list(floors.values()), axis=1)) if floors else None,
            per_sample=((layer, self._per_sample(layer)[:n]) for layer in cat.per_sample),
            extras=((name, self.extra(name)[:n]) for name in cat.extras),
        )

    @contextlib.contextmanager
    def files_held_open(self):
        """Keep the files of the stored parts open while the block reads many of them (a merge, a table):
        one open per file instead of one per dataset and file."""
        with contextlib.ExitStack() as stack:
            for part in self._parts:
                if part.n and hasattr(part.source, "held_open"):
                    try:
                        stack.enter_context(part.source.held_open())
                    except FileNotFoundError:
                        pass  # a segment merged away since: its reads fall back to the finished file
            yield

    def _tail_content(self):
        """The steps held in memory, as content for a segment file."""
        tail, n = self._tail, self._tail.n
        in_tail = {key[0] for key in tail.spectra} | set(tail.per_sample)
        labels = np.array(list(tail.label_codes), dtype=str) if tail.codes is not None else None
        return dict(
            run_id=self._run_id, metadata={}, layers=[layer for layer in self._catalog.layers if layer in in_tail],
            steps=tail.steps.take(n), losses=tail.losses.take(n), sample_groups=None,
            step_samples={"counts": tail.counts.take(n), "group_labels": labels,
                          "group_codes": None if labels is None else tail.codes.take(n),
                          "ids": None if tail.ids is None else tail.ids.take(n)},
            spectra=((key, rows.take(n)) for key, rows in tail.spectra.items()),
            floors=(list(tail.floors), np.stack([r.take(n) for r in tail.floors.values()], axis=1))
            if tail.floors else None,
            per_sample=((layer, rows.take(n)) for layer, rows in tail.per_sample.items()),
            extras=((name, rows.take(n)) for name, rows in tail.extras.items()),
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
        with self.files_held_open():
            content = self._content(run_id)
            atomic_write(path, lambda tmp: _h5.write_h5(tmp, journal="", **content))
        if own:
            if self._journal_file:
                files.remove_if_own_journal(path, self._journal_file, self._loaded_run_id)
                self._journal_file = None
            files.remove_segments(path, self._loaded_run_id)
            self._sample_groups = self._record_labels()
            self._set_parts([Part(_h5.H5Source(path))])
            self._run_id = self._loaded_run_id = run_id

    def to_npz(self, path):
        """Flat export: keys like "G/0.weight/all/sum", "floors", "steps", "losses",
        "extra/<name>", "per_sample/<layer>", "step_samples/...", "metadata" (JSON str); loads with
        ``np.load(path, allow_pickle=False)``."""
        with self.files_held_open():
            content = self._content(uuid.uuid4().hex)
            atomic_write(os.fspath(path), lambda tmp: _h5.write_npz(tmp, **content))

    def __repr__(self):
        where = "in memory" if self._path is None else repr(self._path)
        state = "writing" if self._writable else "read-only"
        return (f"<Record {where} ({state}): {len(self)} steps, {len(self._catalog.layers)} layers, "
                f"{len(self._catalog.keys)} spectra>")

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def _from_source(cls, source, segments=()):
        rec = cls.__new__(cls)
        rec._init_empty(dict(source.metadata))
        rec._path = source.path
        rec._run_id = rec._loaded_run_id = source.run_id
        rec._set_parts([Part(source)] + [Part(segment) for segment in segments])
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

def _segment_bytes(value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"segment_bytes must be a positive int (bytes of steps held in memory), got {value!r}")
    return int(value)


def _check_sample_counts(labels, ids, samples):
    n = len(labels) if labels is not None else (len(ids) if ids is not None else None)
    if labels is not None and ids is not None and len(ids) != n:
        raise ValueError(f"sample_groups has {n} labels but sample_ids has {len(ids)} indices")
    for layer, arr in samples:
        if n is not None and arr.shape[0] != n:
            what = "sample_groups has" if labels is not None else "sample_ids has"
            raise ValueError(f"{what} {n} samples but per_sample[{layer!r}] has {arr.shape[0]} rows")

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
        try:
            segments = _open_segments(path, source)
        except RecordError:
            if _identity(path) != before:
                continue  # a writer finished the record and removed its segments meanwhile: read it again
            raise
        rec = Record._from_source(source, segments)
        if not source.journal:
            return rec
        journal = files.journal_beside(path, source.journal)
        data = files.read_regular_file(path, journal)
        try:
            events = None if data is None else _journal.read_journal(data, source.run_id, journal)
        except _journal.JournalDamage as exc:
            raise RecordError(str(exc)) from None
        if _identity(path) != before:
            continue  # a writer replaced the file (checkpoint/close) between our reads: read all again
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


def _open_segments(path, source):
    """Lazy sources of the segment files the record file lists (their headers are read now)."""
    segments, first_row = [], source.n
    for name, n in source.segments:
        seg_path = files.segment_beside(path, name)
        try:
            segments.append(_h5.SegmentSource(seg_path, path, source.run_id, n, first_row))
        except FileNotFoundError:
            raise files.damaged_or_foreign(path, f"its segment file {name!r} is missing") from None
        first_row += n
    return segments


def _identity(path):
    st = os.stat(path)
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


def from_npz(path):
    """Open a record exported with ``Record.to_npz`` (lazily, read-only; never unpickles)."""
    rec = Record._from_source(_h5.NpzSource(path))
    return rec
