"""Shared checks for generator arguments, loaded arrays and clinical labels."""
import numbers
import re

import numpy as np

from ._errors import DatasetError, DatasetTypeError

GROUP_NAMES = ("HC", "SZ")  # y = 0 for controls, 1 for schizophrenia

_GROUP_SPELLINGS = {
    "HC": {"hc", "control", "controls", "healthy control", "healthy controls", "healthy",
           "healthy volunteer", "nc", "normal control", "normal", "con", "ctrl", "0"},
    "SZ": {"sz", "scz", "schz", "schizophrenia", "schizophrenic", "patient", "patients",
           "case", "1"},
}
_SEX_SPELLINGS = {"M": {"m", "male", "man"}, "F": {"f", "female", "woman"}}


def check_int(name, value, minimum=1):
    """``value`` as a Python int >= ``minimum``, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DatasetTypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise DatasetError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(name, value, minimum=None, maximum=None):
    """``value`` as a finite float within the given bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DatasetTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise DatasetError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise DatasetError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise DatasetError(f"{name} must be <= {maximum}, got {value}")
    return value


def make_rng(seed):
    """A NumPy Generator for an integer ``seed`` (generators are deterministic per seed)."""
    return np.random.default_rng(check_int("seed", seed, minimum=0))


def balanced_labels(n, n_classes, rng):
    """``n`` labels in ``range(n_classes)``, as equal in count as possible, in random order."""
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


def check_finite(array, where):
    """Raise a ValueError naming ``where`` when ``array`` holds NaN or Inf values."""
    bad = ~np.isfinite(array)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DatasetError(f"{where}: {int(bad.sum())} NaN/Inf value(s), first at index {first}")


def _spelling_key(label):
    text = str(label).strip().lower()
    if re.fullmatch(r"[+-]?\d+(\.0*)?", text):  # "1", "1.0", "0" from numeric columns
        text = str(int(float(text)))
    return re.sub(r"[\s_\-]+", " ", text)


def normalize_group(label, where=""):
    """Map a diagnosis label to "SZ" or "HC" (SZ/schizophrenia/patient/1 vs HC/control/0)."""
    key = _spelling_key(label)
    for name, spellings in _GROUP_SPELLINGS.items():
        if key in spellings:
            return name
    raise DatasetError(f"{where}unknown group label {label!r}; expected one of SZ, schizophrenia, "
                       f"patient, case, 1 (schizophrenia) or HC, control, healthy, 0 (control)")


def normalize_sex(label, where=""):
    """Map a sex label to "M" or "F" (numeric codes are ambiguous and rejected)."""
    key = _spelling_key(label)
    for name, spellings in _SEX_SPELLINGS.items():
        if key in spellings:
            return name
    raise DatasetError(f"{where}unknown sex label {label!r}; expected M/male or F/female")


def group_labels(groups):
    """(y, groups) for a sequence of "HC"/"SZ" names: y = 0 for HC, 1 for SZ."""
    groups = np.asarray(groups, dtype=str)
    y = (groups == "SZ").astype(np.int64)
    return y, groups
