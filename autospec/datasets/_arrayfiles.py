"""Reading arrays from NIfTI and MATLAB files (nibabel is imported only when needed)."""
from pathlib import Path

import numpy as np

from ._errors import DataFileNotFoundError, DatasetError

NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAT_SUFFIXES = (".mat",)
_MATLAB_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                   "int64", "uint64", "logical"}


def has_suffix(path, suffixes):
    return Path(path).name.lower().endswith(suffixes)


def _as_float32(data, path):
    data = np.asarray(data)
    if data.dtype.kind == "c":
        raise DatasetError(f"{path}: the array is complex ({data.dtype}); AutoSpec reads real values only "
                           f"(save its magnitude, or its real and imaginary parts)")
    if data.dtype.kind not in "biuf":
        raise DatasetError(f"{path}: expected a real numeric array, got dtype {data.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        single = data.astype(np.float32)
    _check_float32_range(data, single, path)
    return single


def _check_float32_range(original, single, path):
    """Finite values that became Inf as float32 are an error (not reported later as 'NaN/Inf')."""
    overflow = np.isinf(single) & np.isfinite(original)
    if overflow.any():
        raise DatasetError(f"{path}: {int(overflow.sum())} value(s) beyond float32's range (|x| > 3.4e38), "
                           f"e.g. {float(original[overflow][0]):g}; rescale the data")


def read_nifti(path):
    """The voxel array of a NIfTI file as float32 (scaling applied), trailing 1-sized axes dropped.

    Complex (or RGB) voxels are an error rather than silently losing a part: save the magnitude,
    or the real and imaginary parts, as real-valued files first.
    """
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - nibabel is a declared dependency
        raise ImportError("reading NIfTI files needs nibabel: pip install nibabel") from exc
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"NIfTI file not found: {path}")
    try:
        image = nibabel.load(str(path))
        stored = image.get_data_dtype()
        if stored.kind not in "biuf":
            what = "complex" if stored.kind == "c" else "non-numeric"
            raise DatasetError(f"{path}: the NIfTI holds {what} voxels ({stored}); AutoSpec reads real "
                               f"values only (save the magnitude, or real and imaginary parts, as real files)")
        with np.errstate(over="ignore", invalid="ignore"):
            data = image.get_fdata(dtype=np.float32)
            if np.isinf(data).any():  # rare: read again in float64 to tell overflow from stored Inf
                _check_float32_range(image.get_fdata(dtype=np.float64), data, path)
    except DatasetError:
        raise
    except Exception as exc:  # nibabel raises many kinds (and gzip/zlib/OSError) for corrupt or truncated files
        raise DatasetError(f"{path}: not a readable NIfTI file ({type(exc).__name__}: {_one_line(exc)})") from None
    while data.ndim > 1 and data.shape[-1] == 1:
        data = data[..., 0]
    return data


def _one_line(exc):
    return " ".join(str(exc).split())


def read_mat(path, variable=None):
    """One numeric array from a MATLAB .mat file (v4/v5/v7 via SciPy, v7.3 via h5py).

    With ``variable=None`` the file must hold exactly one numeric array. v7.3 files are HDF5
    with MATLAB's column-major layout, so their arrays are transposed back to MATLAB's shape.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"MATLAB file not found: {path}")
    if h5py.is_hdf5(str(path)):
        arrays = _read_mat_v73(path)
    else:
        arrays = _read_mat_v5(path)
    if variable is not None:
        if variable not in arrays:
            raise DatasetError(f"{path}: no numeric variable {variable!r}; numeric variables are "
                               f"{sorted(arrays)}")
        data = arrays[variable]
    elif len(arrays) == 1:
        data = next(iter(arrays.values()))
    elif not arrays:
        raise DatasetError(f"{path}: the MATLAB file holds no numeric array")
    else:
        raise DatasetError(f"{path}: expected exactly one numeric variable, found {sorted(arrays)}; "
                           f"name the one to read with variable=...")
    return _as_float32(data, path)


def _read_mat_v5(path):
    import scipy.io

    try:
        contents = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError... for bad files
        raise DatasetError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {_one_line(exc)})") from None
    return {name: value for name, value in contents.items()
            if not name.startswith("__") and isinstance(value, np.ndarray)
            and value.dtype.kind in "biufc" and value.size}


def _read_mat_v73(path):
    import h5py

    arrays = {}
    try:
        with h5py.File(str(path), "r") as handle:
            for name, item in handle.items():
                if name.startswith("#") or not isinstance(item, h5py.Dataset):
                    continue
                matlab_class = item.attrs.get("MATLAB_class", b"double")
                if isinstance(matlab_class, bytes):
                    matlab_class = matlab_class.decode("ascii", "replace")
                if matlab_class not in _MATLAB_NUMERIC or item.attrs.get("MATLAB_empty", 0):
                    continue
                value = np.asarray(item[()])
                if value.dtype.names and set(value.dtype.names) == {"real", "imag"}:  # MATLAB's complex
                    value = value["real"] + 1j * value["imag"]
                if value.dtype.kind not in "biufc":
                    continue
                # MATLAB writes column-major: an (T, C) MATLAB array is stored as (C, T).
                arrays[name] = value.T
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({_one_line(exc)})") from None
    return arrays
