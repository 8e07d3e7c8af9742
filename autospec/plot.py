"""Figures of recorded gradient spectra.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot global state), so it
works headless, in scripts and in notebooks alike; it returns the Figure, and
:func:`save_figure` writes it as PNG and PDF.

* :func:`plot_trajectories` -- singular values over training steps, one axes per layer.
* :func:`autospec.plot_groups.plot_group_differences` -- where two groups differ: a map over
  steps x index with significant cells marked, its marginals, and the groups' trajectories;
  :func:`autospec.plot_groups.plot_group_pairs` -- every pair of groups of one layer as a grid.
* :func:`plot_dashboard` -- a one-page overview (loss, top singular value, effective rank,
  last spectrum), in the spirit of Cockpit.
* :func:`autospec.plot_panels.plot_panels` -- the paper's panel figure.
* :func:`autospec.plot_files.write_record_figures` -- all figures of a record into a folder
  named after its run, never overwriting a file.

Every figure draws only singular values above their noise floor (see :mod:`autospec.plot_floor`):
the floor is shown as a dashed grey line with a grey band below it (trajectories) or as hatched
cells (maps), and axis limits follow the values above it. Group maps show calibrated tests by
default; the paper's tests are labelled "paper (uncalibrated)".
"""
from __future__ import annotations

from .plot_base import (DPI, INDEX_LABEL, SIGMA_LABEL, SMALL_FONT, STEP_LABEL, cell_edges, check_layers,  # noqa: F401
                        describe, figure_paths, new_figure, save_figure, set_log_limits)
from .plot_files import FigureFolder, FigureOutputError, run_label, write_record_figures
from .plot_floor import FALLBACK_RELATIVE_FLOOR, above_floor, signal, spectrum_floor
from .plot_groups import (PAPER_LABEL, choose_groups, difference_data, difference_norm, draw_difference_map,
                          plot_group_differences, plot_group_pairs)
from .plot_panels import plot_panels
from .plot_spectra import draw_trajectories, plot_dashboard, plot_trajectories

__all__ = [
    "plot_trajectories",
    "plot_group_differences",
    "plot_group_pairs",
    "plot_dashboard",
    "plot_panels",
    "save_figure",
    "write_record_figures",
    "draw_trajectories",
    "draw_difference_map",
    "difference_data",
    "difference_norm",
    "choose_groups",
    "FigureFolder",
    "FigureOutputError",
    "run_label",
    "PAPER_LABEL",
    "FALLBACK_RELATIVE_FLOOR",
    "spectrum_floor",
    "above_floor",
    "signal",
]
