"""Shared pieces of AutoSpec's figures: sizes, fonts, labels, axes helpers and saving.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot global state).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .errors import AutoSpecError

__all__ = ["PlotError", "STEP_LABEL", "SIGMA_LABEL", "INDEX_LABEL", "SMALL_FONT", "DPI", "KNOWN_FORMATS", "new_figure",
           "check_layers", "cell_edges", "set_log_limits", "describe", "figure_paths", "save_figure"]

class PlotError(AutoSpecError, ValueError):
    """A figure that cannot be drawn as asked: an unknown layer, style, format, panel or test."""


STEP_LABEL = "training step"
SIGMA_LABEL = "singular value (log)"
INDEX_LABEL = "index i of σᵢ (σ₁ largest)"
#: Smallest font used anywhere in a figure (legends, ticks, notes): readable when projected.
SMALL_FONT = 10
#: Resolution of saved raster figures.
DPI = 150


def new_figure(width, height):
    """A headless Figure with constrained layout (no pyplot)."""
    return Figure(figsize=(width, height), layout="constrained")


def check_layers(rec, layers):
    """``layers`` as a list (None = all of the record's layers); unknown names raise PlotError."""
    available = list(rec.layers)
    if layers is None:
        return available
    chosen = [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise PlotError(f"unknown layer(s) {unknown}; the record has layers {available}")
    if not chosen:
        raise PlotError("layers is empty: name at least one layer")
    return chosen


def cell_edges(values):
    """Cell edges around sorted centres (steps or indices) for pcolormesh."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def set_log_limits(ax, values):
    """A log y axis whose limits follow the finite positive ``values``; says so when there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size == 0:
        ax.text(0.5, 0.5, "no values above the noise floor", transform=ax.transAxes, ha="center", va="center",
                color="0.4", fontsize=SMALL_FONT)
        return False
    ax.set_yscale("log")
    lo, hi = finite.min(), finite.max()
    if hi <= lo:
        lo, hi = lo / 2, hi * 2
    ax.set_ylim(lo / 1.5, hi * 1.5)
    return True


def describe(quantity, group=None, position=None):
    """"G at position 3, group SZ" -- what a series is, for titles."""
    text = f"{quantity}"
    if position is not None:
        text += f" at position {position}"
    if group is not None:
        text += f", group {group}"
    return text


KNOWN_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp")


def figure_paths(path, formats=("png", "pdf")):
    """The files :func:`save_figure` writes for ``path`` and ``formats`` (checked)."""
    if isinstance(formats, str):
        formats = (formats,)
    bad = [f for f in formats if f.lower() not in KNOWN_FORMATS]
    if bad or not formats:
        raise PlotError(f"unsupported figure format(s) {bad or formats}; use some of {sorted(KNOWN_FORMATS)}")
    base = Path(path)
    if base.suffix.lower().lstrip(".") in KNOWN_FORMATS:
        base = base.with_suffix("")
    return [base.with_name(f"{base.name}.{fmt.lower()}") for fmt in formats]


def save_figure(fig, path, formats=("png", "pdf"), dpi=DPI):
    """Write ``fig`` to ``path`` + ".png", ".pdf" (one file per format); returns the paths written.

    A known image extension on ``path`` is dropped first ("out/fig.png" -> "out/fig.png" and
    "out/fig.pdf"); missing parent folders are created. Writes over existing files: use
    :class:`autospec.plot_files.FigureFolder` to keep them.
    """
    targets = figure_paths(path, formats)
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    for target in targets:
        fig.savefig(target, dpi=dpi, format=target.suffix[1:])
    return targets


