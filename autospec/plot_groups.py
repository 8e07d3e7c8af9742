"""Figures of group differences: where two groups' spectra differ over training.

By default these figures show only **calibrated** tests (``stats.group_tests(...,
tests="calibrated")``): per-cell Welch (or permutation) tests with the samples of a record
(``per_sample=True``) or the seeds of a list of records as replicates, BH-FDR over the map. A
record without such replicates raises ``stats.NotCalibratedError`` (saying what to record)
instead of drawing uncalibrated maps. ``tests="paper"`` draws the paper's tests (the log-ratio of
the two groups' spectra with its per-step and per-index t-tests), titled "paper (uncalibrated)".

Cells whose values sat at/below the noise floor are not tested; they are drawn hatched grey.
Every title names the test; the group scaling of the record's group spectra (``group_scale``)
is named in a footer.

Also available from ``autospec.plot``.
"""
from __future__ import annotations

import itertools
import textwrap
import warnings

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import transforms as mtransforms
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from . import plot_base as base
from .plot_base import PlotError
from . import stats
from .plot_floor import draw_below_floor_cells, floor_legend_handles, signal

__all__ = [
    "TESTS",
    "PAPER_LABEL",
    "record_groups",
    "choose_groups",
    "difference_data",
    "difference_norm",
    "draw_difference_map",
    "plot_group_differences",
    "plot_group_pairs",
    "group_scale_note",
]

TESTS = ("calibrated", "paper")
#: How the paper's tests are labelled wherever they are drawn.
PAPER_LABEL = stats.PAPER_LABEL
_MODES = ("auto", "paper", "per_sample", "seeds")


# ----------------------------------------------------------------------------------------------
# which groups
# ----------------------------------------------------------------------------------------------


def _is_record_list(source):
    return isinstance(source, (list, tuple))


def _labels_of(rec):
    """Every group label of one record: its group spectra and its per-step sample labels."""
    labels = [str(g) for g in rec.groups]
    per_step = stats.step_labels(rec)
    if per_step is not None:
        labels += [g for g in dict.fromkeys(per_step.ravel().tolist()) if g]
    return list(dict.fromkeys(labels))


def record_groups(source):
    """The group labels figures can compare: a Record's (group spectra and sample labels), or
    those every record of a list (one per seed) has."""
    if not _is_record_list(source):
        return _labels_of(source)
    if not source:
        raise PlotError("got an empty list of records")
    each = [_labels_of(rec) for rec in source]
    return [g for g in each[0] if all(g in other for other in each[1:])]


def choose_groups(source, groups=None, minimum=2):
    """``groups`` checked against the source's groups (None or empty = all of them), as strings.

    Unknown labels raise :class:`autospec.groups.GroupError` naming them and the labels there are.
    """
    where = "every seed record" if _is_record_list(source) else "the record"
    return stats.choose_groups(record_groups(source), groups, what=where, minimum=minimum)


def _pair(source, groups):
    if groups is not None and (isinstance(groups, str) or len(groups) != 2):
        raise PlotError(f"groups must name exactly two groups (a, b), got {groups!r}")
    return tuple(choose_groups(source, groups)[:2])


def group_scale_note(source):
    """One line naming how the record's group spectra were scaled, or None when it does not say."""
    rec = source[0] if _is_record_list(source) else source
    scale = ((rec.metadata or {}).get("settings") or {}).get("group_scale")
    if scale is None:
        return None
    how = {"mean": "G = the group's mean gradient, A and D scaled by 1/sqrt(N_g)",
           "sum": "G, A, D summed over the group's samples (eq. 5: larger groups give larger spectra)"}
    return (f"group spectra: group_scale = {scale!r} ({how.get(scale, 'see the record')}); group size still "
            f"shapes group-level spectra -- the calibrated per-sample tests carry the findings")


# ----------------------------------------------------------------------------------------------
# the numbers
# ----------------------------------------------------------------------------------------------


def _which_tests(source, mode, tests):
    if tests not in TESTS:
        raise PlotError(f"unknown tests {tests!r}: use 'calibrated' or 'paper'")
    if mode is None or mode == "auto":
        return tests
    if mode not in _MODES:
        raise PlotError(f"unknown mode {mode!r}: use 'auto', 'paper', 'per_sample' or 'seeds'")
    if _is_record_list(source) != (mode == "seeds"):
        raise PlotError("mode 'seeds' takes a list of Records (one per seed); the other modes take one Record")
    return "paper" if mode == "paper" else "calibrated"


def _mean_and_se(reps):
    """NaN-aware mean and standard error over axis 0 of replicates (n, steps, k)."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells: mean and SE stay NaN
        count = np.sum(np.isfinite(reps), axis=0)
        return np.nanmean(reps, axis=0), np.nanstd(reps, axis=0, ddof=1) / np.sqrt(count)


def _sample_replicates(rec, layer, pair):
    """Per-sample values of ``layer`` split by each step's own sample labels (mini-batches keep
    theirs): one array (N, steps, k) per group, NaN where a sample belongs to another group at
    that step or sits at/below its noise floor."""
    x, labels, _ = stats.per_sample_inputs(rec, layer)  # (steps, N, k), (steps, N), padded alike
    x = np.where(stats.per_sample_below_floor(rec, layer, x), np.nan, x)
    return [np.moveaxis(np.where((labels == g)[..., None], x, np.nan), 1, 0) for g in pair]


def _seed_replicates(records, layer, quantity, pair, position):
    stacks = [[signal(rec, layer, quantity, group=g, position=position)[0] for rec in records] for g in pair]
    padded = stats.pad_columns(stacks[0] + stacks[1])
    n = len(records)
    return [np.stack(padded[:n]), np.stack(padded[n:])]


def _the_test(results, pair, axes, permutation=False):
    """The test of ``pair`` over ``axes`` among ``stats.group_tests`` results (the permutation
    test when asked for and present, else the first, Welch's)."""
    found = [r for r in results if tuple(str(g) for g in r.groups) == pair and tuple(r.axes) == axes]
    return next((r for r in found if r.test.startswith("perm")), found[0]) if permutation else found[0]


def _paper_data(source, layer, quantity, pair, position, results, fdr, alpha):
    """The log-ratio map of two groups' spectra (values above the floor) and the paper's tests."""
    step = _the_test(results, pair, ("step",))
    index = _the_test(results, pair, ("index",))
    raw = stats.pad_columns([source.series(layer, quantity, group=g, position=position) for g in pair])
    a, b = stats.pad_columns([signal(source, layer, quantity, group=g, position=position)[0] for g in pair])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(a) - np.log10(b)
    crit = "q" if fdr else "p"
    return dict(mode="paper", map=ratio, map_label=f"log10(σ {pair[0]} / σ {pair[1]})", sig=None,
                below_floor=np.isfinite(raw[0]) & np.isfinite(raw[1]) & np.isnan(ratio),
                title=f"{step.title}\n{index.title}",
                step_p=step.q if fdr else step.p, step_sig=step.significant(alpha),
                index_p=index.q if fdr else index.p, index_sig=index.significant(alpha),
                marginal_label=(f"−log10 {crit}\nper-step test", f"−log10 {crit}, per-index test"),
                mean=(a, b), se=(None, None), steps=np.asarray(source.steps))


def _replicate_data(source, layer, quantity, pair, position, results, fdr, alpha, permutation):
    """The -log10 q map of a calibrated per-cell test and the groups' mean trajectories."""
    result = _the_test(results, pair, ("step", "index"), permutation)
    seeds = _is_record_list(source)
    reps = (_seed_replicates(source, layer, quantity, pair, position) if seeds
            else _sample_replicates(source, layer, pair))
    vals = result.q if fdr else result.p
    below = np.asarray(result.below_floor, dtype=bool)
    sig = result.significant(alpha) & ~below
    with np.errstate(divide="ignore", invalid="ignore"):
        neglog = np.where(below, np.nan, -np.log10(vals))
    k = neglog.shape[1]
    mean_a, se_a, mean_b, se_b = (np.where(below, np.nan, m[:, :k])
                                  for m in stats.pad_columns([*_mean_and_se(reps[0]), *_mean_and_se(reps[1])]))
    best = np.where(np.isnan(vals) | below, np.inf, vals)
    step_p, index_p = best.min(axis=1), best.min(axis=0)
    crit = "q" if fdr else "p"
    return dict(mode="seeds" if seeds else "per_sample", map=neglog, map_label=f"−log10 {crit} ({result.test})",
                sig=sig, below_floor=below, title=result.title,
                step_p=np.where(np.isinf(step_p), np.nan, step_p), step_sig=sig.any(axis=1),
                index_p=np.where(np.isinf(index_p), np.nan, index_p), index_sig=sig.any(axis=0),
                marginal_label=(f"−log10 min {crit}\nper step", f"−log10 min {crit} per index"),
                mean=(mean_a, mean_b), se=(se_a, se_b), steps=np.asarray(result.steps))


def difference_data(source, layer, quantity="G", groups=None, fdr=True, alpha=0.05, mode="auto",
                    position=None, n_permutations=0, seed=0, log=None, *, tests="calibrated"):
    """The numbers behind :func:`plot_group_differences`, as a dict.

    ``tests="calibrated"`` (default): ``map`` = -log10 q (or p) of the per-cell test from
    ``stats.group_tests`` (the permutation test when ``n_permutations`` > 0, else Welch) with the
    samples of one Record (per-sample values) or the seeds of a list of Records as replicates;
    ``sig`` the significant cells; marginals the smallest q per step / per index. Raises
    ``stats.NotCalibratedError`` when there are no replicates. ``tests="paper"``: ``map`` =
    log10(sigma_a / sigma_b) over steps x index with the paper's per-step and per-index tests as
    marginals. ``below_floor`` marks cells not tested (values at/below the noise floor); ``title``
    names the test. ``mode`` ("paper", "per_sample", "seeds") is the older way to choose.
    """
    tests = _which_tests(source, mode, tests)
    pair = _pair(source, groups)
    if mode == "per_sample" and quantity != "G":
        raise PlotError(f"per-sample values are spectra of G; quantity {quantity!r} is not available per sample")
    results = stats.group_tests(source, layer, quantity, groups=list(pair), tests=tests, position=position,
                                fdr=fdr, n_permutations=n_permutations, seed=seed, log=log)
    if tests == "paper":
        out = _paper_data(source, layer, quantity, pair, position, results, fdr, alpha)
    else:
        out = _replicate_data(source, layer, quantity, pair, position, results, fdr, alpha, bool(n_permutations))
    out.update(alpha=alpha, fdr=fdr, layer=layer, quantity=quantity, groups=pair, tests=tests, results=results,
               group_scale=group_scale_note(source), indices=np.arange(1, out["map"].shape[1] + 1))
    return out


# ----------------------------------------------------------------------------------------------
# drawing
# ----------------------------------------------------------------------------------------------


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
    """A colour norm shared by several difference maps of the same kind."""
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
    """Draw a :func:`difference_data` map into ``ax``: calibrated maps dim non-significant cells
    and outline significant ones; paper maps mark significant steps (top) and indices (right);
    cells below the noise floor are hatched grey."""
    steps, idx = data["steps"], data["indices"]
    xe, ye = base.cell_edges(steps), base.cell_edges(idx)
    paper = data["mode"] == "paper"
    norm = norm or difference_norm([data])
    cmap = "RdBu_r" if paper else "viridis"
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(data["map"]).T, cmap=cmap, norm=norm,
                         shading="flat", rasterized=True)
    if not paper:
        sig = data["sig"]
        dim = np.ma.masked_where(sig | data["below_floor"], np.ones(sig.shape))
        ax.pcolormesh(xe, ye, dim.T, cmap=mcolors.ListedColormap(["white"]), alpha=0.55,
                      shading="flat", rasterized=True)
        segs = _outline_segments(sig, xe, ye)
        if segs:
            ax.add_collection(LineCollection(segs, colors="black", linewidths=0.9, zorder=3))
    elif rugs:
        _rug(ax, steps[np.asarray(data["step_sig"], dtype=bool)], "x")
        _rug(ax, idx[np.asarray(data["index_sig"], dtype=bool)], "y")
    draw_below_floor_cells(ax, data["below_floor"], xe, ye)
    ax.set_xlim(xe[0], xe[-1])
    ax.set_ylim(ye[-1], ye[0])
    ax.yaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel(base.STEP_LABEL)
    ax.set_ylabel(base.INDEX_LABEL)
    return mesh


def map_legend_handles(data):
    """Legend handles for a map: significant cells (calibrated) or marks (paper), and the floor."""
    if data["mode"] == "paper":
        marks = Line2D([], [], marker="|", ls="", color="crimson", ms=9, label="significant step / index")
    else:
        marks = Line2D([], [], color="black", lw=1.2, label="outlined: significant cells")
    return [marks] + floor_legend_handles("cells")


def _shown_indices(data, n_lines):
    """Column 0 (sigma_1) plus the columns with the strongest marginal evidence, at most ``n_lines``."""
    p = np.where(np.isnan(data["index_p"]), np.inf, data["index_p"])
    order = [0] + [int(i) for i in np.argsort(p, kind="stable") if int(i) != 0 and np.isfinite(p[i])]
    return order[: max(1, n_lines)]


def _draw_means(ax, data, n_lines):
    steps = data["steps"]
    colours = ["C0", "C1", "C2", "C3", "C4", "C5"]
    shown = _shown_indices(data, n_lines)
    for c, i in enumerate(shown):
        for g, style, mean, se in zip(data["groups"], ("-", "--"), data["mean"], data["se"]):
            ax.plot(steps, mean[:, i], style, color=colours[c % 6], lw=1.3, label=f"σ{data['indices'][i]}  {g}")
            if se is not None:
                ax.fill_between(steps, mean[:, i] - se[:, i], mean[:, i] + se[:, i], color=colours[c % 6],
                                alpha=0.15, lw=0)
    values = np.concatenate([np.ravel(m[:, shown]) for m in data["mean"]])
    base.set_log_limits(ax, values)
    ax.set_xlabel(base.STEP_LABEL)
    ax.set_ylabel(base.SIGMA_LABEL)
    ax.legend(fontsize=base.SMALL_FONT, ncol=2 if n_lines > 2 else 1, loc="best", frameon=False)


def _scale_line(data):
    """The group-scale note as an extra (smaller-looking, wrapped) title line, or nothing."""
    note = data["group_scale"]
    return "" if not note else "\n" + "\n".join(textwrap.wrap(note, 110))


def _criterion(fdr, alpha):
    return f"FDR q ≤ {alpha:g}" if fdr else f"p ≤ {alpha:g}"


def plot_group_differences(source, layer, quantity="G", groups=None, fdr=True, alpha=0.05, mode="auto",
                           position=None, n_permutations=0, seed=0, log=None, n_lines=3, fig=None, *,
                           tests="calibrated"):
    """Where two groups' spectra differ over training, for one layer and quantity.

    Left: a map over steps x singular-value index -- calibrated tests (default): the -log10 q
    (or p) of a per-cell test with the samples (one Record with per-sample values) or seeds (a
    list of Records) as replicates, non-significant cells dimmed and significant ones outlined;
    ``tests="paper"``: the log-ratio of the groups' singular values with the paper's per-step and
    per-index tests as marginals (red marks: significant), titled "paper (uncalibrated)". Cells
    below the noise floor are hatched. Right: the groups' (mean) trajectories of index 0 and the
    most significant indices (solid: first group, dashed: second; shading: ±1 SE). ``groups``
    names two groups (default: the first two); :func:`plot_group_pairs` shows every pair.
    See :func:`difference_data` for the arguments. Returns the Figure.
    """
    data = difference_data(source, layer, quantity, groups, fdr, alpha, mode, position, n_permutations, seed,
                           log, tests=tests)
    fig = fig or base.new_figure(13.0, 6.0)
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
    ax_top.set_ylabel(data["marginal_label"][0], fontsize=base.SMALL_FONT)
    ax_top.tick_params(labelbottom=False)
    ax_right.plot(index_score, idx, color="0.3", lw=1)
    ax_right.scatter(index_score[data["index_sig"]], idx[data["index_sig"]], color="crimson", s=10, zorder=3)
    ax_right.axvline(thresh, color="crimson", ls=":", lw=1)
    ax_right.set_xlim(0, max(np.nanmax(index_score, initial=0), thresh) * 1.15)
    ax_right.set_xlabel(data["marginal_label"][1], fontsize=base.SMALL_FONT)
    ax_right.tick_params(labelleft=False)
    _draw_means(ax_lines, data, n_lines)
    g0, g1 = data["groups"]
    ax_top.set_title(f"{g0} vs {g1}: {data['title']}", fontsize=10)
    ax_lines.set_title(f"{'mean ' if data['mode'] != 'paper' else ''}trajectories, {g0} vs {g1}")
    fig.legend(handles=map_legend_handles(data), loc="outside lower center", fontsize=base.SMALL_FONT, ncol=2,
               frameon=False)
    kind = f"{PAPER_LABEL}, " if data["mode"] == "paper" else ""
    fig.suptitle(f"Group differences in singular values of {base.describe(quantity, None, position)} -- "
                 f"{layer} ({kind}{_criterion(fdr, alpha)})" + _scale_line(data))
    return fig


def plot_group_pairs(source, layer, quantity="G", groups=None, fdr=True, alpha=0.05, position=None,
                     n_permutations=0, seed=0, log=None, *, tests="calibrated"):
    """Every pair of ``groups`` (default: all of the source's groups) for one layer, as a grid of
    difference maps with one colour scale: row = first group, column = second group (upper
    triangle). Same tests and markings as :func:`plot_group_differences`; a pair too small to
    test is named in its cell. Returns the Figure."""
    chosen = choose_groups(source, groups)
    cells, untested = {}, {}
    for pair in itertools.combinations(chosen, 2):
        try:
            cells[pair] = difference_data(source, layer, quantity, pair, fdr, alpha, None, position, n_permutations,
                                          seed, log, tests=tests)
        except stats.TooFewSamples as exc:
            untested[pair] = str(exc)
    if not cells:
        first = next(iter(untested.values()))
        raise stats.TooFewSamples(f"no pair of groups can be tested ({first})")
    n = len(chosen) - 1
    fig = base.new_figure(2.3 * n + 1.6, 1.9 * n + 2.2)
    grid = fig.subplots(n, n, squeeze=False)
    any_data = next(iter(cells.values()))
    norm = difference_norm(list(cells.values()))
    mesh = None
    for i, j in itertools.product(range(n), range(n)):
        ax = grid[i, j]
        a, b = chosen[i], chosen[j + 1]
        if j < i:
            ax.set_visible(False)
            continue
        if (a, b) in untested:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "\n".join(textwrap.wrap(f"{a} vs {b} not tested: {untested[(a, b)]}", 28)),
                    transform=ax.transAxes, ha="center", va="center", fontsize=base.SMALL_FONT, color="0.4")
            continue
        data = cells[(a, b)]
        mesh = draw_difference_map(ax, data, norm=norm)
        if data["mode"] == "paper":
            found = f"{int(np.sum(data['index_sig']))} indices, {int(np.sum(data['step_sig']))} steps"
        else:
            found = f"{int(np.sum(data['sig']))} cells"
        ax.set_title(f"{a} vs {b}: {found}", fontsize=base.SMALL_FONT)
        ax.tick_params(labelsize=base.SMALL_FONT)
        if i != j:
            ax.set_xlabel("")
            ax.set_ylabel("")
            ax.tick_params(labelbottom=False, labelleft=False)
        else:
            ax.xaxis.label.set_size(base.SMALL_FONT)
            ax.yaxis.label.set_size(base.SMALL_FONT)
    paper = any_data["mode"] == "paper"
    label = "log10(σ row group / σ column group)" if paper else any_data["map_label"]
    fig.colorbar(mesh, ax=list(grid.ravel()), location="right", shrink=0.6, label=label)
    fig.legend(handles=map_legend_handles(any_data), loc="outside lower center", ncol=3, fontsize=base.SMALL_FONT,
               frameon=False)
    test = any_data["title"].replace("\n", "; ")
    test_line = "\n".join(textwrap.wrap(f"{PAPER_LABEL + ': ' if paper else ''}{test} ({_criterion(fdr, alpha)})",
                                         int(9 * fig.get_figwidth())))
    fig.suptitle(f"Group differences of {base.describe(quantity, None, position)} -- {layer}, every pair of "
                 f"{len(chosen)} groups (row vs column)\n{test_line}" + _scale_line(any_data))
    return fig
