"""Data sets by name: ``list_datasets()`` and ``get_dataset(name, **kwargs)``."""
import inspect

from ._errors import DatasetError, DatasetTypeError
from .cobre import load_gift_timecourses, make_cobre_ica
from .digits import load_digits, load_mnist_idx
from .freesurfer import load_aseg_stats, load_volume_csv, make_freesurfer
from .sinusoids import make_sinusoids
from .spatial_maps import load_spatial_maps, make_spatial_maps

_DATASETS = {
    "digits": (load_digits, "scikit-learn's bundled 8x8 handwritten digits (MNIST stand-in)"),
    "mnist": (load_mnist_idx, "MNIST from IDX files (images_path, labels_path)"),
    "sinusoids": (make_sinusoids, "noisy sines, class = frequency band; X (N, T, 1)"),
    "freesurfer": (make_freesurfer, "synthetic aseg volumes, SZ vs HC; X (N, regions)"),
    "freesurfer_aseg": (load_aseg_stats, "FreeSurfer aseg.stats files + participants table"),
    "freesurfer_csv": (load_volume_csv, "subjects x regions CSV with a group column"),
    "cobre_ica": (make_cobre_ica, "synthetic NeuroMark ICA time courses, SZ vs HC; X (N, T, C)"),
    "gift_timecourses": (load_gift_timecourses, "GIFT *timecourses* files (.nii/.mat) + participants"),
    "spatial_maps": (make_spatial_maps, "synthetic max-over-components ICA maps; X (N, 1, X, Y, Z)"),
    "gift_spatial_maps": (load_spatial_maps, "NIfTI subject maps (3-D, or 4-D max over components)"),
}


def list_datasets(details=False):
    """Names of the data sets ``get_dataset`` knows (sorted), or {name: description} with ``details``."""
    if details:
        return {name: _DATASETS[name][1] for name in sorted(_DATASETS)}
    return sorted(_DATASETS)


def dataset_function(name):
    """The function that builds or loads the data set called ``name`` (its keyword arguments are
    the data set's settings)."""
    if name not in _DATASETS:
        raise DatasetError(f"unknown data set {name!r}; valid names are {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name][0]


def get_dataset(name, **kwargs):
    """Build or load the data set called ``name`` with the keyword arguments of its function."""
    factory = dataset_function(name)
    signature = inspect.signature(factory)
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        raise DatasetTypeError(f"get_dataset({name!r}): {exc}; {factory.__name__} takes "
                               f"{', '.join(signature.parameters)}") from None
    return factory(**kwargs)
