"""COBRE-style ICA time courses: NeuroMark-like components from a latent band-limited model,
with a planted schizophrenia effect, and a loader for GIFT ``*timecourses*`` outputs."""
import numpy as np

from ._arrayfiles import MAT_SUFFIXES, NIFTI_SUFFIXES, has_suffix, read_mat, read_nifti
from ._dataset import Dataset
from ._errors import DatasetError, DatasetTypeError
from ._participants import Participants
from ._subject_files import list_files, stack_subject_arrays
from ._validate import balanced_labels, check_float, check_int, group_labels, make_rng

# The seven NeuroMark functional domains and their real sizes (Du et al. 2020): 53 components.
NEUROMARK_DOMAINS = (("SC", 5), ("AUD", 2), ("SM", 9), ("VIS", 9), ("CC", 17), ("DM", 7), ("CB", 4))
DOMAIN_NAMES = tuple(name for name, _ in NEUROMARK_DOMAINS)

# Latent domain-to-domain correlation of controls (order SC, AUD, SM, VIS, CC, DM, CB):
# sensory domains couple positively, subcortex is anticorrelated with them, DM with CC.
_HC_COUPLING = {
    ("SC", "AUD"): -0.25, ("SC", "SM"): -0.25, ("SC", "VIS"): -0.2, ("SC", "CC"): 0.1,
    ("SC", "CB"): 0.3, ("AUD", "SM"): 0.5, ("AUD", "VIS"): 0.3, ("AUD", "CC"): 0.2,
    ("AUD", "DM"): -0.1, ("SM", "VIS"): 0.4, ("SM", "CC"): 0.2, ("SM", "DM"): -0.15,
    ("SM", "CB"): 0.2, ("VIS", "CC"): 0.1, ("VIS", "DM"): -0.1, ("VIS", "CB"): 0.1,
    ("CC", "DM"): -0.2,
}
# Per unit of `effect`, schizophrenia shifts these couplings (subcortical-sensory
# hyperconnectivity, weaker sensory-sensory coupling, as reported for COBRE/FBIRN) ...
_SZ_COUPLING_SHIFT = {
    ("SC", "AUD"): 0.3, ("SC", "SM"): 0.3, ("SC", "VIS"): 0.3,
    ("AUD", "SM"): -0.15, ("AUD", "VIS"): -0.15, ("SM", "VIS"): -0.15,
}
# ... and scales the fluctuation amplitude of these domains' components by exp(-0.1 * effect).
_SZ_AMPLITUDE_DOMAINS = ("AUD", "SM", "VIS")
_SZ_LOG_AMPLITUDE = -0.1


def neuromark_components(n_components=53):
    """(component names, domain of each component): NeuroMark domain sizes for 53 components,
    the same proportions (at least one per domain) otherwise."""
    n_components = check_int("n_components", n_components, minimum=len(NEUROMARK_DOMAINS))
    sizes = np.array([size for _, size in NEUROMARK_DOMAINS])
    if n_components != sizes.sum():
        # Largest-remainder apportionment with one component guaranteed per domain.
        extra = n_components - len(sizes)
        quota = extra * sizes / sizes.sum()
        counts = np.floor(quota).astype(int)
        counts[np.argsort(counts - quota)[: extra - counts.sum()]] += 1
        sizes = counts + 1
    names, domains = [], []
    for (domain, _), size in zip(NEUROMARK_DOMAINS, sizes):
        names += [f"{domain}{k + 1:02d}" for k in range(size)]
        domains += [domain] * size
    return names, domains


def domain_correlation(effect=0.0):
    """The 7x7 latent domain correlation of controls (effect=0) or schizophrenia (``effect``)."""
    index = {name: i for i, name in enumerate(DOMAIN_NAMES)}
    R = np.eye(len(DOMAIN_NAMES))
    for (a, b), r in _HC_COUPLING.items():
        R[index[a], index[b]] = R[index[b], index[a]] = r
    for (a, b), dr in _SZ_COUPLING_SHIFT.items():
        R[index[a], index[b]] += effect * dr
        R[index[b], index[a]] += effect * dr
    if np.linalg.eigvalsh(R).min() <= 1e-6:
        raise DatasetError(f"effect={effect} makes the schizophrenia domain correlation matrix "
                           f"non positive definite; use |effect| <= 1.5")
    return R


def _band_limited_noise(rng, shape, n_timepoints, tr, band):
    """Unit-variance Gaussian noise band-passed to ``band`` Hz along axis 1 (Butterworth, zero phase)."""
    from scipy import signal  # imported here: scipy.signal alone takes ~0.5 s to import

    burn = 64  # discarded on both sides so the filter's edge transients never show
    sos = signal.butter(4, band, btype="bandpass", fs=1.0 / tr, output="sos")
    white = rng.standard_normal((shape[0], n_timepoints + 2 * burn) + tuple(shape[1:]))
    noise = signal.sosfiltfilt(sos, white, axis=1)[:, burn:burn + n_timepoints]
    noise -= noise.mean(axis=1, keepdims=True)
    noise /= noise.std(axis=1, keepdims=True) + 1e-12
    return noise


def make_cobre_ica(n_subjects=40, n_components=53, n_timepoints=150, seed=0, effect=1.0, *,
                   tr=2.0, band=(0.01, 0.1), noise=0.3, male_fraction=0.75):
    """Synthetic ICA time courses X of shape (n_subjects, n_timepoints, n_components).

    Each subject has one band-limited latent signal per NeuroMark domain (SC, AUD, SM, VIS, CC,
    DM, CB), mixed with the group's domain correlation; a component is its domain's signal
    (loading 0.6-0.85) plus its own band-limited fluctuation, times a per-component amplitude,
    plus white noise of std ``noise``. Schizophrenia (half the subjects, y=1) shifts the
    subcortical-sensory and sensory-sensory couplings by ``effect`` units and lowers sensory
    amplitudes (see ``domain_correlation``); ``effect=0`` plants no difference.
    meta: component names and domains, per-subject "sex", "tr", both correlation matrices.
    """
    n_subjects = check_int("n_subjects", n_subjects, minimum=2)
    n_timepoints = check_int("n_timepoints", n_timepoints, minimum=2)
    effect = check_float("effect", effect)
    tr = check_float("tr", tr, minimum=1e-3)
    noise = check_float("noise", noise, minimum=0.0)
    male_fraction = check_float("male_fraction", male_fraction, minimum=0.0, maximum=1.0)
    try:
        low, high = (float(f) for f in band)
    except (TypeError, ValueError):
        raise DatasetTypeError(f"band must be a pair (low, high) in Hz, got {band!r}") from None
    if not 0 < low < high < 0.5 / tr:
        raise DatasetError(f"band must satisfy 0 < low < high < Nyquist = {0.5 / tr} Hz "
                           f"(tr={tr} s), got {band!r}")
    names, domains = neuromark_components(n_components)
    rng = make_rng(seed)
    domain_index = np.array([DOMAIN_NAMES.index(d) for d in domains])
    C = len(names)

    # Fixed "template" properties of the components, then per-subject draws.
    loading = rng.uniform(0.6, 0.85, C)
    base_amplitude = rng.uniform(0.8, 1.2, C)
    y = balanced_labels(n_subjects, 2, rng)
    sex = np.where(rng.random(n_subjects) < male_fraction, "M", "F")
    chol = np.stack([np.linalg.cholesky(domain_correlation(0.0)),
                     np.linalg.cholesky(domain_correlation(effect))])

    latent = _band_limited_noise(rng, (n_subjects, len(DOMAIN_NAMES)), n_timepoints, tr, (low, high))
    latent = np.einsum("ntk,njk->ntj", latent, chol[y])  # per-subject domain mixing
    own = _band_limited_noise(rng, (n_subjects, C), n_timepoints, tr, (low, high))
    log_amp = np.log(base_amplitude) + 0.1 * rng.standard_normal((n_subjects, C))
    sensory = np.isin(np.array(domains), _SZ_AMPLITUDE_DOMAINS)
    log_amp += _SZ_LOG_AMPLITUDE * effect * (y[:, None] == 1) * sensory
    X = np.exp(log_amp)[:, None, :] * (loading * latent[:, :, domain_index]
                                       + np.sqrt(1 - loading ** 2) * own)
    X += noise * rng.standard_normal(X.shape)

    groups = np.where(y == 1, "SZ", "HC")
    meta = {
        "component_names": names, "component_domains": domains, "tr": tr, "band_hz": (low, high),
        "sex": sex, "sample_keys": ("sex",),
        "domain_correlation": {"HC": domain_correlation(0.0), "SZ": domain_correlation(effect)},
        "params": {"n_subjects": n_subjects, "n_components": C, "n_timepoints": n_timepoints,
                   "seed": seed, "effect": effect, "noise": noise, "male_fraction": male_fraction},
    }
    return Dataset(X, y, groups, "cobre_ica", meta)


def _read_timecourses(variable):
    def read(path):
        if has_suffix(path, MAT_SUFFIXES):
            return read_mat(path, variable)
        return read_nifti(path)
    return read


def load_gift_timecourses(folder, participants_csv, subject_column="subject",
                          group_column="group", *, variable=None, tr=None, sex_column="sex",
                          age_column="age"):
    """GIFT subject time courses: files in ``folder`` whose name contains "timecourses".

    Each file (NIfTI ``.nii``/``.nii.gz`` or MATLAB ``.mat``, v7.3 included) holds one subject's
    array of shape (T, C); ``variable`` names the .mat variable when a file holds several. The
    subject is the participants-table id that appears in the file name (e.g. ``sub001`` in
    ``cobre_sub001_timecourses_ica_s1_.nii``). All subjects must share T and C and hold finite
    values. X has shape (N, T, C); groups "SZ"/"HC" from ``group_column``.
    """
    files = list_files(folder, NIFTI_SUFFIXES + MAT_SUFFIXES, name_contains="timecourses",
                       what="GIFT time course")
    people = Participants(participants_csv, subject_column, group_column, sex_column, age_column)
    subjects, X = stack_subject_arrays(files, people, _read_timecourses(variable),
                                       axis_names=("time points", "components"))
    groups, sample_meta = people.labels_for(subjects)
    y, groups = group_labels(groups)
    meta = {"component_names": [f"IC{k + 1:02d}" for k in range(X.shape[2])],
            "files": [str(f) for f in files], "participants": str(participants_csv),
            "tr": tr, **sample_meta}
    meta["sample_keys"] = tuple(k for k in ("subject", "sex", "age") if k in meta)
    return Dataset(X, y, groups, "cobre_ica", meta)
