"""ICA spatial maps reduced to one volume per subject (max over components, as in the paper):
a generator of smooth blob maps with a planted group difference, and a NIfTI loader."""
import numpy as np

from ._arrayfiles import NIFTI_SUFFIXES, read_nifti
from ._dataset import Dataset
from ._errors import DatasetError, DatasetTypeError
from ._participants import Participants
from ._subject_files import list_files, stack_subject_arrays
from ._validate import balanced_labels, check_float, check_int, group_labels, make_rng

_LOG_AMPLITUDE_SD = 0.15  # between-subject spread of a component's log peak amplitude


def _check_shape(shape):
    try:
        shape = tuple(shape)
    except TypeError:
        raise DatasetTypeError(f"shape must be a tuple of 3 ints, got {shape!r}") from None
    if len(shape) != 3:
        raise DatasetError(f"shape must have 3 entries (X, Y, Z), got {shape!r}")
    return tuple(check_int("shape entry", s, minimum=4) for s in shape)


def _brain_mask(shape):
    """An ellipsoid filling 90% of each axis: the 'brain' outside which maps are zero."""
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    return sum(g ** 2 for g in grid) <= 0.9 ** 2


def _template(rng, shape, n_components):
    """Component centres (inside the inner part of the brain) and blob widths, in voxels."""
    shape_arr = np.array(shape, dtype=float)
    centers = []
    while len(centers) < n_components:
        u = rng.uniform(-1, 1, 3)
        if np.sum(u ** 2) <= 0.55 ** 2:
            centers.append((u + 1) / 2 * (shape_arr - 1))
    widths = rng.uniform(0.08, 0.14, n_components) * min(shape)
    return np.array(centers), widths


def _squared_distances(axes, centers):
    """(K, X, Y, Z) squared distances of every voxel to each of K centres, built separably."""
    x, y, z = (a[None, :] - centers[:, i, None] for i, a in enumerate(axes))
    return x[:, :, None, None] ** 2 + y[:, None, :, None] ** 2 + z[:, None, None, :] ** 2


def make_spatial_maps(n_subjects=40, shape=(16, 16, 16), seed=0, effect=2.0, *, n_components=8,
                      noise=0.1, male_fraction=0.75):
    """Synthetic subject volumes X of shape (n_subjects, 1, *shape): the voxelwise max over
    ``n_components`` smooth Gaussian-blob component maps (with per-subject jitter of centre and
    amplitude and smooth noise of std ``noise``) inside an ellipsoid brain mask.

    The planted group difference: in schizophrenia (y=1) the peak amplitude of component 0 is
    lowered by ``effect`` times the between-subject sd of its log amplitude (so ``effect`` is a
    Cohen's d), which shows in meta["effect_region"] (voxels within one blob width of its centre).
    """
    from scipy import ndimage

    n_subjects = check_int("n_subjects", n_subjects, minimum=2)
    shape = _check_shape(shape)
    n_components = check_int("n_components", n_components)
    effect = check_float("effect", effect)
    noise = check_float("noise", noise, minimum=0.0)
    male_fraction = check_float("male_fraction", male_fraction, minimum=0.0, maximum=1.0)
    rng = make_rng(seed)

    mask = _brain_mask(shape)
    centers, widths = _template(rng, shape, n_components)
    base_amplitude = rng.uniform(2.0, 3.0, n_components)
    y = balanced_labels(n_subjects, 2, rng)
    sex = np.where(rng.random(n_subjects) < male_fraction, "M", "F")
    axes = [np.arange(s, dtype=float) for s in shape]

    X = np.empty((n_subjects, 1) + shape, dtype=np.float32)
    for i in range(n_subjects):
        log_amp = np.log(base_amplitude) + _LOG_AMPLITUDE_SD * rng.standard_normal(n_components)
        log_amp[0] -= effect * _LOG_AMPLITUDE_SD * y[i]
        subject_centers = centers + 0.3 * rng.standard_normal(centers.shape)
        dist2 = _squared_distances(axes, subject_centers)
        width = widths[:, None, None, None]
        maps = np.exp(log_amp)[:, None, None, None] * np.exp(-dist2 / (2 * width ** 2))
        if noise > 0:
            smooth = ndimage.gaussian_filter(rng.standard_normal(maps.shape), sigma=(0, 1, 1, 1))
            maps += noise * smooth / smooth.std()
        X[i, 0] = maps.max(axis=0) * mask

    dist0 = np.sqrt(_squared_distances(axes, centers[:1])[0])
    groups = np.where(y == 1, "SZ", "HC")
    meta = {
        "shape": shape, "mask": mask, "component_centers": centers, "component_widths": widths,
        "effect_component": 0, "effect_region": (dist0 <= widths[0]) & mask,
        "sex": sex, "sample_keys": ("sex",), "reduction": "max over components",
        "params": {"n_subjects": n_subjects, "shape": shape, "n_components": n_components,
                   "seed": seed, "effect": effect, "noise": noise, "male_fraction": male_fraction},
    }
    return Dataset(X, y, groups, "spatial_maps", meta)


def _read_volume(path):
    """A subject's 3-D map, or the max over the component axis of a 4-D (X, Y, Z, C) stack."""
    data = read_nifti(path)
    if data.ndim == 4:
        data = data.max(axis=3)
    if data.ndim != 3:
        raise DatasetError(f"{path}: expected a 3-D volume or a 4-D stack of component maps "
                           f"(X, Y, Z, C), got shape {data.shape}")
    return data


def load_spatial_maps(folder_or_files, participants_csv, subject_column="subject",
                      group_column="group", *, name_contains=None, sex_column="sex",
                      age_column="age"):
    """Subject spatial maps from NIfTI files: X of shape (N, 1, X, Y, Z).

    ``folder_or_files``: a folder (its ``.nii``/``.nii.gz`` files whose name contains
    ``name_contains``, if given) or a list of files. A 3-D file is used as is; a 4-D file
    (X, Y, Z, components), e.g. GIFT's ``*_component_ica_s1_.nii``, is reduced by the max over
    components, as in the paper. Subjects are matched by the participants-table id in the file
    name; all volumes must share one shape and be finite.
    """
    files = list_files(folder_or_files, NIFTI_SUFFIXES, name_contains=name_contains,
                       what="spatial map")
    people = Participants(participants_csv, subject_column, group_column, sex_column, age_column)
    subjects, X = stack_subject_arrays(files, people, _read_volume,
                                       axis_names=("X voxels", "Y voxels", "Z voxels"))
    groups, sample_meta = people.labels_for(subjects)
    y, groups = group_labels(groups)
    meta = {"shape": X.shape[1:], "files": [str(f) for f in files],
            "participants": str(participants_csv), "reduction": "max over components",
            **sample_meta}
    meta["sample_keys"] = tuple(k for k in ("subject", "sex", "age") if k in meta)
    return Dataset(X[:, None], y, groups, "spatial_maps", meta)
