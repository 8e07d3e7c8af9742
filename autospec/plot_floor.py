"""What a figure may draw as signal: singular values above their numerical noise floor.

A singular value at or below the noise floor of its matrix (``autospec.noise_floor``: about
sigma_1 * max(m, n) * eps of the dtype) is numerically zero: its size is rounding error, not a
property of the network. Every recorded spectrum keeps its floor per step (``rec.floor``); the
figures draw only the values above it, set their axis limits from those values, and show the
floor itself in grey (a dashed line, a grey band below it, grey or hatched map cells).

Records written before floors were stored (and spectra whose floor is unknown at a step) get a
fallback floor of :data:`FALLBACK_RELATIVE_FLOOR` times that step's largest singular value. The
factor 1e-7 is float32's machine epsilon: in float32 everything below it is rounding noise even
for a 1 x 1 matrix (the real floor, eps * max(m, n), is higher still); in float64 it hides values
more than seven decades below the top one, which no log-scale figure of the spectrum could show
beside it anyway.
"""
from __future__ import annotations

import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

__all__ = [
    "FALLBACK_RELATIVE_FLOOR",
    "FLOOR_COLOUR",
    "BELOW_FLOOR_FACE",
    "spectrum_floor",
    "above_floor",
    "signal",
    "draw_floor",
    "draw_below_floor_cells",
    "floor_legend_handles",
]

#: Floor of a spectrum whose recorded floor is unknown, relative to that step's sigma_1.
FALLBACK_RELATIVE_FLOOR = 1e-7

FLOOR_COLOUR = "0.45"  # the floor line
BELOW_FLOOR_FACE = "0.88"  # the band / cells below the floor
HATCH = "////"

FLOOR_LABEL = "noise floor"
BAND_LABEL = "below the noise floor (numerically zero, not drawn)"
CELLS_LABEL = "below the noise floor (not tested)"
ZERO_CELLS_LABEL = "below the noise floor (numerically zero)"


def spectrum_floor(rec, layer, quantity, group=None, position=None, series=None):
    """The noise floor of one recorded spectrum at every step: float64 (n_steps,).

    The recorded floor where known, else :data:`FALLBACK_RELATIVE_FLOOR` x that step's largest
    value (``series``, when given, saves reading the spectra again); NaN for empty steps.
    """
    recorded = np.asarray(rec.floor(layer, quantity, group=group, position=position), dtype=np.float64)
    if np.all(np.isfinite(recorded)):
        return recorded
    if series is None:
        series = rec.series(layer, quantity, group=group, position=position)
    return np.where(np.isfinite(recorded), recorded, _fallback(series))


def _fallback(series):
    values = np.asarray(series, dtype=np.float64)
    top = np.full(values.shape[0], np.nan)
    has = np.isfinite(values).any(axis=1) if values.ndim == 2 and values.shape[1] else np.zeros(len(top), bool)
    top[has] = np.nanmax(values[has], axis=1)
    return top * FALLBACK_RELATIVE_FLOOR


def above_floor(values, floor):
    """``values`` (n_steps, ...) with NaN wherever a value is at/below its step's ``floor``
    (n_steps,), not positive or not finite; a NaN floor keeps the positive values."""
    v = np.asarray(values, dtype=np.float64)
    f = np.asarray(floor, dtype=np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(v) & (v > 0) & ~(v <= f)
    return np.where(keep, v, np.nan)


def signal(rec, layer, quantity, group=None, position=None):
    """The values of one spectrum a figure may draw, and its floor: ``(values, floor)`` with
    values float64 (n_steps, k), NaN at/below the floor, and floor float64 (n_steps,)."""
    values = rec.series(layer, quantity, group=group, position=position)
    floor = spectrum_floor(rec, layer, quantity, group, position, series=values)  # recorded, else the fallback
    return above_floor(values, floor), floor


def draw_floor(ax, steps, floor):
    """Draw a floor over steps into ``ax``: a dashed grey line with a grey band below it.

    Call after the axis limits are set (the band reaches down to the lower limit)."""
    steps = np.asarray(steps, dtype=np.float64)
    floor = np.asarray(floor, dtype=np.float64)
    if not np.isfinite(floor).any():
        return
    bottom = min(ax.get_ylim())
    ax.fill_between(steps, np.full(steps.shape, bottom), np.maximum(floor, bottom), color=BELOW_FLOOR_FACE,
                    lw=0, zorder=0.5)
    ax.plot(steps, floor, ls="--", color=FLOOR_COLOUR, lw=1.0, zorder=1.5)
    ax.set_ylim(bottom, max(ax.get_ylim()))


def draw_below_floor_cells(ax, mask, x_edges, y_edges):
    """Hatch the cells of a (steps, index) ``mask`` that sat below the floor, one rectangle per
    run of consecutive steps of one index."""
    mask = np.asarray(mask, dtype=bool)
    rects = []
    for j in range(mask.shape[1]):
        column = np.concatenate([[False], mask[:, j], [False]])
        starts = np.flatnonzero(column[1:] & ~column[:-1])
        stops = np.flatnonzero(~column[1:] & column[:-1])
        for a, b in zip(starts, stops):
            x0, x1 = x_edges[a], x_edges[b]
            rects.append(Rectangle((x0, y_edges[j]), x1 - x0, y_edges[j + 1] - y_edges[j]))
    if rects:
        ax.add_collection(PatchCollection(rects, facecolor=BELOW_FLOOR_FACE, edgecolor=FLOOR_COLOUR, hatch=HATCH,
                                          linewidth=0, zorder=2))
    return len(rects)


def floor_legend_handles(kind="lines"):
    """Legend handles explaining the floor: ``"lines"`` (trajectories), ``"heatmap"`` (spectra
    over steps x index) or ``"cells"`` (maps of tests)."""
    if kind in ("cells", "heatmap"):
        label = CELLS_LABEL if kind == "cells" else ZERO_CELLS_LABEL
        return [Patch(facecolor=BELOW_FLOOR_FACE, edgecolor=FLOOR_COLOUR, hatch=HATCH, label=label)]
    return [Line2D([], [], ls="--", color=FLOOR_COLOUR, label=FLOOR_LABEL),
            Patch(facecolor=BELOW_FLOOR_FACE, label=BAND_LABEL)]
