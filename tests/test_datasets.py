"""Tests of autospec.datasets: generators (determinism, shapes, planted effects) and loaders
(valid and malformed NIfTI, MATLAB v5/v7.3, aseg.stats, IDX and CSV files)."""
import dataclasses
import gzip
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from scipy import signal, stats

import autospec.datasets as ds
from autospec.datasets import Dataset

SMALL = {
    "digits": dict(n=50),
    "sinusoids": dict(n=24, length=32),
    "freesurfer": dict(n=20),
    "cobre_ica": dict(n_subjects=6, n_timepoints=40),
    "spatial_maps": dict(n_subjects=6, shape=(8, 8, 8), n_components=3),
}
EXPECTED_SHAPES = {
    "digits": (50, 64),
    "sinusoids": (24, 32, 1),
    "freesurfer": (20, 37),
    "cobre_ica": (6, 40, 53),
    "spatial_maps": (6, 1, 8, 8, 8),
}


# ----------------------------------------------------------------------------- Dataset

def toy_dataset(n=6):
    X = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    meta = {"sex": np.array(list("MF" * n))[:n], "sample_keys": ("sex",), "regions": ["a", "b", "c"]}
    return Dataset(X, np.arange(n) % 2, np.where(np.arange(n) % 2, "SZ", "HC"), "toy", meta)


def test_dataset_coerces_dtypes_and_is_frozen():
    d = toy_dataset()
    assert d.X.dtype == np.float32 and d.y.dtype == np.int64 and d.groups.dtype.kind == "U"
    assert d.n_samples == len(d) == 6
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.X = np.zeros((6, 3))
    assert "toy" in repr(d) and "SZ: 3" in repr(d)


@pytest.mark.parametrize("bad, match", [
    (dict(y=np.arange(5)), r"y must have shape \(6,\)"),
    (dict(groups=np.array(["HC"] * 4)), r"groups must have shape \(6,\)"),
    (dict(y=np.full(6, 0.5)), "integer class labels"),
    (dict(X=np.zeros(6)), "sample axis and at least one feature axis"),
    (dict(X=np.full((6, 2), np.inf)), "12 NaN/Inf"),
    (dict(meta={"sex": ["M"], "sample_keys": ("sex",)}), r"meta\['sex'\]"),
])
def test_dataset_rejects_inconsistent_fields(bad, match):
    fields = dict(X=np.zeros((6, 2)), y=np.zeros(6, int), groups=np.array(["HC"] * 6),
                  name="toy", meta={})
    fields.update(bad)
    with pytest.raises((ValueError, TypeError), match=match):
        Dataset(**fields)


def test_subset_keeps_per_sample_meta_aligned():
    d = toy_dataset()
    sub = d.subset([4, 1])
    np.testing.assert_array_equal(sub.X, d.X[[4, 1]])
    np.testing.assert_array_equal(sub.meta["sex"], d.meta["sex"][[4, 1]])
    assert list(sub.groups) == ["HC", "SZ"] and sub.meta["regions"] == ["a", "b", "c"]
    mask = d.groups == "SZ"
    assert d.subset(mask).n_samples == 3 and d.subset(slice(0, 2)).n_samples == 2
    with pytest.raises(ValueError, match="boolean mask must have shape"):
        d.subset(mask[:3])
    with pytest.raises(IndexError, match="indices must lie in"):
        d.subset([7])


def test_standardize_zscores_each_feature_and_keeps_constant_features_finite():
    rng = np.random.default_rng(1)
    X = rng.normal(5.0, 3.0, (40, 4))
    X[:, 2] = 7.0  # constant feature
    d = Dataset(X, np.zeros(40, int), np.array(["a"] * 40), "z").standardize()
    np.testing.assert_allclose(d.X.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(d.X.std(0)[[0, 1, 3]], 1, atol=1e-5)
    assert np.all(d.X[:, 2] == 0)
    seq = ds.make_sinusoids(n=8, length=16).standardize(axis=(0, 1))
    assert seq.X.shape == (8, 16, 1)
    np.testing.assert_allclose(seq.X.std(axis=(0, 1)), 1, atol=1e-5)
    with pytest.raises(ValueError, match="sample axis 0"):
        d.standardize(axis=1)


# ----------------------------------------------------------------------------- generators

@pytest.mark.parametrize("name", sorted(SMALL))
def test_generators_are_deterministic_with_documented_shapes(name):
    a = ds.get_dataset(name, seed=3, **SMALL[name])
    b = ds.get_dataset(name, seed=3, **SMALL[name])
    c = ds.get_dataset(name, seed=4, **SMALL[name])
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.groups, b.groups)
    assert not np.array_equal(a.X, c.X)
    assert a.X.shape == EXPECTED_SHAPES[name] and a.X.dtype == np.float32
    assert a.y.dtype == np.int64 and a.y.shape == (a.n_samples,)
    assert a.groups.shape == (a.n_samples,) and np.all(np.isfinite(a.X))


@pytest.mark.parametrize("call, error, match", [
    (lambda: ds.make_sinusoids(n=0), ValueError, "n must be >= 1"),
    (lambda: ds.make_sinusoids(seed="a"), TypeError, "seed must be an integer"),
    (lambda: ds.make_sinusoids(freq_range=(0.1, 0.7)), ValueError, "Nyquist"),
    (lambda: ds.make_freesurfer(effect=float("nan")), ValueError, "effect must be finite"),
    (lambda: ds.make_cobre_ica(n_components=5), ValueError, "n_components must be >= 7"),
    (lambda: ds.make_cobre_ica(band=(0.01, 0.3)), ValueError, "Nyquist"),
    (lambda: ds.make_cobre_ica(effect=4.0), ValueError, "positive definite"),
    (lambda: ds.make_spatial_maps(shape=(8, 8)), ValueError, "3 entries"),
    (lambda: ds.load_digits(n=5000), ValueError, "n must be <= 1797"),
])
def test_generators_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_digits_scaled_balanced_and_image_shaped():
    full = ds.load_digits()
    assert full.X.shape == (1797, 64) and 0 <= full.X.min() and full.X.max() == 1
    assert sorted(set(full.groups)) == [str(k) for k in range(10)]
    np.testing.assert_array_equal(full.groups, full.y.astype(str))
    sub = ds.load_digits(n=100, flatten=False)
    assert sub.X.shape == (100, 1, 8, 8)
    assert np.all(np.bincount(sub.y) == 10)
    np.testing.assert_array_equal(sub.X[:, 0], full.X[sub.meta["index"]].reshape(-1, 8, 8))
    big = ds.load_digits(n=20, image_size=28, flatten=False)
    assert big.X.shape == (20, 1, 28, 28) and 0 <= big.X.min() and big.X.max() <= 1


def test_sinusoid_dominant_frequency_lies_in_the_class_band():
    d = ds.make_sinusoids(n=80, length=64, n_classes=4)
    assert np.all(np.bincount(d.y) == 20)
    spectrum = np.abs(np.fft.rfft(d.X[:, :, 0], axis=1))
    peak = np.fft.rfftfreq(64)[spectrum.argmax(axis=1)]
    bands = np.array(d.meta["bands"])
    inside = (peak >= bands[d.y, 0]) & (peak < bands[d.y, 1])
    assert inside.mean() >= 0.9
    assert set(d.groups) == {"band0", "band1", "band2", "band3"}


def test_freesurfer_volumes_are_realistic_and_carry_the_planted_effect():
    d = ds.make_freesurfer()
    regions = d.meta["regions"]
    assert regions == list(ds.ASEG_REGIONS) and len(regions) == 37
    assert set(d.groups) == {"HC", "SZ"} and np.all(d.y == (d.groups == "SZ"))
    assert set(d.meta["sex"]) == {"M", "F"} and 18 <= d.meta["age"].min()
    hippocampus = d.X[:, regions.index("Left-Hippocampus")]
    assert 3000 < np.median(hippocampus) < 5500 and np.all(d.X > 0)
    log = np.log(d.X)

    def t_test(data, region):
        j = regions.index(region)
        return stats.ttest_ind(data[d.y == 1, j], data[d.y == 0, j])

    for region in ("Left-Hippocampus", "Right-Hippocampus", "Left-Amygdala", "Right-Thalamus"):
        t, p = t_test(log, region)
        assert t < 0 and p < 1e-2, region
    assert t_test(log, "Left-Hippocampus").pvalue < 1e-4
    assert t_test(log, "Left-Lateral-Ventricle").statistic > 0

    null = ds.make_freesurfer(effect=0.0)
    null_log = np.log(null.X)
    planted = [r for r, w in null.meta["effect_pattern"].items() if w != 0]
    for region in planted:
        j = regions.index(region)
        assert stats.ttest_ind(null_log[null.y == 1, j], null_log[null.y == 0, j]).pvalue > 0.05


def fnc_block(d, a, b):
    domains = np.array(d.meta["component_domains"])
    return np.array([np.corrcoef(x.T)[np.ix_(domains == a, domains == b)].mean() for x in d.X])


def test_cobre_ica_domains_spectrum_and_planted_connectivity_effect():
    d = ds.make_cobre_ica()
    assert d.X.shape == (40, 150, 53) and d.meta["tr"] == 2.0
    domains = d.meta["component_domains"]
    assert [domains.count(name) for name in ds.cobre.DOMAIN_NAMES] == [5, 2, 9, 9, 17, 7, 4]
    assert d.meta["component_names"][:2] == ["SC01", "SC02"]
    freqs, power = signal.welch(d.X, fs=0.5, axis=1, nperseg=64)
    power = power.mean(axis=(0, 2))
    in_band = power[(freqs >= 0.01) & (freqs <= 0.11)].sum() / power.sum()
    assert in_band > 0.8

    sc_sm = fnc_block(d, "SC", "SM")
    t, p = stats.ttest_ind(sc_sm[d.y == 1], sc_sm[d.y == 0])
    assert t > 0 and p < 1e-3
    null = ds.make_cobre_ica(effect=0.0)
    null_sc_sm = fnc_block(null, "SC", "SM")
    assert stats.ttest_ind(null_sc_sm[null.y == 1], null_sc_sm[null.y == 0]).pvalue > 0.05


def test_neuromark_components_apportion_other_sizes():
    names, domains = ds.neuromark_components(20)
    assert len(names) == 20 and len(set(names)) == 20
    assert set(domains) == set(ds.cobre.DOMAIN_NAMES)
    assert domains.count("CC") > domains.count("AUD")


def test_spatial_maps_masked_with_a_planted_regional_difference():
    d = ds.make_spatial_maps()
    assert np.all(d.X[:, 0][:, ~d.meta["mask"]] == 0)
    region = d.meta["effect_region"]
    assert region.sum() > 0
    feature = d.X[:, 0][:, region].mean(axis=1)
    t, p = stats.ttest_ind(feature[d.y == 1], feature[d.y == 0])
    assert t < 0 and p < 1e-3
    null = ds.make_spatial_maps(effect=0.0)
    feature = null.X[:, 0][:, region].mean(axis=1)
    assert stats.ttest_ind(feature[null.y == 1], feature[null.y == 0]).pvalue > 0.05


# ----------------------------------------------------------------------------- registry

def test_registry_lists_and_builds_and_rejects_unknown_names():
    names = ds.list_datasets()
    assert {"digits", "sinusoids", "freesurfer", "cobre_ica", "spatial_maps"} <= set(names)
    assert names == sorted(names) and set(ds.list_datasets(details=True)) == set(names)
    assert ds.get_dataset("sinusoids", n=10).n_samples == 10
    with pytest.raises(ValueError, match="unknown data set 'mnsit'; valid names are .*digits"):
        ds.get_dataset("mnsit")
    with pytest.raises(TypeError, match="make_sinusoids takes n, length"):
        ds.get_dataset("sinusoids", n_samples=10)


def test_import_does_not_load_nibabel():
    code = "import sys, autospec.datasets; assert 'nibabel' not in sys.modules, 'nibabel loaded'"
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- IDX files

def idx_bytes(array, type_code):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 4, 3), dtype=np.uint8), np.array([3, 1, 4, 1, 5], np.uint8)


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_idx_reads_plain_and_gzip(tmp_path, mnist_arrays, compress):
    images, labels = mnist_arrays
    raw_images, raw_labels = idx_bytes(images, 0x08), idx_bytes(labels, 0x08)
    if compress:
        raw_images, raw_labels = gzip.compress(raw_images), gzip.compress(raw_labels)
    (tmp_path / "img").write_bytes(raw_images)
    (tmp_path / "lab").write_bytes(raw_labels)
    d = ds.load_mnist_idx(tmp_path / "img", tmp_path / "lab")
    assert d.X.shape == (5, 1, 4, 3)
    np.testing.assert_allclose(d.X[:, 0], images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y, labels)
    assert list(d.groups) == ["3", "1", "4", "1", "5"]
    flat = ds.load_mnist_idx(tmp_path / "img", tmp_path / "lab", flatten=True, n=2)
    assert flat.X.shape == (2, 12)


def test_read_idx_handles_big_endian_types(tmp_path):
    data = np.arange(6, dtype=np.int32).reshape(2, 3) - 2
    (tmp_path / "a").write_bytes(idx_bytes(data, 0x0C))
    np.testing.assert_array_equal(ds.read_idx(tmp_path / "a"), data)


@pytest.mark.parametrize("corrupt, match", [
    (lambda img, lab: (b"\x01" + img[1:], lab), "bad IDX magic number 0x01000803"),
    (lambda img, lab: (img[:2] + b"\x07" + img[3:], lab), "bad IDX magic number"),
    (lambda img, lab: (img[:-7], lab), "truncated data"),
    (lambda img, lab: (img[:10], lab), "truncated header"),
    (lambda img, lab: (img + b"\x00", lab), "1 unexpected bytes"),
    (lambda img, lab: (img, lab[:-1] + b""), "truncated data"),
    (lambda img, lab: (lab, lab), "says 1 dimension"),
    (lambda img, lab: (gzip.compress(img)[:-12], lab), "corrupt or truncated gzip"),
    (lambda img, lab: (img, idx_bytes(np.arange(4, dtype=np.uint8), 0x08)), "holds 5 images but"),
    (lambda img, lab: (idx_bytes(np.zeros((5, 4, 3), np.float32), 0x0D), lab), "unsigned byte"),
])
def test_load_mnist_idx_rejects_corrupt_files(tmp_path, mnist_arrays, corrupt, match):
    images, labels = mnist_arrays
    raw_images, raw_labels = corrupt(idx_bytes(images, 0x08), idx_bytes(labels, 0x08))
    (tmp_path / "img").write_bytes(raw_images)
    (tmp_path / "lab").write_bytes(raw_labels)
    with pytest.raises(ValueError, match=match):
        ds.load_mnist_idx(tmp_path / "img", tmp_path / "lab")


def test_load_mnist_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="IDX images file not found"):
        ds.load_mnist_idx(tmp_path / "nope", tmp_path / "nope2")


# ----------------------------------------------------------------------------- participants

def write_participants(path, rows, header=("subject", "group", "sex", "age"), delimiter=","):
    lines = [delimiter.join(header)] + [delimiter.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


PEOPLE = [("sub001", "Patient", "Male", 34), ("sub002", "Control", "Female", 29),
          ("sub003", "SZ", "M", 41), ("sub004", "HC", "F", 52)]


# ----------------------------------------------------------------------------- aseg.stats

ASEG_ROWS = [(4, "Left-Lateral-Ventricle"), (10, "Left-Thalamus"), (17, "Left-Hippocampus"),
             (18, "Left-Amygdala"), (53, "Right-Hippocampus")]


def write_aseg(path, volumes, etiv=1523456.7, colheaders=True, extra_line=None):
    """A small aseg.stats file in FreeSurfer 7's layout."""
    lines = [
        "# Title Segmentation Statistics ",
        "# generating_program mri_segstats",
        "# cmdline mri_segstats --seg mri/aseg.mgz --sum stats/aseg.stats --pv mri/norm.mgz",
        "# Measure BrainSeg, BrainSegVol, Brain Segmentation Volume, 1183462.000000, mm^3",
        "# Measure EstimatedTotalIntraCranialVol, eTIV, Estimated Total Intracranial Volume, "
        f"{etiv}, mm^3",
        "# NTableCols 10",
    ]
    if colheaders:
        lines.append("# ColHeaders  Index SegId NVoxels Volume_mm3 StructName normMean normStdDev "
                     "normMin normMax normRange  ")
    for index, (seg_id, name) in enumerate(ASEG_ROWS, start=1):
        if name in volumes:
            vol = volumes[name]
            lines.append(f"{index:3d} {seg_id:4d} {int(vol):8d} {vol:10.1f}  {name:<30s} "
                         f"87.1245 11.2301 32.0000 118.0000 86.0000")
    if extra_line:
        lines.append(extra_line)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def aseg_volumes(k):
    return {name: 1000.0 * (i + 1) + 10 * k for i, (_, name) in enumerate(ASEG_ROWS)}


@pytest.fixture
def aseg_tree(tmp_path):
    for k, (subject, *_rest) in enumerate(PEOPLE):
        write_aseg(tmp_path / "subjects" / subject / "stats" / "aseg.stats", aseg_volumes(k))
    csv = write_participants(tmp_path / "participants.csv", PEOPLE,
                             header=("subject", "Subject Type", "sex", "age"))
    return tmp_path / "subjects", csv


def test_load_aseg_stats_reads_a_subjects_dir(aseg_tree):
    folder, csv = aseg_tree
    d = ds.load_aseg_stats(folder, csv, group_column="Subject Type")
    assert d.X.shape == (4, 5) and d.meta["regions"] == [name for _, name in ASEG_ROWS]
    assert list(d.meta["subject"]) == ["sub001", "sub002", "sub003", "sub004"]
    np.testing.assert_allclose(d.X[1], list(aseg_volumes(1).values()))
    assert list(d.groups) == ["SZ", "HC", "SZ", "HC"] and list(d.y) == [1, 0, 1, 0]
    assert list(d.meta["sex"]) == ["M", "F", "M", "F"]
    np.testing.assert_allclose(d.meta["icv"], 1523456.7)
    picked = ds.load_aseg_stats(folder, csv, group_column="subject type",
                                regions=["Left-Hippocampus", "Left-Thalamus"])
    np.testing.assert_allclose(picked.X[:, 0], d.X[:, 2])


def test_load_aseg_stats_takes_subject_from_file_names(tmp_path):
    files = [write_aseg(tmp_path / f"00{k + 1}_aseg.stats", aseg_volumes(k)) for k in range(2)]
    csv = write_participants(tmp_path / "p.tsv", [("sub-001", "1"), ("sub-002", "0")],
                             header=("participant_id", "diagnosis"), delimiter="\t")
    d = ds.load_aseg_stats(files, csv, subject_column="participant_id", group_column="diagnosis")
    assert list(d.meta["subject"]) == ["sub-001", "sub-002"] and list(d.groups) == ["SZ", "HC"]
    assert "sex" not in d.meta


def test_load_aseg_stats_names_subject_and_missing_region(aseg_tree):
    folder, csv = aseg_tree
    volumes = aseg_volumes(2)
    del volumes["Left-Amygdala"]
    write_aseg(folder / "sub003" / "stats" / "aseg.stats", volumes)
    with pytest.raises(ValueError, match=r"subject 'sub003' .* lacks region\(s\) \['Left-Amygdala'\]"):
        ds.load_aseg_stats(folder, csv, group_column="Subject Type")


@pytest.mark.parametrize("breakage, match", [
    (dict(colheaders=False), "no '# ColHeaders' line"),
    (dict(extra_line="  6  20  100  1e2 Left-Foo 1 2 3"), "line 13: 8 fields, expected 10"),
    (dict(extra_line="  6  20  100  big Left-Foo 1 2 3 4 5"), "Volume_mm3 'big' of Left-Foo"),
    (dict(extra_line="  6  20  100  nan Left-Foo 1 2 3 4 5"), "expected a finite volume"),
    (dict(extra_line="  6  17  100  100.0 Left-Hippocampus 1 2 3 4 5"), "appears twice"),
])
def test_read_aseg_stats_rejects_malformed_files(tmp_path, breakage, match):
    path = write_aseg(tmp_path / "s" / "stats" / "aseg.stats", aseg_volumes(0), **breakage)
    with pytest.raises(ValueError, match=match):
        ds.read_aseg_stats(path)


def test_load_aseg_stats_rejects_unlisted_subject_and_unknown_label(aseg_tree, tmp_path):
    folder, _ = aseg_tree
    short = write_participants(tmp_path / "short.csv", PEOPLE[:3])
    with pytest.raises(ValueError, match="subject 'sub004' .* has no row in the participants table"):
        ds.load_aseg_stats(folder, short)
    odd = write_participants(tmp_path / "odd.csv", PEOPLE[:3] + [("sub004", "Bipolar", "F", 50)])
    with pytest.raises(ValueError, match=r"row 5 \(subject 'sub004'\): unknown group label 'Bipolar'"):
        ds.load_aseg_stats(folder, odd)
    with pytest.raises(ValueError, match="no column 'diagnosis'"):
        ds.load_aseg_stats(folder, odd, group_column="diagnosis")
    with pytest.raises(FileNotFoundError, match="aseg.stats folder or file not found"):
        ds.load_aseg_stats(tmp_path / "missing", odd)


# ----------------------------------------------------------------------------- volume CSV

def test_load_volume_csv_reads_and_validates(tmp_path):
    header = ("subject", "group", "age", "Left-Hippocampus", "Left-Thalamus")
    rows = [("s1", "schizophrenia", 30, 4100.5, 7600), ("s2", "control", 40, 4300, 7700)]
    d = ds.load_volume_csv(write_participants(tmp_path / "v.csv", rows, header=header))
    assert d.meta["regions"] == ["Left-Hippocampus", "Left-Thalamus"]
    np.testing.assert_allclose(d.X, [[4100.5, 7600], [4300, 7700]])
    assert list(d.groups) == ["SZ", "HC"] and list(d.meta["age"]) == [30, 40]

    bad = [("s1", "SZ", 30, "nan", 7600), ("s2", "HC", 40, 4300, 7700)]
    with pytest.raises(ValueError, match="subject 's1': region 'Left-Hippocampus': value 'nan' is NaN"):
        ds.load_volume_csv(write_participants(tmp_path / "b1.csv", bad, header=header))
    bad = [("s1", "SZ", 30, "", 7600)]
    with pytest.raises(ValueError, match="region 'Left-Hippocampus': missing value"):
        ds.load_volume_csv(write_participants(tmp_path / "b2.csv", bad, header=header))
    bad = [("s1", "bipolar", 30, 1, 2)]
    with pytest.raises(ValueError, match="unknown group label 'bipolar'"):
        ds.load_volume_csv(write_participants(tmp_path / "b3.csv", bad, header=header))
    bad = [("s1", "SZ", 30, 1, 2), ("s1", "HC", 31, 1, 2)]
    with pytest.raises(ValueError, match="subject 's1' appears more than once"):
        ds.load_volume_csv(write_participants(tmp_path / "b4.csv", bad, header=header))
    (tmp_path / "b5.csv").write_text("subject,group,a\ns1,SZ,1,2\n")
    with pytest.raises(ValueError, match="row 2: 4 fields, expected 3"):
        ds.load_volume_csv(tmp_path / "b5.csv")


# ----------------------------------------------------------------------------- GIFT time courses

def write_nifti(path, array):
    import nibabel

    nibabel.save(nibabel.Nifti1Image(np.asarray(array, dtype=np.float32), np.eye(4)), str(path))
    return path


def write_mat73(path, variables):
    """An HDF5 file laid out as MATLAB -v7.3 writes it: 512-byte header, column-major arrays."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        for name, value in variables.items():
            dataset = handle.create_dataset(name, data=np.asarray(value).T)
            dataset.attrs["MATLAB_class"] = np.bytes_("double")
    header = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
              b"HDF5 schema 1.00 .")
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")
    return path


def timecourses(k, T=12, C=4):
    return np.random.default_rng(k).standard_normal((T, C))


@pytest.fixture
def gift_folder(tmp_path):
    folder = tmp_path / "gift"
    folder.mkdir()
    write_nifti(folder / "cobre_sub001_timecourses_ica_s1_.nii", timecourses(0))
    write_nifti(folder / "cobre_sub002_timecourses_ica_s1_.nii.gz", timecourses(1))
    scipy.io.savemat(folder / "cobre_sub003_timecourses_ica_s1_.mat", {"tc": timecourses(2)})
    write_mat73(folder / "cobre_sub004_timecourses_ica_s1_.mat", {"tc": timecourses(3)})
    write_nifti(folder / "cobre_sub001_component_ica_s1_.nii", np.zeros((3, 3, 3, 2)))  # ignored
    csv = write_participants(tmp_path / "participants.csv", PEOPLE)
    return folder, csv


def test_load_gift_timecourses_reads_nifti_and_mat_v5_and_v73(gift_folder):
    folder, csv = gift_folder
    d = ds.load_gift_timecourses(folder, csv, tr=2.0)
    assert d.X.shape == (4, 12, 4) and d.name == "cobre_ica"
    for k in range(4):
        np.testing.assert_allclose(d.X[k], timecourses(k), rtol=1e-6)
    assert list(d.meta["subject"]) == ["sub001", "sub002", "sub003", "sub004"]
    assert list(d.groups) == ["SZ", "HC", "SZ", "HC"] and list(d.meta["sex"]) == ["M", "F", "M", "F"]
    assert d.meta["tr"] == 2.0 and len(d.meta["component_names"]) == 4


def test_read_mat_v73_transposes_back_to_matlab_shape(tmp_path):
    tc = timecourses(5, T=7, C=3)
    path = write_mat73(tmp_path / "x.mat", {"tc": tc, "other": np.ones((2, 2))})
    from autospec.datasets._arrayfiles import read_mat

    np.testing.assert_allclose(read_mat(path, "tc"), tc, rtol=1e-6)
    with pytest.raises(ValueError, match=r"exactly one numeric variable, found \['other', 'tc'\]"):
        read_mat(path)
    with pytest.raises(ValueError, match="no numeric variable 'nope'"):
        read_mat(path, "nope")


@pytest.mark.parametrize("damage, match", [
    (lambda f: write_nifti(f / "cobre_sub002_timecourses_ica_s1_.nii.gz",
                           np.where(np.arange(48).reshape(12, 4) == 5, np.nan, timecourses(1))),
     r"sub002_timecourses.*\(subject 'sub002'\): 1 NaN/Inf value\(s\), first at index \(1, 1\)"),
    (lambda f: scipy.io.savemat(f / "cobre_sub003_timecourses_ica_s1_.mat",
                                {"tc": timecourses(2, T=10)}),
     "subject 'sub003'.*inconsistent number of time points: 10, but .* has 12"),
    (lambda f: write_mat73(f / "cobre_sub004_timecourses_ica_s1_.mat", {"tc": timecourses(3, C=5)}),
     "inconsistent number of components: 5"),
    (lambda f: write_nifti(f / "cobre_sub009_timecourses_ica_s1_.nii", timecourses(9)),
     "cobre_sub009_timecourses_ica_s1_.nii' matches no subject"),
    (lambda f: write_nifti(f / "cobre_sub002_timecourses_ica_s1_.nii", timecourses(1)),
     "subject 'sub002' matches two files"),
    (lambda f: write_nifti(f / "cobre_sub001_timecourses_ica_s1_.nii", np.zeros((3, 3, 3))),
     r"expected a 2-D array \(time points x components\), got shape \(3, 3, 3\)"),
    (lambda f: (f / "cobre_sub001_timecourses_ica_s1_.nii").write_bytes(b"not a nifti file at all"),
     "not a readable NIfTI file"),
    (lambda f: (f / "cobre_sub003_timecourses_ica_s1_.mat").write_bytes(b"garbage" * 30),
     "not a readable MATLAB file"),
])
def test_load_gift_timecourses_rejects_malformed_inputs(gift_folder, damage, match):
    folder, csv = gift_folder
    damage(folder)
    with pytest.raises(ValueError, match=match):
        ds.load_gift_timecourses(folder, csv)


def test_load_gift_timecourses_label_and_folder_errors(gift_folder, tmp_path):
    folder, _ = gift_folder
    odd = write_participants(tmp_path / "odd.csv", PEOPLE[:3] + [("sub004", "HC", "unknown", 50)])
    with pytest.raises(ValueError, match="unknown sex label 'unknown'"):
        ds.load_gift_timecourses(folder, odd)
    odd = write_participants(tmp_path / "odd2.csv", PEOPLE[:3] + [("sub004", "relative", "F", 50)])
    with pytest.raises(ValueError, match="unknown group label 'relative'"):
        ds.load_gift_timecourses(folder, odd)
    with pytest.raises(FileNotFoundError, match="participants table not found"):
        ds.load_gift_timecourses(folder, tmp_path / "none.csv")
    with pytest.raises(FileNotFoundError, match="folder or file not found"):
        ds.load_gift_timecourses(tmp_path / "none", odd)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError,
                       match="no GIFT time course files .* whose name contains 'timecourses'"):
        ds.load_gift_timecourses(empty, odd)


# ----------------------------------------------------------------------------- spatial maps

def test_load_spatial_maps_reduces_4d_by_max_and_validates(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.standard_normal((5, 6, 4, 3))
    volume = rng.standard_normal((5, 6, 4))
    folder = tmp_path / "maps"
    folder.mkdir()
    write_nifti(folder / "sub001_component_ica_s1_.nii", stack)
    write_nifti(folder / "sub002_map.nii.gz", volume)
    csv = write_participants(tmp_path / "p.csv", PEOPLE)
    d = ds.load_spatial_maps(folder, csv)
    assert d.X.shape == (2, 1, 5, 6, 4) and list(d.groups) == ["SZ", "HC"]
    np.testing.assert_allclose(d.X[0, 0], stack.max(axis=3), rtol=1e-6)
    np.testing.assert_allclose(d.X[1, 0], volume, rtol=1e-6)
    only = ds.load_spatial_maps(folder, csv, name_contains="component")
    assert list(only.meta["subject"]) == ["sub001"]

    write_nifti(folder / "sub003_map.nii", rng.standard_normal((5, 6, 5)))
    with pytest.raises(ValueError, match=r"subject 'sub003'.*inconsistent number of Z voxels: 5"):
        ds.load_spatial_maps(folder, csv)
    write_nifti(folder / "sub003_map.nii", rng.standard_normal((5, 6)))
    with pytest.raises(ValueError, match="expected a 3-D volume or a 4-D stack"):
        ds.load_spatial_maps(folder, csv)
    bad = rng.standard_normal((5, 6, 4))
    bad[0, 0, 0] = np.inf
    write_nifti(folder / "sub003_map.nii", bad)
    with pytest.raises(ValueError, match=r"subject 'sub003'\): 1 NaN/Inf"):
        ds.load_spatial_maps(folder, csv)
    with pytest.raises(FileNotFoundError, match="spatial map file not found"):
        ds.load_spatial_maps([folder / "sub004_missing.nii"], csv)


# ----------------------------------------------------------------------------- bad input: one line, our error types

def _one_line_error(error_type, match, call, *args, **kwargs):
    """``call`` raises ``error_type`` (one of ours: an AutoSpecError) with a one-line message."""
    from autospec.errors import AutoSpecError

    with pytest.raises(error_type, match=match) as caught:
        call(*args, **kwargs)
    assert isinstance(caught.value, AutoSpecError) and "\n" not in str(caught.value)
    return caught.value


def test_a_complex_nifti_is_an_error_not_its_real_part(tmp_path):
    import nibabel

    from autospec.datasets._arrayfiles import read_nifti

    voxels = (np.arange(27).reshape(3, 3, 3) + 1j).astype(np.complex64)
    path = tmp_path / "sub001_map.nii"
    nibabel.save(nibabel.Nifti1Image(voxels, np.eye(4)), str(path))
    _one_line_error(ds.DatasetError, r"sub001_map.nii: the NIfTI holds complex voxels \(complex64\)", read_nifti, path)
    write_participants(tmp_path / "p.csv", PEOPLE)
    _one_line_error(ds.DatasetError, "complex voxels", ds.load_spatial_maps, [path], tmp_path / "p.csv")


@pytest.mark.parametrize("cut", [100, 352 + 40])  # inside the header, inside the voxels
def test_a_truncated_nifti_is_one_line(tmp_path, cut):
    from autospec.datasets._arrayfiles import read_nifti

    whole = write_nifti(tmp_path / "whole.nii", np.ones((4, 4, 4))).read_bytes()
    (tmp_path / "cut.nii").write_bytes(whole[:cut])
    _one_line_error(ds.DatasetError, "cut.nii: not a readable NIfTI file", read_nifti, tmp_path / "cut.nii")


def test_values_beyond_float32_are_named_as_such_not_as_nan(tmp_path):
    import nibabel

    from autospec.datasets._arrayfiles import read_mat, read_nifti

    nibabel.save(nibabel.Nifti1Image(np.full((3, 3, 3), 1e300), np.eye(4)), str(tmp_path / "big.nii"))
    _one_line_error(ds.DatasetError, r"27 value\(s\) beyond float32's range", read_nifti, tmp_path / "big.nii")
    scipy.io.savemat(tmp_path / "big.mat", {"tc": np.full((3, 2), -1e300)})
    _one_line_error(ds.DatasetError, "6 value.*e.g. -1e\\+300", read_mat, tmp_path / "big.mat")


def test_complex_matlab_arrays_are_an_error(tmp_path):
    from autospec.datasets._arrayfiles import read_mat

    scipy.io.savemat(tmp_path / "v5.mat", {"tc": timecourses(0) * (1 + 2j)})
    _one_line_error(ds.DatasetError, r"v5.mat: the array is complex \(complex128\)", read_mat, tmp_path / "v5.mat")
    path = tmp_path / "v73.mat"
    with h5py.File(path, "w") as handle:  # MATLAB -v7.3 stores complex arrays as (real, imag) compounds
        parts = np.zeros((4, 12), dtype=[("real", "<f8"), ("imag", "<f8")])
        handle.create_dataset("tc", data=parts).attrs["MATLAB_class"] = np.bytes_("double")
    _one_line_error(ds.DatasetError, "v73.mat: the array is complex", read_mat, path)
    scipy.io.savemat(tmp_path / "text.mat", {"name": np.array(["abc"])})
    _one_line_error(ds.DatasetError, "holds no numeric array", read_mat, tmp_path / "text.mat")


def test_group_labels_of_two_kinds_with_one_spelling_are_an_error():
    X = np.zeros((4, 2))
    _one_line_error(ds.DatasetError, r"group labels 1 \(number\) and '1' \(text\) would both read as '1'",
                    Dataset, X, [0, 0, 1, 1], [1, 1, "1", "1"], "t")
    _one_line_error(ds.DatasetError, "group labels 1 and 1.0 are the same number",
                    Dataset, X, [0, 0, 1, 1], np.array([1, 1, 1.0, 2], dtype=object), "t")
    _one_line_error(ds.DatasetError, r"None \(NoneType\) and 'None' \(text\)",
                    Dataset, X, [0, 0, 1, 1], [None, "None", "a", "a"], "t")
    ok = Dataset(X, [0, 0, 1, 1], np.array([1, 2, 1, 2]), "t")  # one kind: fine
    assert list(ok.groups) == ["1", "2", "1", "2"]


@pytest.mark.parametrize("y, error, match", [
    ([-1, 1, 1, -1], ds.DatasetError, r"y holds negative class label\(s\) \[-1\] on 2 sample\(s\).*0, 1, \.\.\., C-1"),
    ([0.0, np.nan, 1.0, 1.0], ds.DatasetError, r"y holds 1 NaN/Inf label"),
    ([0.0, 0.5, 1.0, 1.0], ds.DatasetTypeError, "fractional values such as 0.5"),
    ([0.0, 1e20, 1.0, 1.0], ds.DatasetError, "class label 1e\\+20, too large"),
    (np.array(["a", "b", "a", "b"]), ds.DatasetTypeError, "text labels belong in groups"),
])
def test_bad_class_labels_say_what_is_wrong(y, error, match):
    _one_line_error(error, match, Dataset, np.zeros((4, 2)), y, ["g"] * 4, "t")


def test_no_samples_and_unreadable_tables_are_one_line(tmp_path):
    _one_line_error(ds.DatasetError, r"X holds no samples \(shape \(0, 3\)\)", Dataset, np.zeros((0, 3)), [], [], "t")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00subject,group\n")
    _one_line_error(ds.DatasetError, "binary.csv is not UTF-8 text", ds.load_volume_csv, tmp_path / "binary.csv")
    (tmp_path / "nul.csv").write_text("subject,group,a\x00\ns1,SZ,1\n")
    _one_line_error(ds.DatasetError, "nul.csv holds NUL bytes", ds.load_volume_csv, tmp_path / "nul.csv")
    _one_line_error(ds.DataFileNotFoundError, "volume table not found", ds.load_volume_csv, tmp_path / "none.csv")
