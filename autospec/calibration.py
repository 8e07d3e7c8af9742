"""Checks a user can run on the group tests of :mod:`autospec.stats`.

* :func:`null_calibration` reruns the calibrated tests on label permutations (no effect by
  construction) and reports how often a map still shows a finding, with a binomial confidence
  interval, plus the histogram of the null p-values (:func:`plot_null_pvalues`). A calibrated
  test keeps that rate at or below alpha, and its null p-values are uniform.
* :func:`data_baseline` runs the same tests on per-sample features of the inputs (their norms, the
  top singular values of each sample): if the raw data already separate the groups, a gradient
  finding says little more.
* :func:`size_matched` compares group-level spectra at equal group sizes: the larger group is
  subsampled to the smaller's size, repeatedly, and the spread is reported. Group-level spectra
  depend on group size whatever the scaling (a sum grows with N_g, the sample-to-sample part of a
  mean shrinks like 1/sqrt(N_g)), so unequal groups are compared this way or not at all.

The functions are re-exported by :mod:`autospec.stats` (``stats.null_calibration`` etc.).
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from scipy import stats as _sst

from . import linalg, stats
from .atomic import free_path

__all__ = ["NullCalibration", "null_calibration", "plot_null_pvalues", "binomial_interval", "free_path",
           "data_baseline", "SizeMatchedSpectrum", "size_matched"]

P_BINS = 20


# ----------------------------------------------------------------------------------------------
# the null rate of findings
# ----------------------------------------------------------------------------------------------


def binomial_interval(hits, trials, level=0.95):
    """Clopper-Pearson (exact) confidence interval of a rate hits / trials."""
    if trials <= 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0
    low = 0.0 if hits == 0 else float(_sst.beta.ppf(tail, hits, trials - hits + 1))
    high = 1.0 if hits == trials else float(_sst.beta.ppf(1.0 - tail, hits + 1, trials - hits))
    return (low, high)


def bh_any(p, alpha, method="bh"):
    """For each row of p-values (m, cells), NaN = untested: does BH (or BY) FDR at ``alpha`` reject anything?

    Same decision as ``stats.fdr(row) <= alpha`` anywhere, vectorized over rows: some sorted
    p_(i) <= alpha * i / m_row (BY: divided by sum_{j<=m} 1/j)."""
    p = np.sort(np.asarray(p, dtype=np.float64).reshape(p.shape[0], -1), axis=1)  # NaN sort last
    m = (~np.isnan(p)).sum(axis=1, keepdims=True)
    rank = np.arange(1, p.shape[1] + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        thresholds = alpha * rank / m
        if method == "by":
            thresholds = thresholds / _harmonic(m)
        return np.any(p <= thresholds, axis=1)


def _harmonic(m):
    top = int(np.max(m)) if np.size(m) else 0
    cumulative = np.concatenate([[1.0], np.cumsum(1.0 / np.arange(1, top + 1))])
    return np.where(m > 0, cumulative[np.maximum(m, 1)], 1.0)


@dataclasses.dataclass
class NullCalibration:
    """How often the chosen tests find something when the labels are permuted (no effect).

    ``maps``: one dict per map (layer, quantity, groups, n_cells, hits, rate, interval), where
    hits counts the permutations with any significant cell. ``rate``/``interval``: pooled over
    maps (hits / (n_null * maps), Clopper-Pearson; maps of one permutation are dependent, so the
    interval is a guide). ``family_rate``: share of permutations with a finding in any map.
    ``p_counts``: histogram of every null p-value over ``P_BINS`` equal bins of [0, 1].
    """

    test: str
    n_null: int
    alpha: float
    null: str
    maps: list
    rate: float
    interval: tuple
    family_rate: float
    p_counts: np.ndarray

    def to_text(self):
        lo, hi = self.interval
        lines = [f"null calibration: {self.test}; {self.n_null} label permutations ({self.null}), alpha {self.alpha:g}",
                 f"maps with any finding: {self.rate:.3f} (95% CI {lo:.3f}-{hi:.3f}); expected <= {self.alpha:g} "
                 f"for a calibrated test; permutations with a finding in any map: {self.family_rate:.3f}"]
        for m in self.maps:
            a, b = m["interval"]
            lines.append(f"  {m['layer']} {m['quantity']} {m['groups']}: {m['hits']}/{self.n_null} = {m['rate']:.3f} "
                         f"(95% CI {a:.3f}-{b:.3f}), {m['n_cells']} cells")
        return "\n".join(lines)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["p_counts"] = self.p_counts.tolist()
        out["interval"] = list(self.interval)
        return out


def _swap_within_seeds(n_seeds, n_steps, rng, m):
    """Null relabelling of seed records: each seed's two group labels swapped with probability 1/2."""
    swap = rng.random((m, 1, n_seeds)) < 0.5
    codes = np.concatenate([swap, ~swap], axis=-1).astype(np.int64)  # 0 = group a
    return np.broadcast_to(codes, (m, n_steps, 2 * n_seeds))


class _NullMap(NamedTuple):
    """One map to calibrate: log values (steps, R, k) with floor cells NaN, label codes (steps, R)
    of the replicates R (None when R are seeds: the first half are group a's), the codes a, b of
    the pair, and sample ids (or None)."""

    layer: str
    quantity: str
    pair: tuple
    values: np.ndarray
    codes: np.ndarray | None
    a: int
    b: int
    ids: np.ndarray | None


def _null_maps(source, layers, groups, quantity, log):
    """Yield a :class:`_NullMap` for every (layer, pair) of ``source``."""
    if isinstance(source, (list, tuple)):
        _, common = stats.check_seed_records(source)
        layer_list = stats.as_list(layers, source[0].layers)
        for layer in layer_list:
            for ga, gb in stats.choose_pairs(common, groups, what="every seed record"):
                x, _ = stats.seed_stack(source, layer, quantity, ga, gb, None, stats.default_log(log))
                yield _NullMap(layer, quantity, (ga, gb), np.moveaxis(x, 0, 1), None, 0, 1, None)
        return
    labels = stats.step_labels(source)
    if labels is None or not source.per_sample_layers:
        raise stats.NotCalibratedError(f"a null calibration relabels samples, and the record has no per-sample values "
                                       f"with labels: {stats.WHAT_TO_RECORD}")
    available = stats.sample_groups_present(source, labels)
    pairs = stats.choose_pairs(available, groups, what="the record's sample labels")
    for layer in stats.as_list(layers, source.per_sample_layers):
        x, lab, ids = stats.per_sample_inputs(source, layer, labels)
        codes = stats.label_codes(lab, available)
        below_values = stats.per_sample_below_floor(source, layer, x)
        values = stats.transform_values(x, stats.default_log(log))
        values = np.where(below_values, np.nan, values)  # as in stats.per_sample_tests
        for ga, gb in pairs:
            a, b = available.index(ga), available.index(gb)
            yield _NullMap(layer, "G", (ga, gb), values, codes, a, b, ids)


def null_calibration(source, n_null=200, *, layers=None, groups=None, quantity="G", alpha=0.05, method="bh",
                     n_permutations=0, log=None, seed=0):
    """Rerun the calibrated tests on ``n_null`` label permutations and count maps with any finding.

    ``source``: a Record with per-sample values (the sample labels are permuted the way
    :func:`stats.permute_step_labels` says: per dataset sample when the record knows sample ids,
    else one relabelling of the positions shared by every step, else within each step), or a
    list of seed Records (each seed's two group labels are swapped at random: a valid null when
    the groups have equal sizes, since group-level spectra depend on group size). The tests are
    Welch's (log10 values by default, as in :func:`stats.per_sample_tests`), or permutation tests
    with ``n_permutations`` relabellings each (nested: costs n_null * n_permutations). BH-FDR
    within each map at ``alpha``. Returns a :class:`NullCalibration`.
    """
    if not isinstance(n_null, (int, np.integer)) or n_null < 1:
        raise stats.StatsError(f"the number of null permutations must be a positive integer, got {n_null!r}")
    if not 0 < alpha < 1:
        raise stats.StatsError(f"alpha must lie in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    maps, p_counts = [], np.zeros(P_BINS, dtype=np.int64)
    family = np.zeros(n_null, dtype=bool)
    for item in _null_maps(source, layers, groups, quantity, log):
        cells, codes, a, b = stats.CellMoments(item.values), item.codes, item.a, item.b
        n_steps, n, k = item.values.shape
        hits = np.zeros(n_null, dtype=bool)
        done, chunk = 0, max(1, stats.permutation_chunk(n_steps, n, k) if not n_permutations else 1)
        n_cells = 0
        while done < n_null:
            m = min(chunk, n_null - done)
            perm = (_swap_within_seeds(n // 2, n_steps, rng, m) if codes is None
                    else stats.permute_step_labels(codes, rng, m, item.ids))
            t, df, _ = cells.welch(perm == a, perm == b)
            p = stats.two_sided_p(t, df)
            if n_permutations:
                p = np.stack([stats.masked_permutation_p(cells, perm[i], a, b, t[i], int(n_permutations), rng)
                              for i in range(m)])
            flat = p.reshape(m, -1)
            n_cells = max(n_cells, int(np.max((~np.isnan(flat)).sum(axis=1))))
            hits[done:done + m] = bh_any(flat, alpha, method)
            p_counts += np.histogram(flat[~np.isnan(flat)], bins=P_BINS, range=(0.0, 1.0))[0]
            done += m
        family |= hits
        maps.append({"layer": item.layer, "quantity": item.quantity, "groups": " vs ".join(item.pair),
                     "n_cells": n_cells,
                     "hits": int(hits.sum()), "rate": float(hits.mean()),
                     "interval": binomial_interval(int(hits.sum()), n_null)})
    if not maps:
        raise stats.TooFewSamples("too few samples: no map to calibrate")
    total = sum(m["hits"] for m in maps)
    trials = n_null * len(maps)
    kind = "permutation" if n_permutations else "Welch"
    seeds = isinstance(source, (list, tuple))
    what = "per-seed" if seeds else "per-sample"
    title = f"{kind} {what}" + (", log10" if stats.default_log(log) else "") + f", {method.upper()}-FDR"
    null = "group labels swapped within seeds" if seeds else "sample labels permuted"
    return NullCalibration(title, int(n_null), alpha, null, maps, total / trials, binomial_interval(total, trials),
                           float(family.mean()), p_counts)


def plot_null_pvalues(result, path):
    """Histogram of the null p-values of a :class:`NullCalibration` (uniform when calibrated) as a
    PNG at ``path`` (never overwriting: a numeric suffix is added when taken). Returns the path."""
    from .plot_base import new_figure  # matplotlib only when a figure is asked for; no pyplot state

    path = free_path(path)
    counts = np.asarray(result.p_counts, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, P_BINS + 1)
    density = counts / max(counts.sum(), 1.0) * P_BINS
    fig = new_figure(5.5, 3.6)
    ax = fig.add_subplot()
    ax.bar(edges[:-1], density, width=np.diff(edges), align="edge", color="#4C72B0", edgecolor="white")
    ax.axhline(1.0, color="k", lw=1, ls="--", label="uniform (calibrated)")
    lo, hi = result.interval
    ax.set_title(f"null p-values: {result.test}\n{result.n_null} permutations; maps with a finding "
                 f"{result.rate:.3f} (CI {lo:.3f}-{hi:.3f})", fontsize=10)
    ax.set_xlabel("p-value under permuted labels")
    ax.set_ylabel("density")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=10, loc="upper right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# ----------------------------------------------------------------------------------------------
# data-only baseline
# ----------------------------------------------------------------------------------------------


def _input_features(X, features, k):
    """{quantity: (N, n_values)} per-sample features of the inputs X (N, ...), and their floors."""
    out = {}
    eps = linalg.data_eps(X.dtype)
    flat = X.reshape(X.shape[0], -1).astype(np.float64)
    for name in features:
        if name == "norm":
            out["input-norm"] = (np.linalg.norm(flat, axis=1)[:, None], None)
        elif name == "spectrum":
            if X.ndim < 3:
                raise stats.StatsError("the 'spectrum' feature needs samples with at least 2 axes (X of shape "
                                       f"(N, rows, cols...)), got X of shape {X.shape}; use features=('norm',)")
            mats = X.reshape(X.shape[0], X.shape[1], -1).astype(np.float64)
            sigma = np.linalg.svd(mats, compute_uv=False)[:, :k]
            floor = sigma[:, :1] * max(mats.shape[1:]) * eps  # the noise floor rule of autospec.noise_floor
            out["input-sigma"] = (sigma, floor)
        else:
            raise stats.StatsError(f"unknown feature {name!r}: use 'norm' and/or 'spectrum'")
    return out


def data_baseline(X, labels, groups=None, *, features=("norm", "spectrum"), k=3, n_permutations=0, seed=0,
                  fdr=True, method="bh", log=None):
    """The calibrated group tests on per-sample features of the inputs instead of gradients.

    ``X``: the inputs, (N, ...) one row per sample; ``labels``: length-N group labels.
    ``features``: "norm" (each sample's Euclidean norm) and "spectrum" (the top ``k`` singular
    values of each sample read as a (rows, rest) matrix, e.g. a sequence's (time, features); needs
    X with >= 3 axes, so it is skipped for flat samples when left at the default). The same tests
    as :func:`stats.per_sample_tests`: Welch on log10 values (+ permutation), BH-FDR per map,
    Cohen's d. Returns :class:`stats.GroupTest` rows (layer "data", quantity "input-norm" /
    "input-sigma", axes ("index",)). A group difference here means the raw data already differ.
    """
    try:
        X = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise stats.StatsError(f"X must be a numeric array of inputs, got {type(X).__name__}") from exc
    if X.ndim < 2 or not np.issubdtype(X.dtype, np.number):
        raise stats.StatsError(f"X must be a numeric array (N, ...) with one row per sample, got shape {X.shape} "
                               f"dtype {X.dtype}")
    labels = np.asarray(labels).astype(str).ravel()
    if labels.shape[0] != X.shape[0]:
        raise stats.GroupError(f"got {labels.shape[0]} labels for {X.shape[0]} samples; give one label per row of X")
    if not np.all(np.isfinite(X)):
        raise stats.StatsError("X holds NaN or Inf")
    if X.ndim < 3 and tuple(features) == ("norm", "spectrum"):
        features = ("norm",)
    available = list(dict.fromkeys(labels.tolist()))
    pairs = stats.choose_pairs(available, groups, what="the labels")
    codes = stats.label_codes(labels[None, :], available)
    log = stats.default_log(log)
    out = []
    for quantity, (values, floor) in _input_features(X, features, k).items():
        below_values = values <= (0.0 if floor is None else floor)
        x = stats.transform_values(values, log)[None]  # one "step": (1, N, n_values)
        cells = stats.CellMoments(np.where(below_values[None], np.nan, x))  # as in stats.per_sample_tests
        cells_all = stats.CellMoments(x)
        for ga, gb in pairs:
            a, b = available.index(ga), available.index(gb)
            in_a, in_b = codes == a, codes == b
            na, nb = int(in_a.sum()), int(in_b.sum())
            if na < 2 or nb < 2:
                raise stats.TooFewSamples(f"too few samples: {na} for {ga!r} and {nb} for {gb!r}; Welch needs 2 each")
            t, df, d = (v[0] for v in cells.welch(in_a, in_b))
            below = np.isnan(t) & ~np.isnan(cells_all.welch(in_a, in_b)[0][0])
            common = dict(layer="data", quantity=quantity, groups=(ga, gb), position=None, axes=("index",),
                          steps=np.zeros(0, dtype=np.int64), indices=np.arange(1, values.shape[1] + 1), d=d,
                          n_samples=(na, nb), calibrated=True, below_floor=below, log=log)
            out.append(stats.finish_fdr(stats.GroupTest("welch-data", t=t, p=stats.two_sided_p(t, df), df=df,
                                                     **common), fdr, method))
            if n_permutations:
                p = stats.masked_permutation_p(cells, codes, a, b, t[None], int(n_permutations),
                                               np.random.default_rng(seed))[0]
                out.append(stats.finish_fdr(stats.GroupTest("perm-data", t=t, p=p, df=df, **common), fdr, method))
    return out


# ----------------------------------------------------------------------------------------------
# size-matched group spectra
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SizeMatchedSpectrum:
    """The spectrum of one group's mean gradient at a common group size.

    ``spectra``: (repeats, k) singular values of (1/size) sum_{n in subset} sum_p A[n,p]^T D[n,p]
    over random subsets of ``size`` of the group's ``n_group`` samples (one row, the whole group,
    when n_group == size); ``low``, ``median``, ``high``: the percentile bands over repeats."""

    group: str
    n_group: int
    size: int
    spectra: np.ndarray
    low: np.ndarray
    median: np.ndarray
    high: np.ndarray
    percentiles: tuple


def _as_factors(F, name):
    F = np.asarray(F, dtype=np.float64)
    if F.ndim == 2:
        F = F[:, None, :]
    if F.ndim != 3:
        raise stats.StatsError(f"{name} must have shape (N, P, features) or (N, features), got {F.shape}")
    return F


def size_matched(A, D, labels, groups=None, *, size=None, repeats=100, percentiles=(5, 50, 95), k=None, seed=0):
    """Group-level gradient spectra at matched group sizes, with the spread over subsamples.

    ``A`` (N, P, in) and ``D`` (N, P, out) are a batch's factors (e.g. ``minigrad.capture_factors``:
    ``factors[name].A``, ``.D``; (N, in)/(N, out) for P = 1); ``labels`` length N. Every group
    is brought to ``size`` samples (default: the smallest group's size): a larger group by
    ``repeats`` random subsets without replacement, a group of exactly that size as itself. The
    spectrum is that of the subset's mean gradient G / size. Group size still matters for
    group-level spectra (a sum grows with N_g; the sample-to-sample part of a mean shrinks like
    1/sqrt(N_g)), so compare groups at one size: differences beyond the bands of the subsampled
    group are not group-size artifacts. Returns {group: :class:`SizeMatchedSpectrum`}.
    """
    A, D = _as_factors(A, "A"), _as_factors(D, "D")
    if A.shape[:2] != D.shape[:2]:
        raise stats.StatsError(f"A and D must share (N, P), got shapes {A.shape} and {D.shape}")
    labels = np.asarray(labels).astype(str).ravel()
    if labels.shape[0] != A.shape[0]:
        raise stats.GroupError(f"got {labels.shape[0]} labels for {A.shape[0]} samples")
    available = list(dict.fromkeys(labels.tolist()))
    chosen = sorted(stats.choose_groups(available, groups, what="the labels"), key=available.index)
    counts = {g: int((labels == g).sum()) for g in chosen}
    size = min(counts.values()) if size is None else int(size)
    if size < 1 or size > min(counts.values()):
        raise stats.TooFewSamples(f"too few samples: size {size} must lie in 1..{min(counts.values())} (the smallest "
                                  f"group; sizes {counts})")
    if not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise stats.StatsError(f"repeats must be a positive integer, got {repeats!r}")
    rng = np.random.default_rng(seed)
    n_values = min(A.shape[2], D.shape[2], size * A.shape[1]) if k is None else int(k)
    out = {}
    for g in chosen:
        members = np.flatnonzero(labels == g)
        subsets = ([members] if counts[g] == size
                   else [rng.choice(members, size=size, replace=False) for _ in range(repeats)])
        spectra = np.full((len(subsets), n_values), np.nan)
        for i, subset in enumerate(subsets):
            sigma = linalg.gradient_svdvals(A[subset], D[subset] / size)[:n_values]
            spectra[i, :sigma.size] = sigma
        low, median, high = np.percentile(spectra, percentiles, axis=0)
        out[g] = SizeMatchedSpectrum(g, counts[g], size, spectra, low, median, high, tuple(percentiles))
    return out
