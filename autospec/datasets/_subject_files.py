"""Per-subject data files: finding them, matching them to participants, stacking their arrays."""
from pathlib import Path

import numpy as np

from ._errors import DataFileNotFoundError, DatasetError
from ._validate import check_finite


def list_files(folder_or_files, suffixes, name_contains=None, what="data"):
    """Files of a folder (not recursive) with one of ``suffixes`` and, optionally, a name part.

    A single file or a list of files is taken as given (after an existence check).
    """
    if isinstance(folder_or_files, (str, Path)) and Path(folder_or_files).is_dir():
        folder = Path(folder_or_files)
        files = sorted(p for p in folder.iterdir()
                       if p.is_file() and p.name.lower().endswith(suffixes)
                       and (name_contains is None or name_contains.lower() in p.name.lower()))
        if not files:
            part = f" whose name contains {name_contains!r}" if name_contains else ""
            raise DatasetError(f"no {what} files ({', '.join(suffixes)}){part} found in {folder}")
        return files
    if isinstance(folder_or_files, (str, Path)):
        if not Path(folder_or_files).exists():
            raise DataFileNotFoundError(f"{what} folder or file not found: {folder_or_files}")
        folder_or_files = [folder_or_files]
    files = [Path(f) for f in folder_or_files]
    if not files:
        raise DatasetError(f"the list of {what} files is empty")
    for path in files:
        if not path.is_file():
            raise DataFileNotFoundError(f"{what} file not found: {path}")
        if not path.name.lower().endswith(suffixes):
            raise DatasetError(f"{path}: unsupported {what} file type; expected {', '.join(suffixes)}")
    return files


def stack_subject_arrays(files, people, read_one, axis_names):
    """(subjects, stacked array) reading one array per file with ``read_one(path)``.

    Each file's subject is the participants-table id found in its name; every array must be
    finite, have ``len(axis_names)`` dimensions and the same shape as the first file's.
    """
    subjects, arrays, seen = [], [], {}
    for path in files:
        subject = people.subject_in_name(path.name)
        if subject in seen:
            raise DatasetError(f"subject {subject!r} matches two files: {seen[subject]} and {path}")
        seen[subject] = path
        array = read_one(path)
        where = f"{path} (subject {subject!r})"
        if array.ndim != len(axis_names):
            raise DatasetError(f"{where}: expected a {len(axis_names)}-D array "
                               f"({' x '.join(axis_names)}), got shape {array.shape}")
        if arrays and array.shape != arrays[0].shape:
            for name, got, want in zip(axis_names, array.shape, arrays[0].shape):
                if got != want:
                    raise DatasetError(f"{where}: inconsistent number of {name}: {got}, but "
                                       f"{files[0]} has {want} (shape {array.shape} vs "
                                       f"{arrays[0].shape})")
        check_finite(array, where)
        subjects.append(subject)
        arrays.append(array)
    return subjects, np.stack(arrays)
