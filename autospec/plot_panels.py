"""The paper's panel figure: one column per experiment panel (Table 1), one row per layer.

Panels A-F show singular-value trajectories, G and H group-difference maps. Also available as
``autospec.plot.plot_panels``.
"""
from __future__ import annotations

import textwrap

import numpy as np

from . import plot_groups, stats
from .plot_base import SMALL_FONT, PlotError, new_figure
from .plot_floor import floor_legend_handles
from .plot_spectra import draw_trajectories

__all__ = ["PANELS", "plot_panels"]

#: Table 1 of the paper: what each panel letter shows.
PANELS = {
    "A": "auto-encoding, [32], ReLU",
    "B": "classification, [32], ReLU",
    "C": "auto-encoding, [32], tanh",
    "D": "auto-encoding, [32], sigmoid",
    "E": "auto-encoding, [8], ReLU",
    "F": "auto-encoding, [64], ReLU",
    "G": "auto-encoding: group differences",
    "H": "classification: group differences",
}
DIFFERENCE_PANELS = ("G", "H")


def _first_record(entry):
    return entry[0] if isinstance(entry, (list, tuple)) else entry


def _panel_layers(panels, layers):
    if layers is not None:
        return [layers] if isinstance(layers, str) else list(layers)
    ordered = []
    for entry in panels.values():
        for name in _first_record(entry).layers:
            if name not in ordered:
                ordered.append(name)
    return ordered


def _difference_cell(entry, layer, quantity, groups, fdr, alpha, position, tests):
    """The difference map of one G/H cell, or the one-line reason it cannot be drawn."""
    try:
        return plot_groups.difference_data(entry, layer, quantity, groups, fdr, alpha, position=position, tests=tests)
    except stats.NotCalibratedError as exc:
        return f"no calibrated test: {exc}"
    except stats.TooFewSamples as exc:
        return f"not tested: {exc}"


def _note(ax, text, colour="0.4"):
    ax.set_axis_off()
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(text, 34)), transform=ax.transAxes, ha="center", va="center",
            color=colour, fontsize=SMALL_FONT)


def plot_panels(records_by_panel, layers=None, quantity="G", groups=None, fdr=True, alpha=0.05,
                position=None, *, tests="calibrated"):
    """The paper's panel figure from ``{"A": rec, ..., "H": rec}`` (any subset of A-H).

    One column per panel given (in letter order), one row per layer (``layers`` or the union of
    the records' layers); panel letters in bold in the corner. A-F: trajectories of ``quantity``
    coloured by relative index (index / (k - 1)), values above the noise floor only. G, H:
    group-difference maps of the first two of ``groups`` (default: the record's first two):
    calibrated tests by default (a Record with per-sample values: per-sample Welch tests; a list
    of seed Records: per-seed tests; -log10 q map), the paper's tests with ``tests="paper"``
    (log-ratio map, "paper (uncalibrated)"); see
    :func:`autospec.plot_groups.plot_group_differences`. A cell that cannot be drawn (a layer the
    panel lacks, too few samples to test, no calibrated test) says why. Returns the Figure.
    """
    if not isinstance(records_by_panel, dict) or not records_by_panel:
        raise TypeError("records_by_panel must be a non-empty dict like {'A': record, 'G': record}")
    unknown = [key for key in records_by_panel if key not in PANELS]
    if unknown:
        raise PlotError(f"unknown panel(s) {unknown}; panels are {list(PANELS)} (Table 1 of the paper)")
    panels = {key: records_by_panel[key] for key in PANELS if key in records_by_panel}
    rows = _panel_layers(panels, layers)
    if not rows:
        raise PlotError("no layers to plot")
    fig = new_figure(3.4 * len(panels) + 0.8, 2.4 * len(rows) + 2.0)
    grid = fig.subplots(len(rows), len(panels), squeeze=False)

    # difference maps first, so each G/H column shares one colour scale
    maps = {}
    for key in DIFFERENCE_PANELS:
        if key in panels:
            first = _first_record(panels[key])
            pair = plot_groups.choose_groups(panels[key], groups)[:2]
            maps[key] = {layer: _difference_cell(panels[key], layer, quantity, pair, fdr, alpha, position, tests)
                         for layer in rows if layer in first.layers}
    line_mappable, drawn_maps = None, []
    keys = list(panels)
    for col, (key, entry) in enumerate(panels.items()):
        first = _first_record(entry)
        column_mappable, norm = None, None
        column_maps = [d for d in maps.get(key, {}).values() if isinstance(d, dict)]
        if column_maps:
            norm = plot_groups.difference_norm(column_maps)
            drawn_maps += column_maps
        for row, layer in enumerate(rows):
            ax = grid[row, col]
            if layer not in first.layers:
                _note(ax, f"{layer}\nnot in panel {key}", colour="0.5")
                continue
            if key in maps:
                cell = maps[key][layer]
                if isinstance(cell, str):
                    _note(ax, f"{layer}: {cell}")
                    continue
                column_mappable = plot_groups.draw_difference_map(ax, cell, norm=norm)
            else:
                m = draw_trajectories(ax, first, layer, quantity, position=position, relative_index=True)
                line_mappable = line_mappable or m
            if col > 0 and (key in maps) == (keys[col - 1] in maps):
                ax.set_ylabel("")  # same kind of axes as the column to the left
            ax.set_title(layer, fontsize=10)
            ax.tick_params(labelsize=SMALL_FONT)
            ax.xaxis.label.set_size(SMALL_FONT)
            ax.yaxis.label.set_size(SMALL_FONT)
            if row != len(rows) - 1:
                ax.set_xlabel("")
        top = grid[0, col]
        top.annotate(key, xy=(0, 1), xycoords="axes fraction", xytext=(-4, 18), textcoords="offset points",
                     fontsize=15, fontweight="bold", ha="right", va="bottom")
        top.annotate(PANELS[key], xy=(0, 1), xycoords="axes fraction", xytext=(2, 20),
                     textcoords="offset points", fontsize=SMALL_FONT, ha="left", va="bottom")
        if column_mappable is not None:
            some = column_maps[0]
            g0, g1 = some["groups"]
            fig.colorbar(column_mappable, ax=list(grid[:, col]), location="bottom", shrink=0.9, aspect=25,
                         label=f"{some['map_label']}, {g0} vs {g1}\n{some['title']}")
    if line_mappable is not None:
        line_cols = [c for c, key in enumerate(panels) if key not in DIFFERENCE_PANELS]
        fig.colorbar(line_mappable, ax=list(np.ravel(grid[:, line_cols])), location="bottom", shrink=0.6,
                     aspect=40, label="relative singular value index (i − 1) / (k − 1):  0 = σ1 (largest), 1 = σk")
    handles = floor_legend_handles("lines") if line_mappable is not None else []
    if drawn_maps:
        handles = plot_groups.map_legend_handles(drawn_maps[0]) + handles
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), fontsize=SMALL_FONT,
                   frameon=False)
    kind = f" -- G/H: {plot_groups.PAPER_LABEL}" if tests == "paper" and drawn_maps else ""
    fig.suptitle(f"Singular values of {quantity} over training, by panel (Table 1){kind}")
    notes = sorted({d["group_scale"] for d in drawn_maps if d["group_scale"]})
    if notes:
        fig.supxlabel("\n".join(notes), fontsize=SMALL_FONT, color="0.3")
    return fig
