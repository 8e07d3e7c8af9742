"""Figures of recorded gradient spectra.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot global state), so it
works headless, in scripts and in notebooks alike; it returns the Figure, and
:func:`save_figure` writes it as PNG and PDF.

* :func:`plot_trajectories` -- singular values over training steps, one axes per layer.
* :func:`plot_group_differences` -- where two groups differ: a map over steps x index with
  significant cells marked, its marginals, and the groups' trajectories.
* :func:`plot_dashboard` -- a one-page overview (loss, top singular value, effective rank,
  last spectrum), in the spirit of Cockpit.
* :func:`autospec.plot_panels.plot_panels` (re-exported here) -- the paper's panel figure.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import transforms as mtransforms
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import stats

__all__ = [
    "plot_trajectories",
    "plot_group_differences",
    "plot_dashboard",
    "plot_panels",
    "save_figure",
    "draw_trajectories",
    "draw_difference_map",
    "difference_data",
]

STEP_LABEL = "training step"
SIGMA_LABEL = "singular value (log)"
INDEX_LABEL = "index"


def new_figure(width, height):
    """A headless Figure with constrained layout (no pyplot)."""
    return Figure(figsize=(width, height), layout="constrained")


def check_layers(rec, layers):
    """``layers`` as a list (None = all of the record's layers); unknown names raise ValueError."""
    available = list(rec.layers)
    if layers is None:
        return available
    chosen = [layers] if isinstance(layers, str) else list(layers)
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; the record has layers {available}")
    if not chosen:
        raise ValueError("layers is empty: name at least one layer")
    return chosen


def _edges(values):
    """Cell edges around sorted centres (steps or indices) for pcolormesh."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5])
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])


def _positive(x):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, np.nan)


def _set_log_limits(ax, values):
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        ax.text(0.5, 0.5, "no positive values", transform=ax.transAxes, ha="center", va="center", color="0.4")
        return False
    ax.set_yscale("log")
    lo, hi = finite.min(), finite.max()
    if hi <= lo:
        lo, hi = lo / 2, hi * 2
    ax.set_ylim(lo / 1.5, hi * 1.5)
    return True


def _title(quantity, group=None, position=None):
    text = f"{quantity}"
    if position is not None:
        text += f" at position {position}"
    if group is not None:
        text += f", group {group}"
    return text


def draw_trajectories(ax, rec, layer, quantity="G", group=None, position=None, style="lines",
                      cmap=None, relative_index=False, norm=None):
    """Draw one layer's singular values over steps into ``ax``; returns the colour mappable.

    ``style="lines"``: one line per singular-value index on a log y axis, coloured by index
    (by index / (k - 1) with ``relative_index``). ``style="heatmap"``: log10 sigma over steps x
    index (index 0, the largest, at the top).
    """
    if style not in ("lines", "heatmap"):
        raise ValueError(f"unknown style {style!r}: use 'lines' or 'heatmap'")
    series = _positive(rec.series(layer, quantity, group=group, position=position))
    steps = np.asarray(rec.steps, dtype=np.float64)
    n_steps, k = series.shape
    ax.set_xlabel(STEP_LABEL)
    if n_steps == 0 or k == 0:
        ax.text(0.5, 0.5, "nothing recorded", transform=ax.transAxes, ha="center", va="center")
        return None
    if style == "heatmap":
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(series)
        mesh = ax.pcolormesh(_edges(steps), _edges(np.arange(k)), logs.T, cmap=cmap or "magma",
                             norm=norm, shading="flat", rasterized=True)
        ax.set_ylim(k - 0.5, -0.5)
        ax.set_ylabel(INDEX_LABEL)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        return mesh
    colour = np.arange(k, dtype=np.float64)
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
    _set_log_limits(ax, series)
    return coll


def _axes_list(fig, ax, n, ncols=None):
    """``n`` axes: the given ones (an Axes or a sequence), else a new grid on ``fig``."""
    if ax is not None:
        axes = [ax] if not isinstance(ax, (list, tuple, np.ndarray)) else list(np.ravel(ax))
        if len(axes) != n:
            raise ValueError(f"got {len(axes)} axes for {n} layers; pass one Axes per layer")
        return axes[0].figure, axes
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols)
    if fig is None:
        fig = new_figure(4.6 * ncols, 3.4 * nrows + 0.4)
    grid = fig.subplots(nrows, ncols, squeeze=False)
    flat = list(grid.ravel())
    for extra in flat[n:]:
        extra.set_visible(False)
    return fig, flat[:n]


def plot_trajectories(rec, layers=None, quantity="G", group=None, position=None, style="lines",
                      fig=None, ax=None, ncols=None, cmap=None):
    """Singular values of ``quantity`` over training steps, one axes per layer (the paper's panels).

    ``style="lines"``: log-scale lines coloured by index with a colorbar; ``style="heatmap"``:
    log10 sigma over steps x index. Draws into ``ax`` (one Axes per layer) or ``fig`` when given.
    Returns the Figure.
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
        fig.suptitle(f"Singular values of {_title(quantity, group, position)} over training")
    return fig


# ----------------------------------------------------------------------------------------------
# group differences
# ----------------------------------------------------------------------------------------------


def _pair(groups, available):
    if groups is None:
        pairs = stats._choose_groups(available, None)
        return pairs[0]
    if isinstance(groups, str) or len(groups) != 2:
        raise ValueError(f"groups must name exactly two groups (a, b), got {groups!r}")
    return stats._choose_groups(available, groups)[0]


def difference_data(source, layer, quantity="G", groups=None, fdr=True, alpha=0.05, mode="auto",
                    position=None, n_permutations=0, seed=0, log=False):
    """The numbers behind :func:`plot_group_differences`, as a dict.

    Modes: "paper" (one Record; ``map`` = log10(sigma_a / sigma_b) over steps x index, with the
    paper's per-step and per-index tests as marginals), "per_sample" (one Record with per-sample
    values) and "seeds" (a list of Records); in the two replicate modes ``map`` = -log10 q (or p)
    of Welch's test (the permutation test when ``n_permutations`` > 0) per cell, ``sig`` the
    significant cells, and the marginals the smallest q per step / per index.
    """
    seeds = isinstance(source, (list, tuple))
    if mode == "auto":
        mode = "seeds" if seeds else "paper"
    if mode not in ("paper", "per_sample", "seeds"):
        raise ValueError(f"unknown mode {mode!r}: use 'auto', 'paper', 'per_sample' or 'seeds'")
    if seeds != (mode == "seeds"):
        raise ValueError("mode 'seeds' takes a list of Records (one per seed); the other modes take one Record")
    opts = dict(fdr=fdr, log=log)
    out = {"mode": mode, "alpha": alpha, "fdr": fdr, "layer": layer, "quantity": quantity}
    crit = "q" if fdr else "p"
    if mode == "paper":
        pair = _pair(groups, source.groups)
        step = stats.paper_step_tests(source, layer, quantity, groups=pair, position=position, **opts)[0]
        index = stats.paper_index_tests(source, layer, quantity, groups=pair, position=position, **opts)[0]
        a = _positive(source.series(layer, quantity, group=pair[0], position=position))
        b = _positive(source.series(layer, quantity, group=pair[1], position=position))
        a, b = stats._pad_columns([a, b])
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log10(a) - np.log10(b)
        out.update(map=ratio, map_label=f"log10(σ {pair[0]} / σ {pair[1]})", sig=None,
                   step_p=step.q if fdr else step.p, step_sig=step.significant(alpha),
                   index_p=index.q if fdr else index.p, index_sig=index.significant(alpha),
                   marginal_label=(f"−log10 {crit}\nper-step test", f"−log10 {crit}, per-index test"),
                   mean=(a, b), se=(None, None), steps=np.asarray(source.steps), results=[step, index])
    else:
        if mode == "seeds":
            pair = _pair(groups, stats._check_seed_records(source)[1])
            res = stats.seed_tests(source, layer, quantity, groups=pair, position=position,
                                   n_permutations=n_permutations, seed=seed, **opts)
            reps = [np.stack(stats._pad_columns([np.asarray(r.series(layer, quantity, group=g, position=position))
                                                 for r in source])) for g in pair]
            steps = np.asarray(source[0].steps)
        else:
            if quantity != "G":
                raise ValueError(
                    f"per-sample values are spectra of G; quantity {quantity!r} is not available per sample")
            labels = source.sample_groups
            if labels is None:
                raise ValueError("the record has no sample group labels: record with groups=labels")
            labels = np.asarray(labels).astype(str)
            pair = _pair(groups, list(dict.fromkeys(labels.tolist())))
            res = stats.per_sample_tests(source, layer, groups=pair, n_permutations=n_permutations, seed=seed, **opts)
            x = np.moveaxis(np.asarray(source.per_sample(layer), dtype=np.float64), 1, 0)
            reps = [x[labels == g] for g in pair]
            steps = np.asarray(source.steps)
        result = res[-1]  # the permutation test when asked for, else Welch
        vals = result.q if fdr else result.p
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: mean and SE stay NaN
            neglog = -np.log10(vals)
            mean = [np.nanmean(_positive(r), axis=0) for r in reps]
            se = [np.nanstd(_positive(r), axis=0, ddof=1) / np.sqrt(np.sum(r > 0, axis=0)) for r in reps]
        sig = result.significant(alpha)
        best = np.where(np.isnan(vals), np.inf, vals)
        step_p, index_p = best.min(axis=1), best.min(axis=0)
        out.update(map=neglog, map_label=f"−log10 {crit} ({result.test})", sig=sig,
                   step_p=np.where(np.isinf(step_p), np.nan, step_p), step_sig=sig.any(axis=1),
                   index_p=np.where(np.isinf(index_p), np.nan, index_p), index_sig=sig.any(axis=0),
                   marginal_label=(f"−log10 min {crit}\nper step", f"−log10 min {crit} per index"),
                   mean=tuple(mean), se=tuple(se), steps=steps, results=res)
    out["groups"] = pair
    out["indices"] = np.arange(out["map"].shape[1])
    return out


def _outline_segments(mask, xe, ye):
    """Line segments along the cell edges that separate True from False cells of ``mask`` (x, y)."""
    m = np.pad(np.asarray(mask, dtype=bool), 1)
    segs = []
    ix, iy = np.nonzero(m[1:, 1:-1] != m[:-1, 1:-1])  # vertical edges at x edge ix, cell row iy
    segs += [((xe[i], ye[j]), (xe[i], ye[j + 1])) for i, j in zip(ix, iy)]
    ix, iy = np.nonzero(m[1:-1, 1:] != m[1:-1, :-1])  # horizontal edges at y edge iy
    segs += [((xe[i], ye[j]), (xe[i + 1], ye[j])) for i, j in zip(ix, iy)]
    return segs


def _rug(ax, positions, axis, colour="crimson"):
    """Short bars just inside the top (axis="x") or right (axis="y") edge at ``positions``."""
    if len(positions) == 0:
        return
    if axis == "x":
        trans = mtransforms.blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(positions, np.full(len(positions), 0.97), marker="|", s=60, color=colour, transform=trans,
                   clip_on=False, zorder=5)
    else:
        trans = mtransforms.blended_transform_factory(ax.transAxes, ax.transData)
        ax.scatter(np.full(len(positions), 0.985), positions, marker="_", s=60, color=colour, transform=trans,
                   clip_on=False, zorder=5)


def difference_norm(data_list):
    """A colour norm shared by several difference maps of the same mode."""
    mode = data_list[0]["mode"]
    values = np.concatenate([np.ravel(d["map"]) for d in data_list])
    finite = values[np.isfinite(values)]
    if mode == "paper":
        top = float(np.percentile(np.abs(finite), 99)) if finite.size else 1.0
        top = top if top > 0 else 1.0
        return mcolors.Normalize(-top, top)
    thresh = -np.log10(data_list[0]["alpha"])
    top = float(finite.max()) if finite.size else 1.0
    return mcolors.Normalize(0.0, max(top, 2 * thresh))


def draw_difference_map(ax, data, norm=None, rugs=True):
    """Draw a :func:`difference_data` map into ``ax``: replicate modes dim non-significant cells
    and outline significant ones; paper mode marks significant steps (top) and indices (right)."""
    steps, idx = data["steps"], data["indices"]
    xe, ye = _edges(steps), _edges(idx)
    paper = data["mode"] == "paper"
    norm = norm or difference_norm([data])
    cmap = "RdBu_r" if paper else "viridis"
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(data["map"]).T, cmap=cmap, norm=norm,
                         shading="flat", rasterized=True)
    if not paper:
        sig = data["sig"]
        dim = np.ma.masked_where(sig, np.ones(sig.shape))
        ax.pcolormesh(xe, ye, dim.T, cmap=mcolors.ListedColormap(["white"]), alpha=0.55,
                      shading="flat", rasterized=True)
        segs = _outline_segments(sig, xe, ye)
        if segs:
            ax.add_collection(LineCollection(segs, colors="black", linewidths=0.9))
    elif rugs:
        _rug(ax, steps[np.asarray(data["step_sig"], dtype=bool)], "x")
        _rug(ax, idx[np.asarray(data["index_sig"], dtype=bool)], "y")
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[-1], ye[0])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(INDEX_LABEL)
    return mesh


def _shown_indices(data, n_lines):
    """Index 0 plus the indices with the strongest marginal evidence, at most ``n_lines``."""
    p = np.where(np.isnan(data["index_p"]), np.inf, data["index_p"])
    order = [0] + [int(i) for i in np.argsort(p, kind="stable") if int(i) != 0 and np.isfinite(p[i])]
    return order[: max(1, n_lines)]


def _draw_means(ax, data, n_lines):
    steps = data["steps"]
    colours = ["C0", "C1", "C2", "C3", "C4", "C5"]
    shown = _shown_indices(data, n_lines)
    for c, i in enumerate(shown):
        for g, style, mean, se in zip(data["groups"], ("-", "--"), data["mean"], data["se"]):
            ax.plot(steps, mean[:, i], style, color=colours[c % 6], lw=1.3, label=f"σ{i}  {g}")
            if se is not None:
                ax.fill_between(steps, mean[:, i] - se[:, i], mean[:, i] + se[:, i], color=colours[c % 6],
                                alpha=0.15, lw=0)
    values = np.concatenate([np.ravel(m[:, shown]) for m in data["mean"]])
    _set_log_limits(ax, values[values > 0])
    ax.set_xlabel(STEP_LABEL)
    ax.set_ylabel(SIGMA_LABEL)
    ax.legend(fontsize=7, ncol=2 if n_lines > 2 else 1, loc="best", frameon=False)


def plot_group_differences(source, layer, quantity="G", groups=None, fdr=True, alpha=0.05, mode="auto",
                           position=None, n_permutations=0, seed=0, log=False, n_lines=3, fig=None):
    """Where two groups' spectra differ over training, for one layer and quantity.

    Left: a map over steps x singular-value index -- with replicates (seed records, or
    ``mode="per_sample"``) the -log10 q (or p) of a per-cell test, non-significant cells dimmed
    and significant ones outlined; for one Record with group spectra (``mode="paper"``) the
    log-ratio of the groups' singular values, with the paper's per-step and per-index tests as
    marginals (red marks: significant). Right: the groups' (mean) trajectories of index 0 and
    the most significant indices (solid: first group, dashed: second; shading: ±1 SE).
    See :func:`difference_data` for the arguments. Returns the Figure.
    """
    data = difference_data(source, layer, quantity, groups, fdr, alpha, mode, position, n_permutations, seed, log)
    fig = fig or new_figure(13.0, 5.2)
    gs = fig.add_gridspec(2, 3, height_ratios=(1, 3.2), width_ratios=(4, 1, 3.2))
    ax_map = fig.add_subplot(gs[1, 0])
    ax_top = fig.add_subplot(gs[0, 0], sharex=ax_map)
    ax_right = fig.add_subplot(gs[1, 1], sharey=ax_map)
    ax_lines = fig.add_subplot(gs[:, 2])
    mesh = draw_difference_map(ax_map, data, rugs=False)
    fig.colorbar(mesh, ax=ax_map, location="bottom", label=data["map_label"], shrink=0.8, aspect=40)
    thresh = -np.log10(alpha)
    with np.errstate(divide="ignore"):
        step_score, index_score = -np.log10(data["step_p"]), -np.log10(data["index_p"])
    steps, idx = data["steps"], data["indices"]
    ax_top.plot(steps, step_score, color="0.3", lw=1)
    ax_top.scatter(steps[data["step_sig"]], step_score[data["step_sig"]], color="crimson", s=10, zorder=3)
    ax_top.axhline(thresh, color="crimson", ls=":", lw=1)
    ax_top.set_ylim(0, max(np.nanmax(step_score, initial=0), thresh) * 1.15)
    ax_top.set_ylabel(data["marginal_label"][0], fontsize=7)
    ax_top.tick_params(labelbottom=False)
    ax_right.plot(index_score, idx, color="0.3", lw=1)
    ax_right.scatter(index_score[data["index_sig"]], idx[data["index_sig"]], color="crimson", s=10, zorder=3)
    ax_right.axvline(thresh, color="crimson", ls=":", lw=1)
    ax_right.set_xlim(0, max(np.nanmax(index_score, initial=0), thresh) * 1.15)
    ax_right.set_xlabel(data["marginal_label"][1], fontsize=7)
    ax_right.tick_params(labelleft=False)
    _draw_means(ax_lines, data, n_lines)
    g0, g1 = data["groups"]
    ax_map.set_title("")
    ax_top.set_title(f"{layer}: {g0} vs {g1} ({data['mode'].replace('_', '-')} test)")
    ax_lines.set_title(f"{'mean ' if data['mode'] != 'paper' else ''}trajectories, {g0} vs {g1}")
    crit = f"FDR q ≤ {alpha:g}" if fdr else f"p ≤ {alpha:g}"
    fig.suptitle(f"Group differences in singular values of {_title(quantity, None, position)} — "
                 f"{layer} ({crit})")
    return fig


# ----------------------------------------------------------------------------------------------
# dashboard
# ----------------------------------------------------------------------------------------------


def _layer_colours(n):
    if n <= 10:
        return [f"C{i}" for i in range(n)]
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def plot_dashboard(rec, quantity="G", layers=None):
    """A one-page overview of a run: loss curve, top singular value per layer over steps, effective
    rank (exp of the spectral entropy) per layer over steps, and each layer's spectrum at the
    last step. Returns the Figure."""
    names = check_layers(rec, layers)
    steps = np.asarray(rec.steps, dtype=np.float64)
    fig = new_figure(11.0, 7.6)
    (ax_loss, ax_top), (ax_rank, ax_last) = fig.subplots(2, 2)
    losses = np.asarray(rec.losses, dtype=np.float64)
    if np.isfinite(losses).any():
        ax_loss.plot(steps, losses, color="k", lw=1.2)
        if np.all(losses[np.isfinite(losses)] > 0):
            ax_loss.set_yscale("log")
    else:
        ax_loss.text(0.5, 0.5, "no loss recorded", transform=ax_loss.transAxes, ha="center", va="center")
    ax_loss.set(title="loss", xlabel=STEP_LABEL, ylabel="loss")
    top_vals = []
    for colour, layer in zip(_layer_colours(len(names)), names):
        series = np.asarray(rec.series(layer, quantity), dtype=np.float64)
        top = _positive(series[:, 0]) if series.shape[1] else np.full(len(steps), np.nan)
        top_vals.append(top)
        ax_top.plot(steps, top, color=colour, lw=1.2, label=layer)
        ax_rank.plot(steps, stats.effective_rank(np.maximum(series, 0.0)), color=colour, lw=1.2)
        last = _positive(series[-1]) if len(series) else np.array([])
        ax_last.plot(np.arange(last.size), last, "-o", color=colour, ms=2.5, lw=1)
    _set_log_limits(ax_top, np.concatenate(top_vals) if top_vals else np.array([]))
    ax_top.set(title=f"top singular value of {quantity}", xlabel=STEP_LABEL, ylabel=SIGMA_LABEL)
    ax_rank.set(title=f"effective rank of {quantity}", xlabel=STEP_LABEL, ylabel="effective rank")
    ax_last.set_yscale("log")
    last_step = int(steps[-1]) if len(steps) else "-"
    ax_last.set(title=f"spectrum of {quantity} at step {last_step}", xlabel=INDEX_LABEL, ylabel=SIGMA_LABEL)
    fig.legend(*ax_top.get_legend_handles_labels(), loc="outside lower center", ncol=min(len(names), 5),
               fontsize=8, frameon=False)
    meta = rec.metadata or {}
    name = meta.get("experiment") or meta.get("model") or "run"
    fig.suptitle(f"AutoSpec dashboard: {name} ({len(steps)} steps recorded)")
    return fig


def save_figure(fig, path, formats=("png", "pdf"), dpi=150):
    """Write ``fig`` to ``path`` + ".png", ".pdf" (one file per format); returns the paths written.

    A known image extension on ``path`` is dropped first ("out/fig.png" -> "out/fig.png" and
    "out/fig.pdf"); missing parent folders are created.
    """
    if isinstance(formats, str):
        formats = (formats,)
    known = {"png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp"}
    bad = [f for f in formats if f.lower() not in known]
    if bad or not formats:
        raise ValueError(f"unsupported figure format(s) {bad or formats}; use some of {sorted(known)}")
    base = Path(path)
    if base.suffix.lower().lstrip(".") in known:
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = base.with_name(f"{base.name}.{fmt.lower()}")
        fig.savefig(target, dpi=dpi, format=fmt.lower())
        written.append(target)
    return written


from .plot_panels import plot_panels  # noqa: E402  (the panel figure builds on the helpers above)
