"""The paper's panel figure: one column per experiment panel (Table 1), one row per layer.

Panels A-F show singular-value trajectories, G and H group-difference maps. Also available as
``autospec.plot.plot_panels``.
"""
from __future__ import annotations

import numpy as np

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


def plot_panels(records_by_panel, layers=None, quantity="G", groups=None, fdr=True, alpha=0.05,
                position=None):
    """The paper's panel figure from ``{"A": rec, ..., "H": rec}`` (any subset of A-H).

    One column per panel given (in letter order), one row per layer (``layers`` or the union of
    the records' layers); panel letters in bold in the corner. A-F: trajectories of ``quantity``
    coloured by relative index (index / (k - 1)). G, H: group-difference maps (a Record: the
    paper's tests, log-ratio map; a list of seed Records: per-cell Welch tests, -log10 q map),
    see :func:`autospec.plot.plot_group_differences`. A layer a panel lacks is left blank.
    Returns the Figure.
    """
    from . import plot as base

    if not isinstance(records_by_panel, dict) or not records_by_panel:
        raise TypeError("records_by_panel must be a non-empty dict like {'A': record, 'G': record}")
    unknown = [key for key in records_by_panel if key not in PANELS]
    if unknown:
        raise ValueError(f"unknown panel(s) {unknown}; panels are {list(PANELS)} (Table 1 of the paper)")
    panels = {key: records_by_panel[key] for key in PANELS if key in records_by_panel}
    rows = _panel_layers(panels, layers)
    if not rows:
        raise ValueError("no layers to plot")
    fig = base.new_figure(3.3 * len(panels) + 0.8, 2.3 * len(rows) + 1.4)
    grid = fig.subplots(len(rows), len(panels), squeeze=False)

    # difference maps first, so each G/H column shares one colour scale
    maps = {}
    for key in DIFFERENCE_PANELS:
        if key in panels:
            first = _first_record(panels[key])
            maps[key] = {layer: base.difference_data(panels[key], layer, quantity, groups, fdr, alpha,
                                                     position=position)
                         for layer in rows if layer in first.layers}
    line_mappable = None
    keys = list(panels)
    for col, (key, entry) in enumerate(panels.items()):
        first = _first_record(entry)
        column_mappable, norm = None, None
        if key in maps and maps[key]:
            norm = base.difference_norm(list(maps[key].values()))
        for row, layer in enumerate(rows):
            ax = grid[row, col]
            if layer not in first.layers:
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"{layer}\nnot in panel {key}", transform=ax.transAxes, ha="center",
                        va="center", color="0.5", fontsize=8)
                continue
            if key in maps:
                column_mappable = base.draw_difference_map(ax, maps[key][layer], norm=norm)
            else:
                entry_rec = first
                m = base.draw_trajectories(ax, entry_rec, layer, quantity, position=position, relative_index=True)
                line_mappable = line_mappable or m
            if col > 0 and (key in maps) == (keys[col - 1] in maps):
                ax.set_ylabel("")  # same kind of axes as the column to the left
            ax.set_title(layer, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.xaxis.label.set_size(8)
            ax.yaxis.label.set_size(8)
            if row != len(rows) - 1:
                ax.set_xlabel("")
        top = grid[0, col]
        top.annotate(key, xy=(0, 1), xycoords="axes fraction", xytext=(-4, 18), textcoords="offset points",
                     fontsize=15, fontweight="bold", ha="right", va="bottom")
        top.annotate(PANELS[key], xy=(0, 1), xycoords="axes fraction", xytext=(2, 20),
                     textcoords="offset points", fontsize=8.5, ha="left", va="bottom")
        if column_mappable is not None:
            some = next(iter(maps[key].values()))
            fig.colorbar(column_mappable, ax=list(grid[:, col]), location="bottom", shrink=0.9, aspect=25,
                         label=some["map_label"] + ("\nred marks: significant steps / indices"
                                                    if some["mode"] == "paper" else "\noutlined: significant"))
    if line_mappable is not None:
        line_cols = [c for c, key in enumerate(panels) if key not in DIFFERENCE_PANELS]
        fig.colorbar(line_mappable, ax=list(np.ravel(grid[:, line_cols])), location="bottom", shrink=0.6,
                     aspect=40, label="singular value index / (k − 1)   (0 = largest)")
    fig.suptitle(f"Singular values of {quantity} over training, by panel (Table 1)")
    return fig
