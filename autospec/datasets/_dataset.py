"""The one return type of every data set generator and loader."""
from dataclasses import dataclass, field

import numpy as np


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
        X = np.asarray(self.X)
        if X.ndim < 2:
            raise ValueError(f"Dataset {self.name!r}: X must have a sample axis and at least one "
                             f"feature axis, got shape {X.shape}")
        if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
            raise TypeError(f"Dataset {self.name!r}: X must be real numbers, got dtype {X.dtype}")
        X = X.astype(np.float32, copy=False)
        if not np.all(np.isfinite(X)):
            raise ValueError(f"Dataset {self.name!r}: X holds {int(np.sum(~np.isfinite(X)))} "
                             f"NaN/Inf value(s) (as float32)")
        n = X.shape[0]
        y = np.asarray(self.y)
        if y.shape != (n,):
            raise ValueError(f"Dataset {self.name!r}: y must have shape ({n},) to match X, "
                             f"got {y.shape}")
        if not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
                raise TypeError(f"Dataset {self.name!r}: y must hold integer class labels, "
                                f"got dtype {y.dtype}")
        groups = np.asarray(self.groups).astype(str)
        if groups.shape != (n,):
            raise ValueError(f"Dataset {self.name!r}: groups must have shape ({n},) to match X, "
                             f"got {groups.shape}")
        meta = dict(self.meta)
        for key in meta.get("sample_keys", ()):
            if key not in meta:
                raise ValueError(f"Dataset {self.name!r}: meta['sample_keys'] names {key!r}, "
                                 f"which is not in meta")
            meta[key] = np.asarray(meta[key])
            if meta[key].ndim < 1 or len(meta[key]) != n:
                raise ValueError(f"Dataset {self.name!r}: per-sample meta[{key!r}] has shape "
                                 f"{meta[key].shape}, expected length {n}")
        object.__setattr__(self, "X", X)
        object.__setattr__(self, "y", y.astype(np.int64, copy=False))
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
            raise TypeError(f"standardize: axis must be an int or a tuple of ints, "
                            f"got {axis!r}") from None
        if 0 not in axes or any(a >= self.X.ndim for a in axes):
            raise ValueError(f"standardize: axis must include the sample axis 0 and lie within "
                             f"X.ndim={self.X.ndim}, got {axis!r}")
        if self.n_samples < 2:
            raise ValueError("standardize needs at least 2 samples")
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
                raise ValueError(f"subset: boolean mask must have shape ({self.n_samples},), "
                                 f"got {idx.shape}")
            return idx
        if idx.ndim == 0:
            idx = idx.reshape(1)
        if idx.size == 0:
            return idx.astype(np.intp)
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"subset: idx must be integers, a boolean mask or a slice, "
                            f"got dtype {idx.dtype}")
        if idx.ndim != 1:
            raise ValueError(f"subset: idx must be one-dimensional, got shape {idx.shape}")
        if idx.min() < -self.n_samples or idx.max() >= self.n_samples:
            raise IndexError(f"subset: indices must lie in [-{self.n_samples}, {self.n_samples}), "
                             f"got range [{idx.min()}, {idx.max()}]")
        return idx
