"""The one return type of every data set generator and loader."""
from dataclasses import dataclass, field

import numpy as np

from ._errors import DatasetError, DatasetIndexError, DatasetTypeError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples, labels and provenance of one data set.

    ``X`` (float32, N first), ``y`` (int64 class labels, length N), ``groups`` (length-N str
    labels for group analysis, e.g. "SZ"/"HC"), ``name`` and ``meta`` (a dict of everything
    else). Per-sample arrays in ``meta`` (sex, age, subject ids, ...) are named by
    ``meta["sample_keys"]`` so that :meth:`subset` keeps them aligned with ``X``.
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    name: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        where = f"Dataset {self.name!r}"
        X = np.asarray(self.X)
        if X.ndim < 2:
            raise DatasetError(f"{where}: X must have a sample axis and at least one "
                               f"feature axis, got shape {X.shape}")
        if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
            raise DatasetTypeError(f"{where}: X must be real numbers, got dtype {X.dtype}")
        if X.shape[0] == 0:
            raise DatasetError(f"{where}: X holds no samples (shape {X.shape})")
        with np.errstate(over="ignore", invalid="ignore"):
            X = X.astype(np.float32, copy=False)
        if not np.all(np.isfinite(X)):
            raise DatasetError(f"{where}: X holds {int(np.sum(~np.isfinite(X)))} "
                               f"NaN/Inf value(s) (as float32)")
        n = X.shape[0]
        y = _class_labels(self.y, n, where)
        groups = _group_names(self.groups, n, where)
        meta = dict(self.meta)
        for key in meta.get("sample_keys", ()):
            if key not in meta:
                raise DatasetError(f"Dataset {self.name!r}: meta['sample_keys'] names {key!r}, "
                                   f"which is not in meta")
            meta[key] = np.asarray(meta[key])
            if meta[key].ndim < 1 or len(meta[key]) != n:
                raise DatasetError(f"Dataset {self.name!r}: per-sample meta[{key!r}] has shape "
                                   f"{meta[key].shape}, expected length {n}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "groups", groups)
        object.__setattr__(self, "name", str(self.name))
        object.__setattr__(self, "meta", meta)

    @property
    def n_samples(self):
        """Number of samples N."""
        return self.X.shape[0]

    def __len__(self):
        return self.n_samples

    def __repr__(self):
        names, counts = np.unique(self.groups, return_counts=True)
        summary = ", ".join(f"{g}: {c}" for g, c in zip(names, counts))
        return f"Dataset({self.name!r}, X={self.X.shape} {self.X.dtype}, groups {{{summary}}})"

    def subset(self, idx):
        """The samples picked by ``idx`` (integer indices, a boolean mask of length N, or a slice)."""
        idx = self._check_index(idx)
        meta = dict(self.meta)
        for key in meta.get("sample_keys", ()):
            meta[key] = np.asarray(meta[key])[idx]
        return Dataset(self.X[idx], self.y[idx], self.groups[idx], self.name, meta)

    def standardize(self, axis=0, eps=1e-8):
        """Per-feature z-score: subtract the mean and divide by the std taken over ``axis``.

        ``axis=0`` (the default) gives every feature (every index of the non-sample axes) zero
        mean and unit variance across samples; ``axis=(0, 1)`` on (N, T, C) sequences does it per
        channel across samples and time. Features with (near) zero spread are only centred.
        The mean and std used are kept in ``meta["standardize"]``.
        """
        axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
        try:
            axes = tuple(sorted({a % self.X.ndim for a in map(int, axes)}))
        except (TypeError, ValueError):
            raise DatasetTypeError(f"standardize: axis must be an int or a tuple of ints, "
                                   f"got {axis!r}") from None
        if 0 not in axes or any(a >= self.X.ndim for a in axes):
            raise DatasetError(f"standardize: axis must include the sample axis 0 and lie within "
                               f"X.ndim={self.X.ndim}, got {axis!r}")
        if self.n_samples < 2:
            raise DatasetError("standardize needs at least 2 samples")
        X = self.X.astype(np.float64)
        mean = X.mean(axis=axes, keepdims=True)
        std = X.std(axis=axes, keepdims=True)
        std = np.where(std > eps, std, 1.0)
        Z = ((X - mean) / std).astype(np.float32)
        meta = dict(self.meta)
        meta["standardize"] = {"axis": axes, "mean": mean.astype(np.float32),
                               "std": std.astype(np.float32)}
        return Dataset(Z, self.y, self.groups, self.name, meta)

    def _check_index(self, idx):
        if isinstance(idx, slice):
            return idx
        idx = np.asarray(idx)
        if idx.dtype == bool:
            if idx.shape != (self.n_samples,):
                raise DatasetError(f"subset: boolean mask must have shape ({self.n_samples},), "
                                   f"got {idx.shape}")
            return idx
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.size == 0:
            return idx.astype(np.intp)
        if not np.issubdtype(idx.dtype, np.integer):
            raise DatasetTypeError(f"subset: idx must be integers, a boolean mask or a slice, "
                                   f"got dtype {idx.dtype}")
        if idx.ndim != 1:
            raise DatasetError(f"subset: idx must be one-dimensional, got shape {idx.shape}")
        if idx.min() < -self.n_samples or idx.max() >= self.n_samples:
            raise DatasetIndexError(f"subset: indices must lie in [-{self.n_samples}, {self.n_samples}), "
                             f"got range [{idx.min()}, {idx.max()}]")
        return idx


def _class_labels(labels, n, where):
    """``labels`` as int64 class labels 0, 1, ..., C-1 (length n), or a one-line DatasetError."""
    y = np.asarray(labels)
    if y.shape != (n,):
        raise DatasetError(f"{where}: y must have shape ({n},) to match X, got {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    if y.dtype.kind not in "iuf":
        raise DatasetTypeError(f"{where}: y must hold integer class labels 0, 1, ..., C-1, got dtype "
                               f"{y.dtype} (text labels belong in groups)")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise DatasetError(f"{where}: y holds {int(bad.sum())} NaN/Inf label(s); class labels are "
                               f"integers 0, 1, ..., C-1")
        fractional = np.mod(y, 1) != 0
        if fractional.any():
            raise DatasetTypeError(f"{where}: y must hold integer class labels, got dtype {y.dtype} "
                                   f"with fractional values such as {float(y[fractional][0])}")
        if np.abs(y).max() >= 2.0 ** 53:
            raise DatasetError(f"{where}: y holds class label {float(np.abs(y).max()):g}, too large to be "
                               f"a class number; class labels are 0, 1, ..., C-1")
    elif y.dtype.kind == "u" and y.max() > np.iinfo(np.int64).max:
        raise DatasetError(f"{where}: y holds class labels beyond the int64 range (max {y.max()})")
    negative = y < 0
    if negative.any():
        values = np.unique(y[negative])
        raise DatasetError(f"{where}: y holds negative class label(s) {values[:5].tolist()} on "
                           f"{int(negative.sum())} sample(s); class labels must be 0, 1, ..., C-1 "
                           f"(renumber them, e.g. -1/1 -> 0/1)")
    return y.astype(np.int64)


def _label_kind(value):
    if isinstance(value, (str, np.str_)):
        return "text"
    if isinstance(value, (bytes, np.bytes_)):
        return "bytes"
    if isinstance(value, (bool, np.bool_)) or value is None:
        return type(value).__name__
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return type(value).__name__


def _group_names(labels, n, where):
    """``labels`` as length-n text group names. Labels of different kinds that would become the
    same name (the number 1 and the text "1", b"a" and "a", None and "None"), or the same number
    written two ways (1 and 1.0), are an error: they are one label spelled two ways by mistake or
    two labels, and only the user knows which."""
    raw = labels if isinstance(labels, np.ndarray) and labels.dtype != object else np.asarray(labels, dtype=object)
    if raw.shape != (n,):
        raise DatasetError(f"{where}: groups must have shape ({n},) to match X, got {raw.shape}")
    names = raw.astype(str)
    if raw.dtype != object:
        return names
    kinds, numbers = {}, {}
    for value, name in zip(raw, names):
        kinds.setdefault(str(name), {})[_label_kind(value)] = value
        if _label_kind(value) == "number":
            numbers.setdefault(float(value), {})[str(name)] = value
    for name, seen in kinds.items():
        if len(seen) > 1:
            shown = " and ".join(f"{v!r} ({kind})" for kind, v in seen.items())
            raise DatasetError(f"{where}: group labels {shown} would both read as {name!r}; give the "
                               f"labels as one kind (all text or all numbers)")
    for number, spellings in numbers.items():
        if len(spellings) > 1:
            shown = " and ".join(repr(v) for v in spellings.values())
            raise DatasetError(f"{where}: group labels {shown} are the same number but would read as "
                               f"different groups {sorted(spellings)}; write them one way")
    return names
