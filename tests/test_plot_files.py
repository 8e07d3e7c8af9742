"""`autospec plot` outputs (issue 13): one folder per run named after it, nothing overwritten
(--force moves old figures into a backup), one-line errors for a bad --out or unknown groups."""
import numpy as np
import pytest

from autospec import plot
from autospec.cli import main
from autospec.plot_files import FigureFolder, FigureOutputError, run_label, run_labels
from autospec.record import Record, load_record


def save_record(path, seed=0, panel="A", metadata=True, groups=("0", "1", "2", "3")):
    meta = {"experiment_name": "toy", "experiment": f"toy panel {panel}", "panel": panel, "seed": seed} if metadata \
        else {}
    rec = Record(metadata=meta)
    for s in range(3):
        spectra = {("L", "G", g, None): np.array([1.0, 0.5]) * (1 + 0.1 * s + seed) for g in (None, *groups)}
        rec.append(s, spectra, loss=1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec.save(path)
    return path


def plot_cli(*args):
    return main(["plot", *map(str, args), "--formats", "png", "--dpi", "40"])


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("autospec: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_two_seeds_of_one_panel_get_their_own_folders(tmp_path, capsys):
    """Today both land in out/A, the second over the first."""
    a = save_record(tmp_path / "seed0" / "A" / "record.h5", seed=0)
    b = save_record(tmp_path / "seed1" / "A" / "record.h5", seed=1)
    assert plot_cli(a, b, "--out", tmp_path / "out", "--quantities", "G") == 0
    printed = capsys.readouterr().out.split()
    folders = {p.split("/")[-2] for p in printed}
    assert folders == {"toy_A_seed0", "toy_A_seed1"}
    for folder in folders:
        assert (tmp_path / "out" / folder / "dashboard.png").stat().st_size > 1000
    assert len(printed) == len(set(printed)) == 4  # dashboard + trajectories_G each, no path twice


def test_nothing_is_overwritten_and_force_keeps_a_backup(tmp_path, capsys):
    rec = save_record(tmp_path / "run" / "record.h5")
    out = tmp_path / "figs"
    assert plot_cli(rec, "--out", out, "--quantities", "G") == 0
    capsys.readouterr()
    folder = out / "toy_A_seed0"
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert plot_cli(rec, "--out", out, "--quantities", "G") == 2
    err = one_error_line(capsys)
    assert str(folder) in err and "already holds" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old  # untouched
    assert plot_cli(rec, "--out", out, "--quantities", "G", "--force") == 0
    (backup,) = [p for p in folder.iterdir() if p.name.startswith("backup-")]
    assert {p.name: p.read_bytes() for p in backup.iterdir()} == old  # the old figures, byte for byte
    assert {p.name for p in folder.iterdir() if p.is_file()} == set(old)  # and new ones in their place


def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys):
    rec = save_record(tmp_path / "run" / "record.h5")
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert plot_cli(rec, "--out", target) == 2
    assert "is not a folder" in one_error_line(capsys)
    assert target.read_text() == "mine"
    with pytest.raises(FigureOutputError, match="is a file"):
        FigureFolder(target / "sub")


def test_unknown_groups_are_a_one_line_error_before_any_figure(tmp_path, capsys):
    """Today `plot --groups SZ HC` on a record with groups 0-3 silently plots 0 vs 1."""
    rec = save_record(tmp_path / "run" / "record.h5")
    assert plot_cli(rec, "--out", tmp_path / "figs", "--groups", "SZ", "HC") == 2
    assert "unknown group(s) ['SZ', 'HC']; the record has groups ['0', '1', '2', '3']" in one_error_line(capsys)
    assert not (tmp_path / "figs").exists()


def test_records_without_metadata_are_named_by_file_and_path(tmp_path):
    a = save_record(tmp_path / "x" / "record.h5", metadata=False)
    b = save_record(tmp_path / "y" / "record.h5", metadata=False)
    recs = [load_record(a), load_record(b)]
    labels = run_labels(recs, [a, b])
    assert all(label.startswith("record-") for label in labels) and labels[0] != labels[1]
    assert run_label(recs[0], a) == labels[0]  # stable for the same file


def test_labels_are_safe_folder_names():
    rec = Record(metadata={"experiment_name": "../../etc", "panel": "G/H", "seed": 3})
    label = run_label(rec)
    assert "/" not in label and not label.startswith(".") and label.endswith("_seed3")


def test_figure_folder_refuses_unsupported_formats_before_drawing(tmp_path):
    with pytest.raises(ValueError, match="unsupported figure format"):
        FigureFolder(tmp_path / "f", formats=("gif",))
    assert not (tmp_path / "f").exists()


def test_panel_figure_goes_into_its_own_folder(tmp_path, capsys):
    a = save_record(tmp_path / "A" / "record.h5", panel="A")
    g = save_record(tmp_path / "G" / "record.h5", panel="G")
    assert plot_cli(a, g, "--out", tmp_path / "figs", "--tests", "paper") == 0
    (printed,) = capsys.readouterr().out.split()
    assert printed.endswith("panels_toy_seed0_AG/panels.png")
    fig = plot.plot_panels({"A": load_record(a), "G": load_record(g)}, tests="paper")
    assert "paper (uncalibrated)" in fig.get_suptitle()
