"""Group labels -> the sample subsets whose gradients the paper compares (eq. 5)."""
import numpy as np

from minigrad.backend import to_numpy

from .errors import AutoSpecError


class GroupError(AutoSpecError, ValueError):
    """Group labels that do not fit the batch."""


def normalize_labels(labels, n_samples):
    """Length-N labels (array, list, Tensor; any backend) as a host array of str."""
    if labels is None:
        return None
    arr = to_numpy(labels)
    arr = np.asarray(arr)
    if arr.ndim != 1:
        raise GroupError(f"group labels must be a 1-D array with one label per sample, got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise GroupError(f"got {arr.shape[0]} group labels but the batch has {n_samples} samples; "
                         "pass one label per sample of the batch that went through backward")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise GroupError("group labels contain NaN or Inf")
    return arr.astype(str)


def normalize_sample_ids(ids, n_samples):
    """Length-N dataset indices of a batch's samples (array, list, Tensor) as a host int64 array."""
    arr = np.asarray(to_numpy(ids))
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise GroupError(f"samples must be the {n_samples} dataset indices of the batch's samples, "
                         f"got shape {arr.shape}")
    if arr.dtype.kind not in "iu" or (arr.size and arr.min() < 0):
        raise GroupError(f"samples must be dataset indices (ints >= 0), got dtype {arr.dtype}"
                         + (f" with minimum {arr.min()}" if arr.dtype.kind in "iu" else ""))
    return arr.astype(np.int64)


def subsets(labels, xp=np):
    """[(label, selector)] per distinct label, in sorted order.

    A selector is a slice when the group's samples are contiguous (a view, no copy),
    else an index array on the backend ``xp``.
    """
    out = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if idx[-1] - idx[0] + 1 == idx.size:
            out.append((str(label), slice(int(idx[0]), int(idx[-1]) + 1)))
        else:
            out.append((str(label), xp.asarray(idx)))
    return out


def selector_size(selector, n):
    """Number of samples a selector picks out of n."""
    if isinstance(selector, slice):
        return len(range(*selector.indices(n)))
    return int(selector.shape[0])
