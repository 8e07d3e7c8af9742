"""Group statistics on recorded gradient spectra.

**Calibrated tests (the default).** Tests with real replicates, whose false-positive rate is
controlled: per-sample values (``rec.per_sample(layer)`` with each step's sample labels,
:func:`per_sample_tests`) or one record per seed (:func:`seed_tests`). Every cell (step, index)
is compared with Welch's t-test on log10 values (see :func:`per_sample_tests` for the measured
reason) and, optionally, a permutation test (valid without normality); p-values are corrected
with Benjamini-Hochberg FDR over the steps x indices map, and Cohen's d gives the effect size.
:func:`group_tests` is the entry point for one (layer, quantity); :func:`summarize` runs it over
a record and says where significant differences sit, as data, a text table, JSON or CSV.

**The paper's tests** (section 2.2), always labelled "paper (uncalibrated)": for two groups a, b
and one (layer, quantity), the record holds spectra series S_a, S_b of shape (steps, k). The paper
runs two-tailed, equal-variance t-tests

* per training step, with the k singular values of that step as the samples
  (:func:`paper_step_tests`), and
* per singular-value index, with the training steps as the samples -- "the t-tests between the
  transpose" (:func:`paper_index_tests`).

They are reproduced faithfully, but they are descriptive rather than inferential: the k singular
values of one step are not independent draws from a group distribution (they are ordered,
deterministic functions of one matrix), and the steps of one run are strongly autocorrelated, so
they flag differences under shuffled labels (``tests="paper"`` to get them).

Group-level spectra (the paper's tests, per-seed tests) also depend on group size: a group sum
grows with N_g, and even a group mean's sample-to-sample part shrinks like 1/sqrt(N_g); compare
them at matched sizes (:func:`size_matched`) and let the per-sample tests carry findings.

Values at/below the numerical noise floor are never tested (``GroupTest.below_floor``).
The array-level tests (t-tests, permutation tests, effect sizes, FDR, effective rank) live in
:mod:`autospec.stats_arrays` and are re-exported here; all are NaN-aware: NaN marks a missing
value (the record pads shorter spectra with NaN) and is left out of that cell's samples.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Sequence

import numpy as np

from .errors import AutoSpecError
from .groups import GroupError
from .stats_arrays import (CellMoments, PermutationResult, TTestResult, cohens_d, effective_rank, fdr, hedges_g,
                           permutation_chunk, permutation_test, student_t_test, two_sided_p, welch_test)


__all__ = [
    "TTestResult",
    "PermutationResult",
    "GroupTest",
    "Summary",
    "student_t_test",
    "welch_test",
    "permutation_test",
    "cohens_d",
    "hedges_g",
    "fdr",
    "effective_rank",
    "paper_step_tests",
    "paper_index_tests",
    "per_sample_tests",
    "seed_tests",
    "summarize",
    "group_tests",
    "choose_groups",
    "choose_pairs",
    "pad_columns",
    "step_labels",
    "permute_step_labels",
    "series_above_floor",
    "per_sample_below_floor",
    "summary_of",
    "null_calibration",
    "NullCalibration",
    "plot_null_pvalues",
    "data_baseline",
    "size_matched",
    "SizeMatchedSpectrum",
    "StatsError",
    "TooFewSamples",
    "NotCalibratedError",
]


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------


class StatsError(AutoSpecError, ValueError):
    """Bad input to a group test: an unknown test family, record data of the wrong shape..."""


class TooFewSamples(StatsError):
    """A layer or pair too small to test (one singular value, one replicate, one step).

    Summaries and figures list it as "not tested: ..." instead of stopping."""


class NotCalibratedError(StatsError):
    """No calibrated test can run on this source; the message says what to record instead."""


WHAT_TO_RECORD = ("record per-sample values with sample groups (per_sample=True, the `full` preset, panels G/H), "
                  "or run several seeds; the paper's uncalibrated tests stay available as tests='paper'")

GROUP_SIZE_NOTE = ("group-level spectra grow or shrink with group size (the sample-to-sample part of a group mean "
                   "shrinks like 1/sqrt(N_g), a sum grows with N_g): compare them at matched sizes "
                   "(stats.size_matched) and let the per-sample tests carry findings")


# ----------------------------------------------------------------------------------------------
# record level
# ----------------------------------------------------------------------------------------------

TEST_NAMES = {
    "welch-samples": "Welch per-sample",
    "perm-samples": "permutation per-sample",
    "welch-seeds": "Welch per-seed",
    "perm-seeds": "permutation per-seed",
    "welch-data": "Welch on input features",
    "perm-data": "permutation on input features",
    "paper-step": "paper per-step t-test",
    "paper-index": "paper per-index t-test",
}
PAPER_LABEL = "paper (uncalibrated)"


@dataclasses.dataclass(frozen=True)
class GroupTest:
    """One group comparison over one (layer, quantity): a map of t, p (and q, d) over ``axes``.

    ``axes`` names the map's axes: ("step",) for :func:`paper_step_tests`, ("index",) for
    :func:`paper_index_tests`, ("step", "index") for the replicate tests. ``steps`` and
    ``indices`` label them (1-based: index 1 is sigma_1, the largest). ``q`` holds FDR-adjusted p-values over the whole map (None when FDR
    was not asked for); ``d`` is Cohen's d (group a minus group b) on the same samples.
    ``calibrated``: True for tests with real replicates (samples, seeds), whose false-positive
    rate is controlled; False for the paper's tests. ``below_floor``: boolean map of the cells not
    tested because their values sat at or below the noise floor (p, q are NaN there). ``log``: the
    values were tested as log10. ``title`` names the test for tables and figures.
    """

    test: str
    layer: str
    quantity: str
    groups: tuple
    position: int | None
    axes: tuple
    steps: np.ndarray
    indices: np.ndarray
    t: np.ndarray
    p: np.ndarray
    df: np.ndarray
    d: np.ndarray
    q: np.ndarray | None = None
    n_samples: tuple = ()
    calibrated: bool = False
    below_floor: np.ndarray | None = None
    log: bool = False
    fdr_method: str | None = None

    def __post_init__(self):
        if self.below_floor is None:
            object.__setattr__(self, "below_floor", np.zeros(np.shape(self.p), dtype=bool))

    @property
    def pair(self):
        """The two group labels as "a vs b"."""
        return f"{self.groups[0]} vs {self.groups[1]}"

    @property
    def title(self):
        """e.g. "Welch per-sample, log10, BH-FDR" or "paper per-step t-test (uncalibrated)"."""
        parts = [TEST_NAMES.get(self.test, self.test)]
        if self.log:
            parts.append("log10")
        if self.q is not None:
            parts.append(f"{(self.fdr_method or 'bh').upper()}-FDR")
        return ", ".join(parts) + ("" if self.calibrated else " (uncalibrated)")

    @property
    def label(self):
        """"calibrated" or "paper (uncalibrated)": the column tables show beside the test."""
        return "calibrated" if self.calibrated else PAPER_LABEL

    def with_fdr(self, method="bh"):
        """A copy with ``q`` = FDR-adjusted p over this map."""
        return dataclasses.replace(self, q=np.asarray(fdr(self.p, method=method)), fdr_method=method)

    def significant(self, alpha=0.05):
        """Boolean map: q <= alpha when q is set, else p <= alpha; untestable (NaN) cells are False."""
        vals = self.q if self.q is not None else self.p
        with np.errstate(invalid="ignore"):
            return np.asarray(vals <= alpha)

    def to_dict(self):
        """Plain-Python dict (lists instead of arrays), e.g. for JSON."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        out["title"] = self.title
        return out

    def to_rows(self):
        """One dict per cell: layer, quantity, groups, test, step, index, t, df, p, q, d, below_floor."""
        rows = []
        q = self.q if self.q is not None else np.full(np.shape(self.p), np.nan)
        for cell in np.ndindex(*np.shape(self.p)):
            labels = dict(zip(self.axes, cell))
            rows.append(
                {
                    "layer": self.layer,
                    "quantity": self.quantity,
                    "groups": self.pair,
                    "test": self.test,
                    "step": int(self.steps[labels["step"]]) if "step" in labels else None,
                    "index": int(self.indices[labels["index"]]) if "index" in labels else None,
                    "t": float(self.t[cell]),
                    "df": float(self.df[cell]),
                    "p": float(self.p[cell]),
                    "q": float(q[cell]),
                    "d": float(self.d[cell]),
                    "below_floor": bool(self.below_floor[cell]),
                }
            )
        return rows


def choose_groups(available, groups=None, what="the record", minimum=2):
    """``groups`` (default: all of ``available``) as strings, checked: unknown or repeated labels
    and fewer than ``minimum`` groups are a GroupError naming what ``what`` has."""
    available = [str(g) for g in available]
    if groups is None or (not isinstance(groups, str) and len(groups) == 0):
        chosen = list(available)
    else:
        if isinstance(groups, str):
            raise GroupError(f"groups must be a sequence of group labels, not the single string {groups!r}")
        chosen = [str(g) for g in groups]
        unknown = [g for g in chosen if g not in available]
        if unknown:
            raise GroupError(f"unknown group(s) {unknown}; {what} has groups {available or 'none'}")
        if len(set(chosen)) != len(chosen):
            raise GroupError(f"groups must be distinct, got {chosen}")
    if len(chosen) < minimum:
        raise GroupError(f"need at least {minimum} groups to compare, {what} has {chosen or 'none'}")
    return chosen


def choose_pairs(available, groups=None, what="the record"):
    """Every pair of ``groups`` (default: all of ``available``), in order (see :func:`choose_groups`)."""
    return list(itertools.combinations(choose_groups(available, groups, what), 2))



def transform_values(x, log):
    """log10 of positive values (NaN for values <= 0) when ``log``, else ``x`` unchanged."""
    if not log:
        return x
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)


def pad_columns(arrays):
    """Pad 2-D or 3-D arrays along the last axis with NaN to a common length."""
    k = max(a.shape[-1] for a in arrays)
    out = []
    for a in arrays:
        pad = [(0, 0)] * (a.ndim - 1) + [(0, k - a.shape[-1])]
        out.append(np.pad(a, pad, constant_values=np.nan))
    return out


def finish_fdr(result, fdr_on, method):
    """``result.with_fdr(method)`` when ``fdr_on``, else ``result``."""
    return result.with_fdr(method) if fdr_on else result


def default_log(log):
    """Replicate tests test log10 values unless told otherwise (see :func:`per_sample_tests`)."""
    return True if log is None else bool(log)


def series_above_floor(rec, layer, quantity, group=None, position=None):
    """(values, below): the (steps, k) series with values at/below each step's noise floor as NaN
    (``rec.series(..., above_floor=True)``), and the boolean map of those values. Steps whose
    floor is unknown (older records) keep every value."""
    raw = np.asarray(rec.series(layer, quantity, group=group, position=position), dtype=np.float64)
    kept = np.asarray(rec.series(layer, quantity, group=group, position=position, above_floor=True), dtype=np.float64)
    below = ~np.isnan(raw) & np.isnan(kept)
    return kept, below


def seed_stack(records, layer, quantity, ga, gb, position=None, log=False):
    """Two groups' spectra over seed records as replicates: (x, below) with x (2 * seeds, steps, k),
    group ``ga``'s seeds first, values at/below the noise floor NaN (log10 when ``log``), and below
    (steps, k): the cells where any seed's value sat at/below its floor."""
    stacks, belows = [], []
    for g in (ga, gb):
        for r in records:
            values, below = series_above_floor(r, layer, quantity, g, position)
            stacks.append(values)
            belows.append(below)
    padded = pad_columns(stacks)
    width = padded[0].shape[1]
    below = np.any(np.stack([np.pad(b, [(0, 0), (0, width - b.shape[1])]) for b in belows]), axis=0)
    return transform_values(np.stack(padded), log), below


def _group_series_pair(rec, layer, quantity, ga, gb, position, log):
    """The (steps, k) series of two groups above the floor (log10 when ``log``); step counts must match."""
    sa, ba = series_above_floor(rec, layer, quantity, ga, position)
    sb, bb = series_above_floor(rec, layer, quantity, gb, position)
    if sa.shape[0] != sb.shape[0]:
        raise StatsError(f"groups {ga!r} and {gb!r} have {sa.shape[0]} and {sb.shape[0]} steps; they must match")
    return transform_values(sa, log), transform_values(sb, log), ba.any() or bb.any()


def _floor_lost(p, p_with_floor_values):
    """Cells untested now that would have been tested with the below-floor values kept."""
    return np.isnan(p) & ~np.isnan(p_with_floor_values)


def paper_step_tests(rec, layer, quantity="G", groups=None, position=None, fdr=True, method="bh", log=False):
    """The paper's per-step test: for every pair of groups and every step, a two-sided
    equal-variance t-test with the k singular values of that step as the two samples.

    Returns one :class:`GroupTest` per pair (``axes=("step",)``), labelled "paper (uncalibrated)":
    the singular values of one matrix are not independent samples (see the module docstring), so
    it flags differences under shuffled labels; use :func:`group_tests` (per-sample or per-seed
    tests) for inference. It compares group-level spectra, which depend on group size (see the
    module docstring and :func:`size_matched`). Values at/below the noise floor are left out of
    the samples. ``log=True`` tests log10 sigma.
    """
    out = []
    for ga, gb in choose_pairs(rec.groups, groups):
        sa, sb, any_below = _group_series_pair(rec, layer, quantity, ga, gb, position, log)
        if sa.shape[1] + sb.shape[1] < 3:
            raise TooFewSamples(
                f"too few samples: layer {layer!r} quantity {quantity!r} has k={sa.shape[1]} and {sb.shape[1]} "
                "singular values for the two groups; the per-step t-test needs at least 3 in total"
            )
        res = student_t_test(sa, sb, axis=1)
        below = None
        if any_below:
            ra = transform_values(np.asarray(rec.series(layer, quantity, group=ga, position=position)), log)
            rb = transform_values(np.asarray(rec.series(layer, quantity, group=gb, position=position)), log)
            below = _floor_lost(np.atleast_1d(res.p), np.atleast_1d(student_t_test(ra, rb, axis=1).p))
        d = cohens_d(sa, sb, axis=1)
        k = max(sa.shape[1], sb.shape[1])
        gt = GroupTest(
            "paper-step", layer, quantity, (ga, gb), position, ("step",), np.asarray(rec.steps),
            np.arange(1, k + 1), np.atleast_1d(res.t), np.atleast_1d(res.p), np.atleast_1d(res.df),
            np.atleast_1d(d), None, (sa.shape[1], sb.shape[1]), calibrated=False, below_floor=below, log=bool(log),
        )
        out.append(finish_fdr(gt, fdr, method))
    return out


def paper_index_tests(rec, layer, quantity="G", groups=None, position=None, fdr=True, method="bh", log=False):
    """The paper's per-index test ("t-tests between the transpose"): for every pair of groups
    and every singular-value index, a two-sided equal-variance t-test with the training steps as
    the two samples.

    Returns one :class:`GroupTest` per pair (``axes=("index",)``), labelled "paper (uncalibrated)":
    the steps of one run are autocorrelated, not independent samples (see the module docstring).
    It compares group-level spectra, which depend on group size. Values at/below the noise floor
    are left out of the samples.
    """
    out = []
    for ga, gb in choose_pairs(rec.groups, groups):
        sa, sb, any_below = _group_series_pair(rec, layer, quantity, ga, gb, position, log)
        if sa.shape[0] < 2:
            raise TooFewSamples(
                f"too few samples: the per-index t-test uses the steps as samples and needs at least 2 "
                f"recorded steps, the record has {sa.shape[0]}"
            )
        sa, sb = pad_columns([sa, sb])
        res = student_t_test(sa, sb, axis=0)
        below = None
        if any_below:
            ra, rb = pad_columns([transform_values(np.asarray(rec.series(layer, quantity, group=g, position=position)), log)
                                  for g in (ga, gb)])
            below = _floor_lost(np.atleast_1d(res.p), np.atleast_1d(student_t_test(ra, rb, axis=0).p))
        d = cohens_d(sa, sb, axis=0)
        gt = GroupTest(
            "paper-index", layer, quantity, (ga, gb), position, ("index",), np.asarray(rec.steps),
            np.arange(1, sa.shape[1] + 1), np.atleast_1d(res.t), np.atleast_1d(res.p), np.atleast_1d(res.df),
            np.atleast_1d(d), None, (sa.shape[0], sb.shape[0]), calibrated=False, below_floor=below, log=bool(log),
        )
        out.append(finish_fdr(gt, fdr, method))
    return out


def _replicate_tests(xa, xb, kind, layer, quantity, pair, position, steps, n_permutations, seed, fdr_on, method,
                     log=False, below=None):
    """Welch (+ permutation) tests of replicates xa (n_a, steps, k) vs xb (n_b, steps, k).

    ``below``: (steps, k) cells left untested because a replicate's value sat at/below the floor."""
    na, nb = xa.shape[0], xb.shape[0]
    if na < 2 or nb < 2:
        raise TooFewSamples(
            f"too few samples: Welch's t-test needs at least 2 replicates per group, got "
            f"{na} for {pair[0]!r} and {nb} for {pair[1]!r}"
        )
    if below is not None and below.any():
        xa = np.where(below, np.nan, xa)
        xb = np.where(below, np.nan, xb)
    res = welch_test(xa, xb, axis=0)
    d = np.asarray(cohens_d(xa, xb, axis=0))
    indices = np.arange(1, xa.shape[2] + 1)
    common = dict(layer=layer, quantity=quantity, groups=pair, position=position, axes=("step", "index"),
                  steps=np.asarray(steps), indices=indices, d=d, n_samples=(na, nb), calibrated=True,
                  below_floor=below, log=bool(log))
    welch = GroupTest(f"welch-{kind}", t=np.asarray(res.t), p=np.asarray(res.p), df=np.asarray(res.df), **common)
    out = [finish_fdr(welch, fdr_on, method)]
    if n_permutations:
        perm = permutation_test(xa, xb, n_permutations=n_permutations, seed=seed, axis=0, statistic="welch")
        out.append(finish_fdr(GroupTest(f"perm-{kind}", t=np.asarray(perm.statistic), p=np.asarray(perm.p),
                                     df=np.asarray(res.df), **common), fdr_on, method))
    return out


# ---------------------------------------------------------------- per-sample tests with per-step labels


def step_labels(rec):
    """Each step's sample labels: str array (n_steps, N), "" where a step has fewer samples or no
    labels; None when the record has no labels. Mini-batch records keep labels per step
    (``rec.step_sample_groups()``); older records hold one label vector for every step."""
    labels = rec.step_sample_groups()
    return None if labels is None else np.asarray(labels).astype(str)


def label_codes(labels, names):
    """Integer codes of str labels: index in ``names``, -1 for "" and for labels not in ``names``."""
    codes = np.full(labels.shape, -1, dtype=np.int64)
    for i, name in enumerate(names):
        codes[labels == name] = i
    return codes


def permute_step_labels(codes, rng, m, sample_ids=None):
    """``m`` label permutations of step label codes (steps, N) -> (m, steps, N); -1 (no sample) stays.

    A valid null relabelling: with ``sample_ids`` (steps, N) the labels of the dataset samples are
    permuted (one sample keeps one label at every step it appears); otherwise, when every step holds
    the same positions (full batch), one permutation of the positions is shared by all steps
    (relabelling the subjects); else each step's labels are permuted among its own samples."""
    present = codes >= 0
    n_steps, n = codes.shape
    out = np.full((m, n_steps, n), -1, dtype=np.int64)
    if sample_ids is not None and np.all(sample_ids[present] >= 0):
        ids, inverse = np.unique(sample_ids[present], return_inverse=True)
        id_codes = np.full(ids.size, -1, dtype=np.int64)
        id_codes[inverse] = codes[present]
        if np.any(id_codes[inverse] != codes[present]):
            raise StatsError("a sample id appears with two different group labels; the record's labels are inconsistent")
        perms = rng.permuted(np.broadcast_to(np.arange(ids.size), (m, ids.size)), axis=1)
        out[:, present] = id_codes[perms][:, inverse]
    elif np.all(present == present[0]):
        cols = np.flatnonzero(present[0])
        perms = rng.permuted(np.broadcast_to(cols, (m, cols.size)), axis=1)
        out[:, :, cols] = np.moveaxis(codes[:, perms], 1, 0)
    else:
        keys = rng.random((m, n_steps, n))
        keys[:, ~present] = 2.0  # positions without a sample sort last
        order = np.argsort(keys, axis=-1)  # a random order of each step's samples
        targets = np.argsort(~present, axis=-1, kind="stable")  # each step's sample positions, ascending
        values = np.take_along_axis(np.broadcast_to(codes, out.shape), order, axis=-1)
        np.put_along_axis(out, np.broadcast_to(targets, out.shape).copy(), values, axis=-1)
    return out


def masked_permutation_p(cells, codes, a, b, observed_t, n_permutations, rng, sample_ids=None):
    """Permutation p-values (Phipson & Smyth: (1 + #as extreme) / (1 + M)) of the Welch t of groups
    ``a`` vs ``b`` (codes) per cell, relabelling with :func:`permute_step_labels`."""
    n_steps, n = codes.shape
    k = cells.x0.shape[-1]
    threshold = np.abs(observed_t) * (1.0 - 1e-9)  # ties up to rounding count as "at least as extreme"
    count = np.zeros(observed_t.shape)
    done, chunk = 0, permutation_chunk(n_steps, n, k)
    while done < n_permutations:
        m = min(chunk, n_permutations - done)
        perm = permute_step_labels(codes, rng, m, sample_ids)
        t, _, _ = cells.welch(perm == a, perm == b)
        with np.errstate(invalid="ignore"):
            count += (np.abs(t) >= threshold).sum(axis=0)
        done += m
    p = (1.0 + count) / (1.0 + n_permutations)
    return np.where(np.isnan(observed_t), np.nan, p)


def _floor_ratio(rec, layer):
    """max(m, n) * eps per step, read from the batch G spectrum's recorded floor (None if unknown)."""
    if (layer, "G", None, None) not in {tuple(k) for k in rec.keys()}:
        return None
    floor = np.asarray(rec.floor(layer, "G"), dtype=np.float64)
    top = np.asarray(rec.series(layer, "G"), dtype=np.float64)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top > 0, floor / np.where(top > 0, top, 1.0), np.nan)


def per_sample_below_floor(rec, layer, x):
    """Boolean (steps, N, k_s): per-sample values at/below their noise floor.

    A sample's spectrum has the floor sigma_max(sample) * max(m, n) * eps, the rule of
    :func:`autospec.noise_floor`, with the factor max(m, n) * eps read off the layer's recorded
    batch spectrum (floor / sigma_max). Without a recorded floor only exact zeros count."""
    floor = np.zeros(x.shape[:2] + (1,))
    ratio = _floor_ratio(rec, layer)
    if ratio is not None and ratio.shape[0] == x.shape[0]:
        with np.errstate(invalid="ignore"):
            top = np.max(np.where(np.isnan(x), -np.inf, x), axis=2, keepdims=True)
            floor = np.where(np.isnan(ratio)[:, None, None], 0.0, top * np.nan_to_num(ratio)[:, None, None])
    with np.errstate(invalid="ignore"):
        return x <= floor


def per_sample_inputs(rec, layer, labels=None):
    """(values (steps, N, k_s), labels (steps, N) str, sample ids (steps, N) or None) of a layer,
    padded to one width N (NaN, "", -1)."""
    labels = step_labels(rec) if labels is None else labels
    x = np.asarray(rec.per_sample(layer), dtype=np.float64)
    if labels is None or x.ndim != 3 or x.shape[0] != labels.shape[0]:
        raise StatsError(f"per-sample data of layer {layer!r} has shape {x.shape}, expected (steps, N, k_s) with "
                         "one row of sample labels per step")
    ids = rec.step_sample_ids()
    n = max(x.shape[1], labels.shape[1], 0 if ids is None else np.shape(ids)[1])
    x = np.pad(x, [(0, 0), (0, n - x.shape[1]), (0, 0)], constant_values=np.nan)
    labels = np.pad(labels, [(0, 0), (0, n - labels.shape[1])], constant_values="")
    if ids is not None:
        ids = np.pad(np.asarray(ids), [(0, 0), (0, n - np.shape(ids)[1])], constant_values=-1)
    return x, labels, ids


def sample_groups_present(rec, labels):
    """The labels that occur in ``labels`` (steps, N), in the record's group order when it has one."""
    present = list(dict.fromkeys(labels[labels != ""].tolist()))
    order = [g for g in rec.groups if g in present]
    return order if set(order) == set(present) else sorted(present)


def per_sample_tests(rec, layer, groups=None, n_permutations=0, seed=0, fdr=True, method="bh", log=None):
    """Calibrated per-cell tests with the samples as replicates: ``rec.per_sample(layer)``
    (steps, N, k_s), each step's values split by that step's labels (``rec.step_sample_groups()``,
    so shuffled mini-batches are tested under their own labels); for every pair of groups,
    Welch's t-test (and a permutation test when ``n_permutations`` > 0) per (step, index) cell,
    BH-FDR over the map, Cohen's d.

    Samples are independent replicates, unlike the singular values of one group matrix (the
    paper's per-step test), so these p-values are calibrated. By default (``log=None``) the
    values are tested as log10: per-sample gradient norms |a||d| are heavy-tailed, and Welch on
    raw values with unequal groups is then lopsided (measured at 28 vs 12 lognormal samples:
    5.0% false positives, 4.4% in the upper tail and 0.6% in the lower; 14% at 36 vs 4) and weak
    (19% power at a factor 2, against 48% on log10, whose rate is 4.9%, 2.5%/2.3% per tail);
    ``log=False`` tests raw values. Welch rather than permutation p-values is the default because
    a permutation p cannot go below 1 / (1 + n_permutations), which BH-FDR over a map of many cells
    turns into lost power (measured: 1-3% of null maps flagged with 99 relabellings, against
    2-5% for Welch, on MLP records of 100 steps); both are calibrated. A sample's value at/below its
    noise floor (:func:`per_sample_below_floor`) is left out of its cell like a missing value; a cell
    left with fewer than 2 values per group is not tested (``below_floor``). Returns a list of
    :class:`GroupTest` (test "welch-samples", then "perm-samples" when asked), quantity "G".
    """
    log = default_log(log)
    labels = step_labels(rec)
    if labels is None:
        raise NotCalibratedError(
            "the record has no sample group labels: call rec.set_sample_groups(labels) when recording "
            "(or record with groups=...)")
    x, labels, ids = per_sample_inputs(rec, layer, labels)
    available = sample_groups_present(rec, labels)
    pairs = choose_pairs(available, groups, what="the record's sample labels")
    codes = label_codes(labels, available)
    values = transform_values(x, log)
    # A value at/below its floor is numerically zero: it is left out of its cell (as a missing
    # replicate); a cell is "below floor" when too few values above the floor are left to test.
    cells = CellMoments(np.where(per_sample_below_floor(rec, layer, x), np.nan, values))
    cells_all = CellMoments(values)
    out = []
    for ga, gb in pairs:
        a, b = available.index(ga), available.index(gb)
        in_a, in_b = codes == a, codes == b
        na, nb = int(in_a.sum(axis=1).max()), int(in_b.sum(axis=1).max())
        if na < 2 or nb < 2:
            raise TooFewSamples(
                f"too few samples: Welch's t-test needs at least 2 replicates per group, got "
                f"{na} for {ga!r} and {nb} for {gb!r}")
        t, df, d = cells.welch(in_a, in_b)
        below = _floor_lost(t, cells_all.welch(in_a, in_b)[0])
        common = dict(layer=layer, quantity="G", groups=(ga, gb), position=None, axes=("step", "index"),
                      steps=np.asarray(rec.steps), indices=np.arange(1, x.shape[2] + 1), d=d, n_samples=(na, nb),
                      calibrated=True, below_floor=below, log=log)
        out.append(finish_fdr(GroupTest("welch-samples", t=t, p=two_sided_p(t, df), df=df, **common), fdr, method))
        if n_permutations:
            p = masked_permutation_p(cells, codes, a, b, t, int(n_permutations), np.random.default_rng(seed), ids)
            out.append(finish_fdr(GroupTest("perm-samples", t=t, p=p, df=df, **common), fdr, method))
    return out


# ---------------------------------------------------------------- per-seed tests


def check_seed_records(records):
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise StatsError("records must be a list of Record objects, one per seed")
    if len(records) < 2:
        raise TooFewSamples(f"too few samples: seed tests need at least 2 records (one per seed), got {len(records)}")
    steps0 = np.asarray(records[0].steps)
    for i, r in enumerate(records[1:], start=1):
        s = np.asarray(r.steps)
        if s.shape != steps0.shape or not np.array_equal(s, steps0):
            raise StatsError(
                f"mismatched shapes: record {i} has {s.size} steps ({_short(s)}), record 0 has "
                f"{steps0.size} ({_short(steps0)}); seed records must share their recorded steps"
            )
    groups = [g for g in records[0].groups if all(g in r.groups for r in records[1:])]
    return steps0, groups


def _short(steps):
    return f"{steps[0]}..{steps[-1]}" if len(steps) else "none"


def seed_tests(records, layer, quantity="G", groups=None, position=None, n_permutations=0, seed=0,
               fdr=True, method="bh", log=None):
    """Calibrated per-cell tests with seeds as replicates: one record per seed, each holding the
    group spectra series; for every pair of groups, Welch's t-test (and a permutation test when
    ``n_permutations`` > 0) per (step, index) cell over the seeds, BH-FDR over the map, Cohen's d.

    Independent runs are independent replicates, unlike the autocorrelated steps of one run (the
    paper's per-index test). The two groups of one seed come from the same run; Welch's test
    ignores that pairing, which is conservative when runs share variation. Values are tested as
    log10 by default (``log=None``; singular values are positive magnitudes); a cell where any
    seed's value sits at/below the noise floor is not tested. The test compares group-level
    spectra, which depend on group size: with unequal groups a difference can be size alone
    (see :func:`size_matched`).
    """
    log = default_log(log)
    steps, common = check_seed_records(records)
    pairs = choose_pairs(common, groups, what="every seed record")
    out = []
    n = len(records)
    for ga, gb in pairs:
        x, below = seed_stack(records, layer, quantity, ga, gb, position, log)
        out += _replicate_tests(x[:n], x[n:], "seeds", layer, quantity, (ga, gb), position, steps,
                                n_permutations, seed, fdr, method, log=log, below=below)
    return out


# ---------------------------------------------------------------- one entry point


def _has_per_sample(rec, layer):
    return layer in rec.per_sample_layers


def group_tests(source, layer, quantity="G", groups=None, *, tests="calibrated", position=None, fdr=True,
                method="bh", n_permutations=0, seed=0, log=None):
    """The group tests of one (layer, quantity): a list of :class:`GroupTest`, one per pair (and test).

    ``source``: a Record, or a list of Records (one per seed). ``tests``:

    * "calibrated" (default): tests whose false-positive rate is controlled -- per-sample Welch
      (+ permutation when ``n_permutations``) on the record's per-sample values (quantity "G",
      :func:`per_sample_tests`), or per-seed tests for a list of records (:func:`seed_tests`).
      Raises :class:`NotCalibratedError` (one line, saying what to record) when the source has
      neither, and :class:`TooFewSamples` when a group has fewer than 2 replicates.
    * "paper": the paper's per-step and per-index t-tests (:func:`paper_step_tests`,
      :func:`paper_index_tests`), labelled "paper (uncalibrated)".

    ``log=None``: log10 values for the calibrated tests, raw values for the paper's (as published).
    """
    if tests not in ("calibrated", "paper"):
        raise StatsError(f"unknown tests {tests!r}: use 'calibrated' or 'paper'")
    seeds = isinstance(source, (list, tuple))
    opts = dict(fdr=fdr, method=method)
    if tests == "paper":
        if seeds:
            raise StatsError("the paper's tests compare the groups of one record; give one Record, not a list")
        log = bool(log)
        return (paper_step_tests(source, layer, quantity, groups=groups, position=position, log=log, **opts)
                + paper_index_tests(source, layer, quantity, groups=groups, position=position, log=log, **opts))
    if seeds:
        if len(source) < 2:
            raise NotCalibratedError(f"one seed record gives no replicates for per-seed tests: {WHAT_TO_RECORD}")
        return seed_tests(source, layer, quantity, groups=groups, position=position, n_permutations=n_permutations,
                          seed=seed, log=log, **opts)
    if quantity != "G" or position is not None:
        where = f"quantity {quantity!r}" + ("" if position is None else f" at position {position}")
        raise NotCalibratedError(
            f"no calibrated test for {where} of one record: per-sample values exist for G of whole layers only; "
            f"run several seeds for A/D and positions (tests='paper' gives the uncalibrated tests)")
    if not _has_per_sample(source, layer) or step_labels(source) is None:
        what = "per-sample values" if not _has_per_sample(source, layer) else "sample group labels"
        raise NotCalibratedError(f"layer {layer!r} has no {what}, so no calibrated test can run: {WHAT_TO_RECORD}")
    return per_sample_tests(source, layer, groups=groups, n_permutations=n_permutations, seed=seed, log=log, **opts)


# ----------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------


def _by_axis(arr, axes, name):
    """``arr`` with the ``name`` axis first and the other axes flattened: shape (len, -1)."""
    ax = axes.index(name)
    return np.moveaxis(arr, ax, 0).reshape(arr.shape[ax], -1)


def _row(result, alpha, top, group_scale=None):
    sig = result.significant(alpha)
    vals = result.q if result.q is not None else result.p
    d_sig = np.abs(result.d[sig])
    row = {
        "layer": result.layer,
        "quantity": result.quantity,
        "position": result.position,
        "groups": result.pair,
        "test": result.test,
        "title": result.title,
        "calibrated": bool(result.calibrated),
        "n_cells": int(np.sum(~np.isnan(result.p))),
        "n_sig": int(sig.sum()),
        "n_below_floor": int(np.sum(result.below_floor)),
        "first_step": None,
        "steps_range": "-",
        "sig_steps": [],
        "sig_indices": [],
        "top_indices": [],
        "min_q": float(np.nanmin(vals)) if np.any(~np.isnan(vals)) else float("nan"),
        "max_abs_d": float(np.nanmax(d_sig)) if np.any(~np.isnan(d_sig)) else float("nan"),
        "n_samples": [int(n) for n in result.n_samples],
        "group_scale": group_scale,
    }
    row["n_significant"] = row["n_sig"]
    if "step" in result.axes:
        pos = np.flatnonzero(_by_axis(sig, result.axes, "step").any(axis=1))
        row["sig_steps"] = [int(result.steps[i]) for i in pos]
        row["first_step"] = row["sig_steps"][0] if len(pos) else None
        row["steps_range"] = _step_runs(pos, result.steps)
    if "index" in result.axes:
        counts = _by_axis(sig, result.axes, "index").sum(axis=1)
        best = _by_axis(np.where(np.isnan(vals), np.inf, vals), result.axes, "index").min(axis=1)
        order = np.lexsort((best, -counts))  # most significant cells first, then smallest q
        row["sig_indices"] = [int(result.indices[i]) for i in order if counts[i] > 0]
        row["top_indices"] = row["sig_indices"][:top]
    return row


def _step_runs(pos, steps, limit=3):
    """Contiguous runs of significant step positions as "first-last" text (at most ``limit`` shown)."""
    if len(pos) == 0:
        return "-"
    breaks = np.flatnonzero(np.diff(pos) != 1)
    starts = np.concatenate([[pos[0]], pos[breaks + 1]])
    ends = np.concatenate([pos[breaks], [pos[-1]]])
    shown = zip(starts[:limit], ends[:limit])
    text = ", ".join(f"{steps[a]}" if a == b else f"{steps[a]}-{steps[b]}" for a, b in shown)
    return text + (f" (+{len(starts) - limit} more)" if len(starts) > limit else "")


MACHINE_FIELDS = ("layer", "quantity", "position", "groups", "test", "title", "calibrated", "n_significant",
                  "n_cells", "n_below_floor", "min_q", "max_abs_d", "first_step", "sig_steps", "top_indices",
                  "n_samples", "group_scale", "alpha", "fdr")
NULL_FIELDS = ("null_rate", "null_interval", "null_n")  # set by `autospec stats --null` on calibrated rows


@dataclasses.dataclass
class Summary:
    """Where significant group differences sit: ``rows`` (one dict per tested map) and ``results``.

    Row keys: layer, quantity, position, groups, test, title, calibrated, n_cells, n_sig (also
    n_significant), n_below_floor, first_step, steps_range, sig_steps, sig_indices, top_indices,
    min_q, max_abs_d, n_samples, group_scale. ``to_text()`` renders the table, ``to_json()`` and
    ``to_csv()`` the machine-readable rows (:meth:`machine_rows`). ``skipped`` lists
    (layer, quantity, test, reason) of tests that could not run; ``notes`` the footer lines.
    """

    rows: list
    results: list
    alpha: float
    fdr: bool
    method: str
    skipped: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def significant_rows(self):
        """Rows with at least one significant cell."""
        return [r for r in self.rows if r["n_sig"] > 0]

    def to_text(self, only_significant=False):
        """Readable fixed-width table, one line per (layer, quantity, pair, test)."""
        label = "min_q" if self.fdr else "min_p"
        head = ["layer", "quantity", "groups", "test", "sig/cells", "first_step", "steps_range", "top_indices",
                label, "max|d|", "below_floor", "kind"]
        body = []
        for r in (self.significant_rows() if only_significant else self.rows):
            q = "-" if math.isnan(r["min_q"]) else f"{r['min_q']:.2g}"
            d = "-" if math.isnan(r["max_abs_d"]) else f"{r['max_abs_d']:.2f}"
            top = ",".join(str(i) for i in r["top_indices"]) or "-"
            quantity = r["quantity"] if r["position"] is None else f"{r['quantity']}@p{r['position']}"
            kind = "calibrated" if r.get("calibrated") else PAPER_LABEL
            body.append([r["layer"], quantity, r["groups"], r["test"], f"{r['n_sig']}/{r['n_cells']}",
                         "-" if r["first_step"] is None else str(r["first_step"]), r["steps_range"], top, q, d,
                         str(r.get("n_below_floor", 0)), kind])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head] + body]
        crit = (f"{self.method.upper()}-FDR q <= {self.alpha:g} within each map" if self.fdr
                else f"uncorrected p <= {self.alpha:g}")
        lines.insert(1, "-" * len(lines[0]))
        if not body:
            lines.append("(no significant cells)" if only_significant else "(nothing tested)")
        lines += [f"not tested: {layer} {quantity} ({test}): {reason}" for layer, quantity, test, reason in self.skipped]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join([f"significance: {crit}"] + lines)

    def __str__(self):
        return self.to_text()

    def machine_rows(self):
        """One JSON-safe dict per map: layer, quantity, position, groups ([a, b]), test, title,
        calibrated, n_significant, n_cells, n_below_floor, min_q, max_abs_d (None for NaN),
        first_step, sig_steps, top_indices, n_samples, group_scale, alpha, fdr ("bh"/"by"/None); plus
        null_rate, null_interval, null_n on rows a null calibration was attached to."""
        out = []
        for r in self.rows:
            row = {key: r.get(key) for key in MACHINE_FIELDS + tuple(k for k in NULL_FIELDS if k in r)}
            row["groups"] = r["groups"].split(" vs ", 1)
            row["alpha"] = self.alpha
            row["fdr"] = self.method if self.fdr else None
            for key in ("min_q", "max_abs_d"):
                if row[key] is not None and math.isnan(row[key]):
                    row[key] = None
            out.append(row)
        return out

    def to_json(self, indent=1):
        """The machine rows as a JSON list (NaN written as null)."""
        import json

        return json.dumps(self.machine_rows(), indent=indent)

    def to_csv(self):
        """The machine rows as CSV with a header; lists are written space-separated, groups as "a vs b"."""
        import csv
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        rows = self.machine_rows()
        fields = MACHINE_FIELDS + tuple(k for k in NULL_FIELDS if any(k in row for row in rows))
        writer.writerow(fields)
        for row in rows:
            cells = []
            for key in fields:
                v = row.get(key)
                if key == "groups":
                    v = " vs ".join(v)
                elif isinstance(v, list):
                    v = " ".join(str(x) for x in v)
                cells.append("" if v is None else v)
            writer.writerow(cells)
        return buf.getvalue()


_MODES = {"auto": "calibrated", "per_sample": "calibrated", "seeds": "calibrated", "paper": "paper"}


def _resolve_tests(tests, mode):
    if mode is not None and mode not in _MODES:
        raise StatsError(f"unknown mode {mode!r}: use one of {tuple(_MODES)} (or tests='calibrated'|'paper')")
    if tests is not None and tests not in ("calibrated", "paper"):
        raise StatsError(f"unknown tests {tests!r}: use 'calibrated' or 'paper'")
    if tests is not None and mode is not None and _MODES[mode] != tests:
        raise StatsError(f"mode={mode!r} and tests={tests!r} disagree; give only tests=")
    return tests or (_MODES[mode] if mode is not None else "calibrated")


def as_list(value, default):
    """``value`` as a list (a single string becomes a one-item list); ``default`` when None."""
    if value is None:
        return list(default)
    return [value] if isinstance(value, str) else list(value)


def summarize(source, groups=None, fdr=True, alpha=0.05, *, layers=None, quantities=None, position=None,
              tests=None, mode=None, n_permutations=0, seed=0, method="bh", log=None, top=5):
    """Run the group tests over every layer and quantity and say where differences are significant.

    ``source``: a Record, or a list of Records (one per seed). ``tests``:

    * "calibrated" (the default): per-sample tests (:func:`per_sample_tests`) on every layer with
      per-sample values, or per-seed tests (:func:`seed_tests`) of every (layer, quantity) for a
      list of records. A record with neither raises :class:`NotCalibratedError`, whose one line
      says what to record.
    * "paper": :func:`paper_step_tests` and :func:`paper_index_tests` per layer and quantity,
      labelled "paper (uncalibrated)".

    ``mode`` (older spelling) maps onto ``tests``: "auto", "per_sample", "seeds" -> "calibrated",
    "paper" -> "paper". Every test that can run is kept; the ones that cannot (a 1-unit layer, a
    group with one sample) are listed in ``Summary.skipped`` and the table ("not tested: ...").
    With ``fdr`` (default), a cell is significant when its BH q <= ``alpha`` (FDR controlled
    within each map of steps x indices); otherwise when p <= ``alpha``. Returns a :class:`Summary`.
    """
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must lie in (0, 1), got {alpha}")
    tests = _resolve_tests(tests, mode)
    seeds = isinstance(source, (list, tuple))
    if seeds and not len(source):
        raise TooFewSamples("too few samples: got an empty list of records")
    if seeds and mode in ("paper", "per_sample"):
        raise StatsError(f"mode {mode!r} needs a single Record; a list of Records is compared per seed")
    if not seeds and mode == "seeds":
        raise StatsError("mode 'seeds' needs a list of Records, one per seed")
    first = source[0] if seeds else source
    explicit = layers is not None and quantities is not None
    opts = dict(fdr=fdr, method=method, n_permutations=n_permutations, seed=seed, log=log)
    results, skipped = [], []

    def run(layer, quantity, name, fn):
        try:
            results.extend(fn())
        except TooFewSamples as exc:
            skipped.append((layer, quantity, name, str(exc)))

    if tests == "paper":
        if seeds:
            raise StatsError("the paper's tests compare the groups of one record; give one Record, not a list")
        combos = [(lay, q) for lay in as_list(layers, first.layers) for q in as_list(quantities, first.quantities)]
        if not explicit:  # skip (layer, quantity) without group spectra
            combos = [c for c in combos if _records_groups(first, *c, groups, position)]
            _require(combos, layers, quantities, groups, "the record")
        for layer, q in combos:
            for fn in (paper_step_tests, paper_index_tests):
                run(layer, q, fn.__name__, lambda: fn(first, layer, q, groups=groups, position=position, fdr=fdr,
                                                       method=method, log=bool(log)))
    elif seeds:
        combos = [(lay, q) for lay in as_list(layers, first.layers) for q in as_list(quantities, first.quantities)]
        if not explicit:  # skip what some seed did not record per group
            combos = [c for c in combos if all(_records_groups(r, *c, groups, position) for r in source)]
            _require(combos, layers, quantities, groups, "every seed record")
        for layer, q in combos:
            run(layer, q, "seed_tests", lambda: group_tests(source, layer, q, groups, position=position, **opts))
    else:
        if step_labels(first) is None or not first.per_sample_layers:
            what = "sample group labels" if first.per_sample_layers else "per-sample values"
            raise NotCalibratedError(f"the record has no {what}, so no calibrated test can run: {WHAT_TO_RECORD}")
        wanted_q = as_list(quantities, ["G"])
        for layer in as_list(layers, first.per_sample_layers):
            for q in wanted_q:
                if q != "G" or position is not None or not _has_per_sample(first, layer):
                    skipped.append((layer, q, "per_sample_tests",
                                    "no per-sample values" if q == "G" else
                                    "per-sample values exist for G only; run several seeds to test A/D"))
                    continue
                run(layer, q, "per_sample_tests",
                    lambda: group_tests(first, layer, "G", groups, position=None, **opts))
    if not results and skipped:
        reasons = "; ".join(f"{s[0]} {s[1]}: {s[3]}" for s in skipped)
        if all(s[3].startswith("too few samples") for s in skipped):
            raise TooFewSamples(f"nothing could be tested: {reasons}")
        raise NotCalibratedError(f"no calibrated test can run ({reasons}): {WHAT_TO_RECORD}")
    group_scale = ((first.metadata or {}).get("settings") or {}).get("group_scale")
    return summary_of(results, alpha, fdr, method, skipped=skipped, group_scale=group_scale, top=top)


def summary_of(results, alpha=0.05, fdr=True, method="bh", *, skipped=(), group_scale=None, top=5):
    """A :class:`Summary` of given :class:`GroupTest` results (e.g. of :func:`data_baseline`)."""
    rows = [_row(res, alpha, top, group_scale) for res in results]
    return Summary(rows, list(results), alpha, fdr, method, list(skipped), _notes(results, group_scale))


def _notes(results, group_scale):
    notes = []
    kinds = {r.test for r in results}
    if any(not r.calibrated for r in results):
        notes.append(f"{PAPER_LABEL}: the paper's t-tests treat singular values or steps as independent samples "
                     "and flag differences under shuffled labels; read them as descriptions, not findings")
    if any(r.log for r in results if r.calibrated):
        notes.append("calibrated tests compare log10 values (Welch; see stats.per_sample_tests)")
    if kinds & {"paper-step", "paper-index", "welch-seeds", "perm-seeds"}:
        notes.append(GROUP_SIZE_NOTE + (f" (recorded with group_scale={group_scale})" if group_scale else ""))
    if any(np.any(r.below_floor) for r in results):
        notes.append("below_floor: cells not tested because values sat at/below the numerical noise floor")
    return notes


def _records_groups(rec, layer, quantity, groups, position):
    """True when ``rec`` holds spectra of every compared group for (layer, quantity, position)."""
    wanted = set(rec.groups if groups is None else (str(g) for g in groups))
    present = {key[2] for key in rec.keys() if key[0] == layer and key[1] == quantity and key[3] == position}
    return len(wanted) >= 2 and wanted <= present


def _require(combos, layers, quantities, groups, where):
    if not combos:
        raise StatsError(
            f"no group spectra to compare: {where} holds spectra of groups {groups or 'all groups'} for none of "
            f"layers {layers or 'all'} x quantities {quantities or 'all'}"
        )



# calibration checks and baselines live in autospec.calibration (which builds on this module);
# they are part of the stats API and load on first use
_CALIBRATION_NAMES = ("NullCalibration", "SizeMatchedSpectrum", "data_baseline", "null_calibration",
                      "plot_null_pvalues", "size_matched")


def __getattr__(name):
    if name in _CALIBRATION_NAMES:
        from . import calibration

        return getattr(calibration, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
