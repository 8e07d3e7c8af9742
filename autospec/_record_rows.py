"""Rows of a :class:`autospec.record.Record`: the steps held in memory and the parts stored in files.

Private helper of :mod:`autospec.record`.
"""
import numpy as np

from ._h5 import RecordError


class Rows:
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


def concat(pieces, inner_ndim, dtype=np.float64, fill=np.nan):
    """Stack (n_rows, array or None) pieces along rows, padded with ``fill``; None = all ``fill``."""
    total = sum(n for n, _ in pieces)
    present = [a for n, a in pieces if a is not None and n]
    if len(present) == 1 and present[0].shape[0] == total:
        a = np.asarray(present[0], dtype=dtype)
        return a if a.flags.writeable else a.copy()  # never hand out a cached (read-only) array
    inner = tuple(max([a.shape[1 + d] for a in present] + [0]) for d in range(inner_ndim))
    out = np.full((total,) + inner, fill, dtype=dtype)
    at = 0
    for n, a in pieces:
        if a is not None and n:
            out[(slice(at, at + n),) + tuple(slice(0, s) for s in a.shape[1:])] = a[:n]
        at += n
    return out


def sample_count(s):
    """Number of samples of a step: its labels, ids or per-sample rows; -1 when unknown."""
    if s.groups is not None:
        return len(s.groups)
    if s.ids is not None:
        return len(s.ids)
    return max((a.shape[0] for _, a in s.per_sample), default=-1)


def _put(table, key, inner_ndim, row, value):
    """Put ``value`` as row ``row`` of the column ``table[key]`` (made on first use)."""
    rows = table.get(key)
    if rows is None:
        rows = table[key] = Rows(inner_ndim)
    rows.put(row, value)


class Tail:
    """Steps held in memory: everything of an in-memory record, the unconsolidated steps of a file."""

    def __init__(self):
        self.n = 0
        self.nbytes = 0  # about the bytes of values held
        self.steps = Rows(0, np.int64, 0)
        self.losses = Rows(0)
        self.counts = Rows(0, np.int64, -1)
        self.extras, self.spectra, self.floors, self.per_sample = {}, {}, {}, {}
        self.label_codes = {}  # per-step label -> code (this tail's own label table)
        self.codes = None  # Rows of label codes, once a step had labels
        self.ids = None  # Rows of sample ids, once a step had them

    def add(self, s):
        row = self.n
        self.steps.put(row, np.int64(s.step))
        self.losses.put(row, np.float64(s.loss))
        self.counts.put(row, np.int64(sample_count(s)))
        for name, value in s.extra.items():
            _put(self.extras, name, 0, row, np.float64(value))
        for key, arr in s.spectra:
            _put(self.spectra, key, 1, row, arr)
        for key, value in s.floors.items():
            _put(self.floors, key, 0, row, np.float64(value))
        for layer, arr in s.per_sample:
            _put(self.per_sample, layer, 2, row, arr)
        if s.groups is not None:
            if self.codes is None:
                self.codes = Rows(1, np.int32, -1)
            self.codes.put(row, encode(s.groups.tolist(), self.label_codes))
        if s.ids is not None:
            if self.ids is None:
                self.ids = Rows(1, np.int64, -1)
            self.ids.put(row, s.ids)
        self.n = row + 1
        self.nbytes += 8 * (4 + len(s.extra) + len(s.floors)) + sum(a.nbytes for _, a in s.spectra) + \
            sum(a.nbytes for _, a in s.per_sample) + (0 if s.groups is None else 4 * len(s.groups)) + \
            (0 if s.ids is None else s.ids.nbytes)


class Catalog:
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


class Part:
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
            if isinstance(data, np.ndarray):
                data.flags.writeable = False  # shared by every later read: callers get copies (concat)
            self._cache[name] = data
        return data



def encode(labels, table):
    """int32 codes of ``labels`` in ``table`` (a label -> code dict, grown as needed)."""
    return np.array([table.setdefault(label, len(table)) for label in labels], dtype=np.int32)


def recode(codes, labels, table):
    """Codes into ``labels`` -> codes into ``table`` (a shared label -> code dict, grown as needed)."""
    remap = np.append(encode(labels, table), np.int32(-1))
    return remap[np.where(codes >= 0, codes, len(labels))]
