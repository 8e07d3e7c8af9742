"""FreeSurfer-style subcortical volumes (aseg): a generator with a planted schizophrenia effect,
and loaders for real ``aseg.stats`` files and subjects x regions CSV tables."""
import re
from pathlib import Path

import numpy as np

from ._dataset import Dataset
from ._errors import DataFileNotFoundError, DatasetError
from ._participants import Participants, find_column, read_table
from ._validate import (balanced_labels, check_float, check_int, group_labels,
                        make_rng, normalize_group, normalize_sex)

# (SegId, StructName, mean volume mm^3 at ICV 1.5e6 and age 40, residual log-sd,
#  ICV allometry exponent, log-volume change per year of age, SZ effect weight).
# Means/spreads follow typical adult FreeSurfer aseg output; SZ weights follow the relative
# sizes of the ENIGMA schizophrenia subcortical effects (van Erp et al. 2016), hippocampus = -1.
_ASEG_REGIONS = (
    (4, "Left-Lateral-Ventricle", 8500, 0.45, 1.0, 0.015, 0.8),
    (5, "Left-Inf-Lat-Vent", 400, 0.45, 1.0, 0.015, 0.0),
    (7, "Left-Cerebellum-White-Matter", 14500, 0.12, 0.8, -0.001, 0.0),
    (8, "Left-Cerebellum-Cortex", 52000, 0.10, 0.8, -0.002, 0.0),
    (10, "Left-Thalamus", 7600, 0.09, 0.8, -0.003, -0.65),
    (11, "Left-Caudate", 3500, 0.11, 0.8, -0.001, 0.0),
    (12, "Left-Putamen", 4900, 0.11, 0.8, -0.003, 0.0),
    (13, "Left-Pallidum", 2000, 0.12, 0.8, -0.002, 0.45),
    (14, "3rd-Ventricle", 1050, 0.35, 1.0, 0.012, 0.5),
    (15, "4th-Ventricle", 1750, 0.30, 1.0, 0.004, 0.0),
    (16, "Brain-Stem", 21500, 0.10, 0.8, -0.001, 0.0),
    (17, "Left-Hippocampus", 4200, 0.09, 0.8, -0.003, -1.0),
    (18, "Left-Amygdala", 1600, 0.12, 0.8, -0.002, -0.7),
    (24, "CSF", 1150, 0.25, 1.0, 0.008, 0.0),
    (26, "Left-Accumbens-area", 550, 0.18, 0.8, -0.004, -0.55),
    (28, "Left-VentralDC", 4000, 0.10, 0.8, -0.001, 0.0),
    (31, "Left-choroid-plexus", 750, 0.25, 0.8, 0.005, 0.0),
    (43, "Right-Lateral-Ventricle", 7800, 0.45, 1.0, 0.015, 0.8),
    (44, "Right-Inf-Lat-Vent", 350, 0.45, 1.0, 0.015, 0.0),
    (46, "Right-Cerebellum-White-Matter", 14500, 0.12, 0.8, -0.001, 0.0),
    (47, "Right-Cerebellum-Cortex", 52500, 0.10, 0.8, -0.002, 0.0),
    (49, "Right-Thalamus", 7400, 0.09, 0.8, -0.003, -0.65),
    (50, "Right-Caudate", 3600, 0.11, 0.8, -0.001, 0.0),
    (51, "Right-Putamen", 4900, 0.11, 0.8, -0.003, 0.0),
    (52, "Right-Pallidum", 1950, 0.12, 0.8, -0.002, 0.45),
    (53, "Right-Hippocampus", 4300, 0.09, 0.8, -0.003, -1.0),
    (54, "Right-Amygdala", 1750, 0.12, 0.8, -0.002, -0.7),
    (58, "Right-Accumbens-area", 600, 0.18, 0.8, -0.004, -0.55),
    (60, "Right-VentralDC", 3950, 0.10, 0.8, -0.001, 0.0),
    (63, "Right-choroid-plexus", 800, 0.25, 0.8, 0.005, 0.0),
    (77, "WM-hypointensities", 1600, 0.60, 0.5, 0.025, 0.0),
    (85, "Optic-Chiasm", 200, 0.25, 0.8, 0.0, 0.0),
    (251, "CC_Posterior", 950, 0.15, 0.8, -0.001, 0.0),
    (252, "CC_Mid_Posterior", 480, 0.18, 0.8, -0.001, 0.0),
    (253, "CC_Central", 470, 0.18, 0.8, -0.001, 0.0),
    (254, "CC_Mid_Anterior", 480, 0.18, 0.8, -0.001, 0.0),
    (255, "CC_Anterior", 880, 0.15, 0.8, -0.001, 0.0),
)
ASEG_REGIONS = tuple(row[1] for row in _ASEG_REGIONS)
ASEG_SEG_IDS = tuple(row[0] for row in _ASEG_REGIONS)

_ICV_REF = 1.5e6
_LOG_ICV_MEAN = {"M": np.log(1.60e6), "F": np.log(1.40e6)}
_LOG_ICV_SD = 0.08
_AGE_RANGE = (18.0, 65.0)
_AGE_REF = 40.0
_SHARED_FACTOR = 0.3  # fraction of residual variance shared by all regions of a subject


def make_freesurfer(n=100, seed=0, effect=0.8, *, male_fraction=0.75):
    """Synthetic FreeSurfer aseg volumes: X (n, 37) in mm^3, y 0/1 = HC/SZ (balanced).

    log volume = log mean + allometric ICV scaling + linear age change + correlated residual,
    with sex acting through ICV. SZ subjects get a shift of ``effect`` (Cohen's d on the
    region's log volume) times the region's weight: smaller hippocampus (weight 1), amygdala,
    thalamus, accumbens; larger lateral/third ventricles and pallidum. ``effect=0`` plants none.
    meta: region names and SegIds, per-subject "sex", "age", "icv", the effect pattern.
    """
    n = check_int("n", n, minimum=2)
    effect = check_float("effect", effect)
    male_fraction = check_float("male_fraction", male_fraction, minimum=0.0, maximum=1.0)
    rng = make_rng(seed)
    table = np.array([row[2:] for row in _ASEG_REGIONS], dtype=np.float64)
    mean, resid_sd, icv_exp, age_slope, weight = table.T

    y = balanced_labels(n, 2, rng)
    sex = np.where(rng.random(n) < male_fraction, "M", "F")
    age = rng.uniform(*_AGE_RANGE, n)
    log_icv = np.array([_LOG_ICV_MEAN[s] for s in sex]) + _LOG_ICV_SD * rng.standard_normal(n)
    shared = rng.standard_normal((n, 1))
    own = rng.standard_normal((n, len(mean)))
    residual = np.sqrt(_SHARED_FACTOR) * shared + np.sqrt(1 - _SHARED_FACTOR) * own

    # Total between-subject log-sd of each region (residual + ICV + age), so that `effect`
    # is a Cohen's d on the raw log volume, not on an ICV/age-adjusted one.
    dmean = _LOG_ICV_MEAN["M"] - _LOG_ICV_MEAN["F"]
    var_log_icv = _LOG_ICV_SD ** 2 + male_fraction * (1 - male_fraction) * dmean ** 2
    var_age = (_AGE_RANGE[1] - _AGE_RANGE[0]) ** 2 / 12
    total_sd = np.sqrt(resid_sd ** 2 + icv_exp ** 2 * var_log_icv + age_slope ** 2 * var_age)
    shift = effect * weight * total_sd

    log_volume = (np.log(mean) + icv_exp * (log_icv[:, None] - np.log(_ICV_REF))
                  + age_slope * (age[:, None] - _AGE_REF) + resid_sd * residual
                  + shift * y[:, None])
    groups = np.where(y == 1, "SZ", "HC")
    meta = {
        "regions": list(ASEG_REGIONS), "seg_ids": list(ASEG_SEG_IDS), "units": "mm^3",
        "sex": sex, "age": age, "icv": np.exp(log_icv), "sample_keys": ("sex", "age", "icv"),
        "effect_pattern": dict(zip(ASEG_REGIONS, weight.tolist())),
        "params": {"n": n, "seed": seed, "effect": effect, "male_fraction": male_fraction},
    }
    return Dataset(np.exp(log_volume), y, groups, "freesurfer", meta)


def read_aseg_stats(path):
    """(volumes {StructName: Volume_mm3}, measures {short name: value}) of one aseg.stats file.

    Columns are taken from the ``# ColHeaders`` line; ``# Measure`` lines (e.g. eTIV) are kept.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"aseg.stats file not found: {path}")
    columns, volumes, measures = None, {}, {}
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            body = text[1:].strip()
            if body.startswith("ColHeaders"):
                columns = body.split()[1:]
                missing = [c for c in ("StructName", "Volume_mm3") if c not in columns]
                if missing:
                    raise DatasetError(f"{path}, line {line_no}: '# ColHeaders' lacks column(s) "
                                       f"{missing}; found {columns}")
            elif body.startswith("Measure"):
                parts = [p.strip() for p in body[len("Measure"):].split(",")]
                if len(parts) >= 4:
                    try:
                        measures[parts[1]] = float(parts[3])
                    except ValueError:
                        pass  # measures are extras; only the table is required
            continue
        if columns is None:
            raise DatasetError(f"{path}, line {line_no}: table row with no '# ColHeaders' line "
                               f"before it (is this a FreeSurfer aseg.stats file?)")
        fields = text.split()
        if len(fields) != len(columns):
            raise DatasetError(f"{path}, line {line_no}: {len(fields)} fields, expected "
                               f"{len(columns)} ({' '.join(columns)})")
        name = fields[columns.index("StructName")]
        text_volume = fields[columns.index("Volume_mm3")]
        try:
            volume = float(text_volume)
        except ValueError:
            raise DatasetError(f"{path}, line {line_no}: Volume_mm3 {text_volume!r} of {name} "
                               f"is not a number") from None
        if not np.isfinite(volume) or volume < 0:
            raise DatasetError(f"{path}, line {line_no}: Volume_mm3 of {name} is {volume}, "
                               f"expected a finite volume >= 0")
        if name in volumes:
            raise DatasetError(f"{path}, line {line_no}: structure {name!r} appears twice")
        volumes[name] = volume
    if columns is None:
        raise DatasetError(f"{path}: no '# ColHeaders' line; not a FreeSurfer aseg.stats file")
    if not volumes:
        raise DatasetError(f"{path}: the aseg.stats table has no rows")
    return volumes, measures


def subject_from_stats_path(path):
    """Subject id of ``SUBJ/stats/aseg.stats`` (the subject folder) or ``SUBJ_aseg.stats`` (the name)."""
    path = Path(path)
    if path.name == "aseg.stats":
        folder = path.parent
        return folder.parent.name if folder.name == "stats" else folder.name
    stem = path.name[: -len(".stats")] if path.name.endswith(".stats") else path.stem
    return re.sub(r"[._\-]?aseg$", "", stem) or stem


def _stats_files(folder_or_files):
    if isinstance(folder_or_files, (str, Path)):
        source = Path(folder_or_files)
        if source.is_dir():
            files = sorted(source.rglob("*aseg.stats"))
            if not files:
                raise DatasetError(f"no '*aseg.stats' files found under {source}")
            return files
        if not source.exists():
            raise DataFileNotFoundError(f"aseg.stats folder or file not found: {source}")
        return [source]
    files = [Path(f) for f in folder_or_files]
    if not files:
        raise DatasetError("load_aseg_stats: the list of aseg.stats files is empty")
    return files


def load_aseg_stats(folder_or_files, participants_csv, subject_column="subject",
                    group_column="group", *, regions=None, sex_column="sex", age_column="age"):
    """Regional volumes from FreeSurfer ``aseg.stats`` files, one per subject, with group labels.

    ``folder_or_files``: a SUBJECTS_DIR-like folder (searched for ``*aseg.stats``), one file, or
    a list of files. Subject ids come from ``SUBJ/stats/aseg.stats`` folder names or from file
    names like ``SUBJ_aseg.stats``; each must have a row in ``participants_csv`` whose group
    column says SZ or HC. ``regions``: the structures to keep (default: all, and every subject
    must then have the same ones). meta["icv"] holds eTIV when every file reports it.
    """
    files = _stats_files(folder_or_files)
    people = Participants(participants_csv, subject_column, group_column, sex_column, age_column)
    subjects, tables, icv, seen = [], [], [], {}
    for path in files:
        subject = people.resolve(subject_from_stats_path(path), path)
        if subject in seen:
            raise DatasetError(f"subject {subject!r} has two aseg.stats files: {seen[subject]} and {path}")
        seen[subject] = path
        volumes, measures = read_aseg_stats(path)
        subjects.append(subject)
        tables.append(volumes)
        icv.append(measures.get("eTIV", measures.get("ICV", np.nan)))

    wanted = list(regions) if regions is not None else list(tables[0])
    if regions is None:
        union = set().union(*tables)
        wanted += [r for r in sorted(union) if r not in tables[0]]
    for subject, path, volumes in zip(subjects, files, tables):
        missing = [r for r in wanted if r not in volumes]
        if missing:
            raise DatasetError(f"subject {subject!r} ({path}) lacks region(s) {missing} that "
                               f"{'were asked for' if regions is not None else 'other subjects have'}")
    X = np.array([[volumes[r] for r in wanted] for volumes in tables], dtype=np.float64)
    groups, sample_meta = people.labels_for(subjects)
    y, groups = group_labels(groups)
    meta = {"regions": wanted, "units": "mm^3", "files": [str(f) for f in files],
            "participants": str(participants_csv), **sample_meta}
    icv = np.array(icv)
    if np.all(np.isfinite(icv)):
        meta["icv"] = icv
    meta["sample_keys"] = tuple(k for k in ("subject", "sex", "age", "icv") if k in meta)
    return Dataset(X, y, groups, "freesurfer", meta)


def load_volume_csv(path, group_column="group", subject_column="subject", *, regions=None,
                    sex_column="sex", age_column="age"):
    """A subjects x regions table (CSV/TSV): one row per subject, group labels in ``group_column``.

    Region columns are every column except the subject, group, sex and age columns, unless
    ``regions`` names them. Every value must be a finite number.
    """
    path = Path(path)
    header, rows = read_table(path, what="volume table")
    subj_col = find_column(header, subject_column, path)
    group_col = find_column(header, group_column, path)
    sex_col = find_column(header, sex_column, path, required=False)
    age_col = find_column(header, age_column, path, required=False)
    if regions is None:
        regions = [c for c in header if c not in (subj_col, group_col, sex_col, age_col)]
    else:
        regions = [find_column(header, r, path) for r in regions]
    if not regions:
        raise DatasetError(f"{path}: no region columns besides {subj_col!r} and {group_col!r}")
    subjects, groups, sex, age, seen = [], [], [], [], set()
    X = np.empty((len(rows), len(regions)))
    for i, row in enumerate(rows):
        subject = row[subj_col]
        where = f"{path}, subject {subject!r}: "
        if subject in seen:
            raise DatasetError(f"{path}: subject {subject!r} appears more than once")
        seen.add(subject)
        subjects.append(subject)
        groups.append(normalize_group(row[group_col], where))
        if sex_col is not None:
            sex.append(normalize_sex(row[sex_col], where))
        if age_col is not None:
            age.append(_number(row[age_col], f"{where}age"))
        for j, region in enumerate(regions):
            X[i, j] = _number(row[region], f"{where}region {region!r}",
                              hint=" (choose the region columns with regions=[...])")
    y, groups = group_labels(groups)
    meta = {"regions": regions, "source": str(path), "subject": np.array(subjects)}
    if sex_col is not None:
        meta["sex"] = np.array(sex)
    if age_col is not None:
        meta["age"] = np.array(age)
    meta["sample_keys"] = tuple(k for k in ("subject", "sex", "age") if k in meta)
    return Dataset(X, y, groups, "freesurfer", meta)


def _number(text, where, hint=""):
    if text == "":
        raise DatasetError(f"{where}: missing value")
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: {text!r} is not a number{hint}") from None
    if not np.isfinite(value):
        raise DatasetError(f"{where}: value {text!r} is NaN/Inf")
    return value
