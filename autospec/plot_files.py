"""Where figures go: one folder per run, and nothing a user has is ever overwritten.

* :func:`run_label` names a record's figure folder after its run -- experiment, panel and seed
  from its metadata (``digits-mlp_G_seed0``), else the record's file stem and a short id of its
  path (``record-1a2b3c``) -- so figures of different runs never land in one folder.
* :class:`FigureFolder` writes figures into a folder that must be new or empty; with
  ``force=True`` what the folder holds is first moved into a timestamped backup folder inside
  it (``backup-20260101-120000``), never deleted.
* :func:`write_record_figures` writes all figures of one record (dashboard, trajectories, group
  differences) and lists what it could not draw.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

from . import plot_base as base
from . import stats
from .plot_groups import choose_groups, plot_group_differences, plot_group_pairs
from .plot_spectra import plot_dashboard, plot_trajectories
from .outputs import BACKUP_PREFIX, new_backup_folder

__all__ = ["FigureOutputError", "FigureFolder", "FigureReport", "run_label", "run_labels", "check_output_root",
           "write_record_figures"]

class FigureOutputError(base.PlotError):
    """A figure folder that cannot be used: a file stands in its place, or it holds files already."""


def _safe(text):
    """``text`` as a file-name part: letters, digits, ``.``, ``_`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.") or "run"


def _short_id(path):
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:6]


def run_label(rec, path=None, with_panel=True):
    """A folder name for ``rec``'s figures: ``EXPERIMENT_PANEL_seedS`` from its metadata (the
    parts it has), else the stem of its file (``path`` or ``rec.path``) and a short id of that
    path, e.g. ``record-1a2b3c``."""
    meta = rec.metadata or {}
    name = meta.get("experiment_name") or meta.get("experiment")
    panel, seed = meta.get("panel"), meta.get("seed")
    path = path if path is not None else rec.path
    if name is None:
        name = "record" if path is None else f"{Path(path).stem}-{_short_id(path)}"
    parts = [name] + ([panel] if with_panel and panel else []) + ([f"seed{seed}"] if seed is not None else [])
    return "_".join(_safe(p) for p in parts)


def run_labels(records, paths):
    """:func:`run_label` of each record, made unique (a repeated label gets its path's short id)."""
    labels = [run_label(rec, path) for rec, path in zip(records, paths)]
    repeated = {label for label in labels if labels.count(label) > 1}
    return [f"{label}-{_short_id(path)}" if label in repeated else label for label, path in zip(labels, paths)]


def check_output_root(path):
    """Raise :class:`FigureOutputError` when ``path`` or a folder above it is an existing file."""
    path = Path(path)
    for part in [path, *path.parents]:
        if part.exists() and not part.is_dir():
            where = "" if part == path else f" ({part} is a file)"
            raise FigureOutputError(f"--out {path} is not a folder{where}: name a folder for the figures")


class FigureFolder:
    """A folder of figures written without losing anything already there.

    The folder must be new or empty (backup folders aside); otherwise :class:`FigureOutputError`
    names what is there, unless ``force=True``: then everything it holds is moved into
    ``backup-YYYYmmdd-HHMMSS`` inside the folder, so it ends up holding this call's figures only.
    A file that appears under a figure's name later is moved there too before writing.
    """

    def __init__(self, folder, formats=("png", "pdf"), dpi=base.DPI, force=False):
        self.folder = Path(folder)
        self.formats = tuple(formats)
        self.dpi = dpi
        self.force = force
        self.backup = None
        check_output_root(self.folder)
        base.figure_paths(self.folder / "check", self.formats)  # unsupported formats fail before any drawing
        present = self._present()
        if present and not force:
            shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3 else "")
            raise FigureOutputError(f"{self.folder} already holds {shown}; add --force to move them into a backup "
                                    f"folder there, or choose another --out")
        for name in present:
            self._move_aside(self.folder / name)

    def _present(self):
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if not p.name.startswith(BACKUP_PREFIX))

    def _backup_folder(self):
        if self.backup is None:
            self.backup = new_backup_folder(self.folder)
        return self.backup

    def _move_aside(self, path):
        os.replace(path, self._backup_folder() / path.name)

    def save(self, fig, name):
        """Write ``fig`` as ``name`` in each format (moving aside any file it replaces); returns the paths."""
        targets = base.figure_paths(self.folder / name, self.formats)
        for target in targets:
            if target.exists() or target.is_symlink():
                self._move_aside(target)
        written = base.save_figure(fig, self.folder / name, formats=self.formats, dpi=self.dpi)
        fig.clear()
        return written


@dataclasses.dataclass
class FigureReport:
    """What :func:`write_record_figures` did: the files written, and a line for each thing it
    could not draw (layers too small to test, no calibrated test)."""

    written: list
    notes: list


def _group_figure_name(layer, chosen):
    pair = f"{chosen[0]}-vs-{chosen[1]}" if len(chosen) == 2 else "all-pairs"
    return f"group_differences_{_safe(layer)}_{_safe(pair)}"


def write_record_figures(rec, folder, *, quantities=None, groups=None, tests="calibrated", group_differences=None,
                         fdr=True, alpha=0.05, formats=("png", "pdf"), dpi=base.DPI, force=False):
    """All figures of one record into ``folder`` (a path, or a :class:`FigureFolder` made earlier
    to check it before drawing; either way nothing there is overwritten).

    A dashboard; the trajectories of each of ``quantities`` (None = every recorded quantity);
    and, when the record has two or more groups (or ``group_differences=True``), the group
    differences of G per layer for ``groups`` (None = all): with two groups one detailed figure
    per layer (``group_differences_LAYER_A-vs-B``), with more a grid of every pair per layer
    (``group_differences_LAYER_all-pairs``). Calibrated tests by default; ``tests="paper"`` for
    the paper's (uncalibrated) tests. Unknown groups raise ``GroupError`` before anything is
    drawn. Layers too small to test and records without a calibrated test are listed in the
    report's notes instead. Returns a :class:`FigureReport`.
    """
    chosen = None
    if group_differences or (group_differences is None and len(rec.groups) >= 2):
        chosen = choose_groups(rec, groups)
    out = folder if isinstance(folder, FigureFolder) else FigureFolder(folder, formats=formats, dpi=dpi, force=force)
    written, notes = [], []
    written += out.save(plot_dashboard(rec, quantity="G"), "dashboard")
    for quantity in (rec.quantities if quantities is None else [q for q in quantities if q in rec.quantities]):
        written += out.save(plot_trajectories(rec, quantity=quantity), f"trajectories_{quantity}")
    if chosen is None:
        return FigureReport(written, notes)
    uncalibrated = []  # (layer, why)
    for layer in rec.layers:
        try:
            if len(chosen) == 2:
                fig = plot_group_differences(rec, layer, "G", groups=chosen, fdr=fdr, alpha=alpha, tests=tests)
            else:
                fig = plot_group_pairs(rec, layer, "G", groups=chosen, fdr=fdr, alpha=alpha, tests=tests)
        except stats.NotCalibratedError as exc:
            uncalibrated.append((layer, str(exc)))
            continue
        except stats.TooFewSamples as exc:
            notes.append(f"not tested: layer {layer}: {exc}")
            continue
        written += out.save(fig, _group_figure_name(layer, chosen))
    if uncalibrated and len(uncalibrated) == len(rec.layers):  # the usual case: one line says it all
        notes.append(f"no group-difference figures (every layer): {uncalibrated[0][1]}")
    else:
        notes += [f"no group-difference figure of layer {layer}: {why}" for layer, why in uncalibrated]
    return FigureReport(written, notes)
