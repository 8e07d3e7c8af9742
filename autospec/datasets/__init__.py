"""Data sets of the paper's experiment battery, generated or loaded into one ``Dataset`` type.

Synthetic generators (deterministic per ``seed``, small defaults for quick CPU runs):
``load_digits`` (bundled with scikit-learn), ``make_sinusoids``, ``make_freesurfer``,
``make_cobre_ica``, ``make_spatial_maps``. Loaders for real data: ``load_mnist_idx``,
``load_aseg_stats``, ``load_volume_csv``, ``load_gift_timecourses``, ``load_spatial_maps``.

Bad files, arguments and labels raise :class:`DatasetError` (an ``autospec.errors.AutoSpecError``
and a ValueError; ``DatasetTypeError``, ``DataFileNotFoundError`` and ``DatasetIndexError`` are
its kinds that also derive from TypeError, FileNotFoundError and IndexError), in one line.
"""
from ._dataset import Dataset
from ._errors import DataFileNotFoundError, DatasetError, DatasetIndexError, DatasetTypeError
from ._registry import dataset_function, get_dataset, list_datasets
from .cobre import NEUROMARK_DOMAINS, load_gift_timecourses, make_cobre_ica, neuromark_components
from .digits import load_digits, load_mnist_idx, read_idx
from .freesurfer import ASEG_REGIONS, load_aseg_stats, load_volume_csv, make_freesurfer, read_aseg_stats
from .sinusoids import make_sinusoids
from .spatial_maps import load_spatial_maps, make_spatial_maps

__all__ = [
    "Dataset", "DatasetError", "DatasetTypeError", "DataFileNotFoundError", "DatasetIndexError",
    "get_dataset", "list_datasets", "dataset_function",
    "load_digits", "load_mnist_idx", "read_idx", "make_sinusoids",
    "make_freesurfer", "load_aseg_stats", "load_volume_csv", "read_aseg_stats", "ASEG_REGIONS",
    "make_cobre_ica", "load_gift_timecourses", "neuromark_components", "NEUROMARK_DOMAINS",
    "make_spatial_maps", "load_spatial_maps",
]
