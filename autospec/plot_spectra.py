"""Figures of one record's spectra over training: trajectories and the dashboard.

Only singular values above their noise floor are drawn (see :mod:`autospec.plot_floor`).
Also available from ``autospec.plot``.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib import colors as mcolors
from matplotlib.collections import LineCollection
from matplotlib.ticker import MaxNLocator

from . import stats
from .plot_base import (INDEX_LABEL, SIGMA_LABEL, SMALL_FONT, STEP_LABEL, PlotError, cell_edges, check_layers,
                        describe, new_figure, set_log_limits)
from .plot_floor import draw_below_floor_cells, draw_floor, floor_legend_handles, signal

__all__ = ["draw_trajectories", "plot_trajectories", "plot_dashboard"]


def draw_trajectories(ax, rec, layer, quantity="G", group=None, position=None, style="lines",
                      cmap=None, relative_index=False, norm=None):
    """Draw one layer's singular values over steps into ``ax``; returns the colour mappable.

    ``style="lines"``: one line per singular-value index on a log y axis, coloured by index
    (by index / (k - 1) with ``relative_index``), the noise floor dashed grey with a grey band
    below it. ``style="heatmap"``: log10 sigma over steps x index (index 0, the largest, at the
    top), cells below the floor hatched. Values at/below the floor are never drawn as signal and
    the axis limits follow the values above it.
    """
    if style not in ("lines", "heatmap"):
        raise PlotError(f"unknown style {style!r}: use 'lines' or 'heatmap'")
    series, floor = signal(rec, layer, quantity, group=group, position=position)
    steps = np.asarray(rec.steps, dtype=np.float64)
    n_steps, k = series.shape
    ax.set_xlabel(STEP_LABEL)
    if n_steps == 0 or k == 0:
        ax.text(0.5, 0.5, "nothing recorded", transform=ax.transAxes, ha="center", va="center")
        return None
    if style == "heatmap":
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(series)
        xe, ye = cell_edges(steps), cell_edges(np.arange(1, k + 1))
        mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(logs).T, cmap=cmap or "magma", norm=norm,
                             shading="flat", rasterized=True)
        draw_below_floor_cells(ax, np.isnan(series), xe, ye)
        ax.set_ylim(k - 0.5, -0.5)
        ax.set_ylabel(INDEX_LABEL)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        return mesh
    colour = np.arange(1, k + 1, dtype=np.float64)
    if relative_index:
        colour = colour / max(k - 1, 1)
        norm = norm or mcolors.Normalize(0.0, 1.0)
    else:
        norm = norm or mcolors.Normalize(0.0, max(k - 1, 1))
    ax.set_ylabel(SIGMA_LABEL)
    if n_steps == 1:
        coll = ax.scatter(np.repeat(steps, k), series[0], c=colour, cmap=cmap or "viridis", norm=norm, s=12)
    else:
        segments = np.stack([np.broadcast_to(steps, (k, n_steps)), series.T], axis=-1)
        coll = LineCollection(segments, array=colour, cmap=cmap or "viridis", norm=norm, linewidths=1.0)
        ax.add_collection(coll)
    pad = 0.5 if n_steps == 1 else 0.0
    ax.set_xlim(steps.min() - pad, steps.max() + pad)
    if set_log_limits(ax, series):
        draw_floor(ax, steps, floor)
    return coll


def _axes_list(fig, ax, n, ncols=None):
    """``n`` axes: the given ones (an Axes or a sequence), else a new grid on ``fig``."""
    if ax is not None:
        axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
        if len(axes) != n:
            raise PlotError(f"got {len(axes)} axes for {n} layers; pass one Axes per layer")
        return axes[0].figure, axes
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols)
    if fig is None:
        fig = new_figure(4.6 * ncols, 3.4 * nrows + 0.8)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(grid.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


def plot_trajectories(rec, layers=None, quantity="G", group=None, position=None, style="lines",
                      fig=None, ax=None, ncols=None, cmap=None):
    """Singular values of ``quantity`` over training steps, one axes per layer (the paper's panels).

    ``style="lines"``: log-scale lines coloured by index with a colorbar; ``style="heatmap"``:
    log10 sigma over steps x index. Only values above each step's noise floor are drawn (see
    :mod:`autospec.plot_floor`); a legend below explains the floor. Draws into ``ax`` (one Axes
    per layer) or ``fig`` when given. Returns the Figure.
    """
    names = check_layers(rec, layers)
    fig, axes = _axes_list(fig, ax, len(names), ncols)
    for a, layer in zip(axes, names):
        mappable = draw_trajectories(a, rec, layer, quantity, group, position, style, cmap)
        a.set_title(layer)
        if mappable is not None:
            label = "log10 singular value" if style == "heatmap" else "singular value index"
            bar = fig.colorbar(mappable, ax=a, label=label, pad=0.02)
            if style == "lines":
                bar.locator = MaxNLocator(integer=True)
                bar.update_ticks()
    if ax is None:
        fig.suptitle(f"Singular values of {describe(quantity, group, position)} over training")
        handles = floor_legend_handles(style if style == "heatmap" else "lines")
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles) if len(axes) > 1 else 1,
                   fontsize=SMALL_FONT, frameon=False)
    return fig


# ----------------------------------------------------------------------------------------------
# dashboard
# ----------------------------------------------------------------------------------------------


def _layer_colours(n):
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def plot_dashboard(rec, quantity="G", layers=None):
    """A one-page overview of a run: loss curve, top singular value per layer over steps, effective
    rank (exp of the spectral entropy of the values above the noise floor) per layer over steps,
    and each layer's spectrum at the last step with its floor (dashed). Returns the Figure."""
    names = check_layers(rec, layers)
    steps = np.asarray(rec.steps, dtype=np.float64)
    fig = new_figure(11.0, 7.8)
    (ax_loss, ax_top), (ax_rank, ax_last) = fig.subplots(2, 2)
    losses = np.asarray(rec.losses, dtype=np.float64)
    if np.isfinite(losses).any():
        ax_loss.plot(steps, losses, color="k", lw=1.2)
        if np.all(losses[np.isfinite(losses)] > 0):
            ax_loss.set_yscale("log")
    else:
        ax_loss.text(0.5, 0.5, "no loss recorded", transform=ax_loss.transAxes, ha="center", va="center")
    ax_loss.set(title="loss", xlabel=STEP_LABEL, ylabel="loss")
    top_vals, last_vals = [], []
    for colour, layer in zip(_layer_colours(len(names)), names):
        series, floor = signal(rec, layer, quantity)
        top = series[:, 0] if series.shape[1] else np.full(len(steps), np.nan)
        top_vals.append(top)
        ax_top.plot(steps, top, color=colour, lw=1.2, label=layer)
        ax_rank.plot(steps, stats.effective_rank(series), color=colour, lw=1.2)
        if len(series):
            last = series[-1]
            last_vals.append(last)
            ax_last.plot(np.arange(1, last.size + 1), last, "-o", color=colour, ms=2.5, lw=1)
            if np.isfinite(floor[-1]) and last.size:
                ax_last.hlines(floor[-1], -0.3, last.size - 0.7, colors=colour, linestyles="--", lw=0.9)
    set_log_limits(ax_top, np.concatenate(top_vals) if top_vals else np.array([]))
    ax_top.set(title=f"top singular value of {quantity}", xlabel=STEP_LABEL, ylabel=SIGMA_LABEL)
    ax_rank.set(title=f"effective rank of {quantity} (values above the noise floor)", xlabel=STEP_LABEL,
                ylabel="effective rank")
    set_log_limits(ax_last, np.concatenate(last_vals) if last_vals else np.array([]))
    last_step = int(steps[-1]) if len(steps) else "-"
    ax_last.set(title=f"spectrum of {quantity} at step {last_step} (dashed: noise floor)", xlabel=INDEX_LABEL,
                ylabel=SIGMA_LABEL)
    fig.legend(*ax_top.get_legend_handles_labels(), loc="outside lower center", ncol=min(len(names), 5),
               fontsize=SMALL_FONT, frameon=False)
    meta = rec.metadata or {}
    name = meta.get("experiment") or meta.get("model") or "run"
    fig.suptitle(f"AutoSpec dashboard: {name} ({len(steps)} steps recorded)")
    return fig


