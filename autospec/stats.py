"""Group statistics on recorded gradient spectra.

Two families of tests live here.

**The paper's tests** (section 2.2): for two groups a, b and one (layer, quantity), the record holds
spectra series S_a, S_b of shape (steps, k). The paper runs two-tailed, equal-variance t-tests

* per training step, with the k singular values of that step as the samples
  (:func:`paper_step_tests`), and
* per singular-value index, with the training steps as the samples -- "the t-tests between the
  transpose" (:func:`paper_index_tests`).

They are reproduced faithfully, but they are descriptive rather than inferential: the k singular
values of one step are not independent draws from a group distribution (they are ordered,
deterministic functions of one matrix), and the steps of one run are strongly autocorrelated, so
the nominal p-values of both tests are not calibrated.

**Sound tests** use real replicates instead: per-sample values (``rec.per_sample(layer)`` with
``rec.sample_groups``, :func:`per_sample_tests`) or one record per seed (:func:`seed_tests`).
Every cell (step, index) is compared with Welch's t-test and, optionally, a permutation test
(valid without normality); p-values are corrected with Benjamini-Hochberg FDR over the steps x
indices map, and Cohen's d gives the effect size. :func:`summarize` says where significant
differences sit, as data and as a text table.

All array-level functions are NaN-aware: NaN marks a missing value (the record pads shorter
spectra with NaN) and is left out of that cell's samples.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import NamedTuple, Sequence

import numpy as np
from scipy import special as _special
from scipy import stats as _sst

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
]


# ----------------------------------------------------------------------------------------------
# array level
# ----------------------------------------------------------------------------------------------


class TTestResult(NamedTuple):
    """t statistic, two-sided p-value and degrees of freedom (arrays over the non-sample axes)."""

    t: np.ndarray
    p: np.ndarray
    df: np.ndarray


class PermutationResult(NamedTuple):
    """Observed statistic, two-sided permutation p-value, permutations used, exact enumeration?"""

    statistic: np.ndarray
    p: np.ndarray
    n_permutations: int
    exact: bool


def _as_float(x, name):
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis of samples, got a scalar")
    return arr


def _samples_first(a, b, axis):
    """Both arrays as float64 with the sample axis first; other axes must agree."""
    a = _as_float(a, "a")
    b = _as_float(b, "b")
    if a.ndim != b.ndim:
        raise ValueError(f"a and b must have the same number of axes, got shapes {a.shape} and {b.shape}")
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"axis={axis} is out of range for arrays with {a.ndim} axes")
    a = np.moveaxis(a, axis, 0)
    b = np.moveaxis(b, axis, 0)
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(
            f"a and b must agree on every axis except the sample axis {axis}: "
            f"got shapes {np.moveaxis(a, 0, axis).shape} and {np.moveaxis(b, 0, axis).shape}"
        )
    return a, b


def _moments(x):
    """Count of non-NaN samples, their mean and sum of squared deviations along axis 0."""
    valid = ~np.isnan(x)
    n = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, x, 0.0).sum(axis=0) / n
        ss = (np.where(valid, x - mean, 0.0) ** 2).sum(axis=0)
    return n.astype(np.float64), mean, ss


def _no_spread(na, ma, ssa, nb, mb, ssb):
    """Cells whose samples do not vary beyond rounding (e.g. a spectrum constant over steps).

    A t statistic there is 0/0 or +-inf by accident of rounding, not evidence: such cells give NaN.
    """
    scale = np.maximum(np.abs(ma), np.abs(mb))
    return (ssa + ssb) <= (na + nb) * (64.0 * np.finfo(np.float64).eps * scale) ** 2


def _two_sided_p(t, df):
    with np.errstate(invalid="ignore"):
        p = 2.0 * _special.stdtr(df, -np.abs(t))
    return np.where(np.isnan(t) | np.isnan(df), np.nan, np.minimum(p, 1.0))


def _scalarize(x):
    return x[()] if isinstance(x, np.ndarray) and x.ndim == 0 else x


def student_t_test(a, b, axis=0):
    """Two-sided equal-variance (Student) t-test of a vs b along ``axis``, NaN-aware.

    Same numbers as ``scipy.stats.ttest_ind(a, b, axis, equal_var=True, nan_policy="omit")``, but
    vectorized over the other axes. Cells with fewer than 3 samples in all (df < 1) give NaN.
    """
    a, b = _samples_first(a, b, axis)
    na, ma, ssa = _moments(a)
    nb, mb, ssb = _moments(b)
    df = na + nb - 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (na >= 1) & (nb >= 1) & (df >= 1)
        df = np.where(ok, df, np.nan)
        pooled = (ssa + ssb) / df
        t = (ma - mb) / np.sqrt(pooled * (1.0 / na + 1.0 / nb))
    t = np.where(ok & ~_no_spread(na, ma, ssa, nb, mb, ssb), t, np.nan)
    return TTestResult(_scalarize(t), _scalarize(_two_sided_p(t, df)), _scalarize(df))


def _welch_from_moments(na, ma, ssa, nb, mb, ssb):
    with np.errstate(invalid="ignore", divide="ignore"):
        va, vb = ssa / (na - 1.0) / na, ssb / (nb - 1.0) / nb  # squared standard errors
        se2 = va + vb
        t = (ma - mb) / np.sqrt(se2)
        # Welch-Satterthwaite degrees of freedom
        df = se2**2 / (va**2 / (na - 1.0) + vb**2 / (nb - 1.0))
    ok = (na >= 2) & (nb >= 2) & ~_no_spread(na, ma, ssa, nb, mb, ssb)
    return np.where(ok, t, np.nan), np.where(ok, df, np.nan)


def welch_test(a, b, axis=0):
    """Two-sided Welch t-test (unequal variances) of a vs b along ``axis``, NaN-aware.

    Same numbers as ``scipy.stats.ttest_ind(a, b, axis, equal_var=False, nan_policy="omit")``,
    vectorized. Cells with fewer than 2 samples in either group give NaN.
    """
    a, b = _samples_first(a, b, axis)
    t, df = _welch_from_moments(*_moments(a), *_moments(b))
    return TTestResult(_scalarize(t), _scalarize(_two_sided_p(t, df)), _scalarize(df))


def cohens_d(a, b, axis=0):
    """Cohen's d = (mean a - mean b) / pooled SD, pooled SD = sqrt((ss_a + ss_b) / (n_a + n_b - 2))."""
    a, b = _samples_first(a, b, axis)
    na, ma, ssa = _moments(a)
    nb, mb, ssb = _moments(b)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = na + nb - 2.0
        d = (ma - mb) / np.sqrt((ssa + ssb) / df)
    ok = (na >= 1) & (nb >= 1) & (df >= 1) & ~_no_spread(na, ma, ssa, nb, mb, ssb)
    return _scalarize(np.where(ok, d, np.nan))


def hedges_g(a, b, axis=0):
    """Hedges' g: Cohen's d times the small-sample correction 1 - 3 / (4 (n_a + n_b) - 9)."""
    d = np.asarray(cohens_d(a, b, axis))
    a, b = _samples_first(a, b, axis)
    n = (~np.isnan(a)).sum(axis=0) + (~np.isnan(b)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        g = d * (1.0 - 3.0 / (4.0 * n - 9.0))
    return _scalarize(g)


def fdr(pvals, method="bh"):
    """FDR-adjusted p-values (q-values) over all entries of ``pvals``, NaN entries left out.

    ``method``: "bh" (Benjamini-Hochberg, independent or positively dependent tests) or "by"
    (Benjamini-Yekutieli, any dependence). Wraps ``scipy.stats.false_discovery_control``; the
    result has the shape of ``pvals`` and NaN where ``pvals`` is NaN. Reject where q <= alpha.
    """
    if method not in ("bh", "by"):
        raise ValueError(f"unknown FDR method {method!r}: use 'bh' (Benjamini-Hochberg) or 'by' (Benjamini-Yekutieli)")
    p = _as_float(pvals, "pvals") if np.ndim(pvals) else np.asarray(pvals, dtype=np.float64)
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("p-values must lie in [0, 1] (NaN allowed for untested cells)")
    q = np.full(p.shape, np.nan)
    if finite.any():
        q[finite] = _sst.false_discovery_control(p[finite], method=method)
    return _scalarize(q)


_fdr = fdr  # record-level functions take a boolean argument named ``fdr``


def _welch_stat_batch(labels, x0, x2, valid, totals, statistic):
    """Statistic for each row of ``labels`` (m, n), 1 = group a, via matrix products (cells vectorized)."""
    s1, s2, cnt = totals
    na = labels @ valid
    sa = labels @ x0
    nb, sb = cnt - na, s1 - sa
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = sa / na, sb / nb
        if statistic == "mean":
            return ma - mb
        qa = labels @ x2
        ssa = np.maximum(qa - na * ma**2, 0.0)
        ssb = np.maximum((s2 - qa) - nb * mb**2, 0.0)
    t, _ = _welch_from_moments(na, ma, ssa, nb, mb, ssb)
    return t


def permutation_test(a, b, n_permutations=9999, seed=0, axis=0, statistic="welch"):
    """Two-sided permutation test of a vs b along ``axis``, vectorized over all other axes.

    The group labels of the pooled samples are permuted (one permutation shared by every cell,
    so the dependence between cells is kept). ``statistic``: "welch" (the Welch t, a studentized
    and therefore more robust choice) or "mean" (difference of means). When the number of
    distinct relabellings C(n_a + n_b, n_a) is <= ``n_permutations``, all of them are enumerated
    and p is exact; otherwise ``n_permutations`` random relabellings (seeded) give the valid
    p = (1 + #{|T_perm| >= |T_obs|}) / (1 + n_permutations) (Phipson & Smyth 2010).
    NaN samples are missing values; cells whose observed statistic is NaN get p = NaN.
    """
    if statistic not in ("welch", "mean"):
        raise ValueError(f"unknown statistic {statistic!r}: use 'welch' or 'mean'")
    if not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    a, b = _samples_first(a, b, axis)
    cell_shape = a.shape[1:]
    na, nb = a.shape[0], b.shape[0]
    if na < 1 or nb < 1:
        raise ValueError(f"each group needs at least one sample, got {na} and {nb}")
    x = np.concatenate([a.reshape(na, -1), b.reshape(nb, -1)], axis=0)
    # The statistics are shift- and scale-invariant per cell: standardizing first keeps the
    # sums-of-squares formulas below free of cancellation.
    valid = ~np.isnan(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        center = np.nanmean(np.where(valid.any(axis=0), x, 0.0), axis=0)
        scale = np.nanstd(np.where(valid.any(axis=0), x, 0.0), axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (x - center) / scale
    x0 = np.where(valid, z, 0.0)
    x2 = x0**2
    validf = valid.astype(np.float64)
    totals = (x0.sum(axis=0), x2.sum(axis=0), validf.sum(axis=0))
    n = na + nb
    identity = np.zeros((1, n))
    identity[0, :na] = 1.0
    observed = _welch_stat_batch(identity, x0, x2, validf, totals, statistic)[0]
    threshold = np.abs(observed) * (1.0 - 1e-9)  # ties up to rounding count as "at least as extreme"

    n_cells = x.shape[1]
    chunk = max(1, min(4096, 2_000_000 // max(n_cells, 1)))
    count = np.zeros(n_cells)
    n_total = math.comb(n, na)
    exact = n_total <= n_permutations
    if exact:
        combos = itertools.combinations(range(n), na)
        done = 0
        while done < n_total:
            rows = list(itertools.islice(combos, chunk))
            labels = np.zeros((len(rows), n))
            labels[np.arange(len(rows))[:, None], np.asarray(rows, dtype=np.intp)] = 1.0
            t = _welch_stat_batch(labels, x0, x2, validf, totals, statistic)
            count += (np.abs(t) >= threshold).sum(axis=0)
            done += len(rows)
        p = count / n_total
        used = n_total
    else:
        rng = np.random.default_rng(seed)
        done = 0
        while done < n_permutations:
            m = min(chunk, n_permutations - done)
            labels = rng.permuted(np.broadcast_to(identity, (m, n)), axis=1)
            t = _welch_stat_batch(labels, x0, x2, validf, totals, statistic)
            count += (np.abs(t) >= threshold).sum(axis=0)
            done += m
        p = (1.0 + count) / (1.0 + n_permutations)
        used = int(n_permutations)
    p = np.where(np.isnan(observed), np.nan, p)
    # the Welch t is scale-free; a difference of means is reported in the data's own units
    stat_out = observed * scale if statistic == "mean" else observed
    return PermutationResult(
        _scalarize(stat_out.reshape(cell_shape)), _scalarize(p.reshape(cell_shape)), used, exact
    )


def effective_rank(sigma, axis=-1):
    """Effective rank exp(H(p)), p_i = sigma_i / sum(sigma), of spectra along ``axis`` (Roy & Vetterli 2007).

    NaN entries are ignored; an all-zero spectrum has effective rank 0, an all-NaN one NaN.
    """
    s = _as_float(sigma, "sigma")
    if np.any(s[~np.isnan(s)] < 0):
        raise ValueError("singular values must be non-negative")
    missing = np.isnan(s).all(axis=axis)
    s = np.where(np.isnan(s), 0.0, s)
    total = s.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / total
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=axis)
    out = np.where(np.squeeze(total, axis=axis) > 0, np.exp(h), 0.0)
    return _scalarize(np.where(missing, np.nan, out))


# ----------------------------------------------------------------------------------------------
# record level
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GroupTest:
    """One group comparison over one (layer, quantity): a map of t, p (and q, d) over ``axes``.

    ``axes`` names the map's axes: ("step",) for :func:`paper_step_tests`, ("index",) for
    :func:`paper_index_tests`, ("step", "index") for the replicate tests. ``steps`` and
    ``indices`` label them. ``q`` holds FDR-adjusted p-values over the whole map (None when FDR
    was not asked for); ``d`` is Cohen's d (group a minus group b) on the same samples.
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

    @property
    def pair(self):
        """The two group labels as "a vs b"."""
        return f"{self.groups[0]} vs {self.groups[1]}"

    def with_fdr(self, method="bh"):
        """A copy with ``q`` = FDR-adjusted p over this map."""
        return dataclasses.replace(self, q=np.asarray(_fdr(self.p, method=method)))

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
        return out

    def to_rows(self):
        """One dict per cell: layer, quantity, groups, test, step, index, t, df, p, q, d."""
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
                }
            )
        return rows


def _choose_groups(available, groups, what="the record"):
    available = [str(g) for g in available]
    if groups is None:
        chosen = list(available)
    else:
        if isinstance(groups, str):
            raise TypeError(f"groups must be a sequence of group labels, not the single string {groups!r}")
        chosen = [str(g) for g in groups]
        unknown = [g for g in chosen if g not in available]
        if unknown:
            raise ValueError(f"unknown group(s) {unknown}; {what} has groups {available}")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"groups must be distinct, got {chosen}")
    if len(chosen) < 2:
        raise ValueError(f"need at least 2 groups to compare, {what} has {chosen or 'none'}")
    return list(itertools.combinations(chosen, 2))


def _transform(x, log):
    if not log:
        return x
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(x > 0, np.log10(np.where(x > 0, x, 1.0)), np.nan)


def _pad_columns(arrays):
    """Pad 2-D or 3-D arrays along the last axis with NaN to a common length."""
    k = max(a.shape[-1] for a in arrays)
    out = []
    for a in arrays:
        pad = [(0, 0)] * (a.ndim - 1) + [(0, k - a.shape[-1])]
        out.append(np.pad(a, pad, constant_values=np.nan))
    return out


def _finish(result, fdr_on, method):
    return result.with_fdr(method) if fdr_on else result


def _group_series_pair(rec, layer, quantity, ga, gb, position, log):
    """The (steps, k) series of two groups (log10 when ``log``); their step counts must match."""
    sa = _transform(np.asarray(rec.series(layer, quantity, group=ga, position=position)), log)
    sb = _transform(np.asarray(rec.series(layer, quantity, group=gb, position=position)), log)
    if sa.shape[0] != sb.shape[0]:
        raise ValueError(f"groups {ga!r} and {gb!r} have {sa.shape[0]} and {sb.shape[0]} steps; they must match")
    return sa, sb


def paper_step_tests(rec, layer, quantity="G", groups=None, position=None, fdr=True, method="bh", log=False):
    """The paper's per-step test: for every pair of groups and every step, a two-sided
    equal-variance t-test with the k singular values of that step as the two samples.

    Returns one :class:`GroupTest` per pair (``axes=("step",)``). Not a calibrated test -- the
    singular values of one matrix are not independent samples (see the module docstring); use
    :func:`per_sample_tests` or :func:`seed_tests` for inference. ``log=True`` tests log10 sigma.
    """
    out = []
    for ga, gb in _choose_groups(rec.groups, groups):
        sa, sb = _group_series_pair(rec, layer, quantity, ga, gb, position, log)
        if sa.shape[1] + sb.shape[1] < 3:
            raise ValueError(
                f"too few samples: layer {layer!r} quantity {quantity!r} has k={sa.shape[1]} and {sb.shape[1]} "
                "singular values for the two groups; the per-step t-test needs at least 3 in total"
            )
        res = student_t_test(sa, sb, axis=1)
        d = cohens_d(sa, sb, axis=1)
        k = max(sa.shape[1], sb.shape[1])
        gt = GroupTest(
            "paper-step", layer, quantity, (ga, gb), position, ("step",), np.asarray(rec.steps),
            np.arange(k), np.atleast_1d(res.t), np.atleast_1d(res.p), np.atleast_1d(res.df),
            np.atleast_1d(d), None, (sa.shape[1], sb.shape[1]),
        )
        out.append(_finish(gt, fdr, method))
    return out


def paper_index_tests(rec, layer, quantity="G", groups=None, position=None, fdr=True, method="bh", log=False):
    """The paper's per-index test ("t-tests between the transpose"): for every pair of groups
    and every singular-value index, a two-sided equal-variance t-test with the training steps as
    the two samples.

    Returns one :class:`GroupTest` per pair (``axes=("index",)``). Not a calibrated test -- the
    steps of one run are autocorrelated, not independent samples (see the module docstring).
    """
    out = []
    for ga, gb in _choose_groups(rec.groups, groups):
        sa, sb = _group_series_pair(rec, layer, quantity, ga, gb, position, log)
        if sa.shape[0] < 2:
            raise ValueError(
                f"too few samples: the per-index t-test uses the steps as samples and needs at least 2 "
                f"recorded steps, the record has {sa.shape[0]}"
            )
        sa, sb = _pad_columns([sa, sb])
        res = student_t_test(sa, sb, axis=0)
        d = cohens_d(sa, sb, axis=0)
        gt = GroupTest(
            "paper-index", layer, quantity, (ga, gb), position, ("index",), np.asarray(rec.steps),
            np.arange(sa.shape[1]), np.atleast_1d(res.t), np.atleast_1d(res.p), np.atleast_1d(res.df),
            np.atleast_1d(d), None, (sa.shape[0], sb.shape[0]),
        )
        out.append(_finish(gt, fdr, method))
    return out


def _replicate_tests(xa, xb, kind, layer, quantity, pair, position, steps, n_permutations, seed, fdr_on, method):
    """Welch (+ permutation) tests of replicates xa (n_a, steps, k) vs xb (n_b, steps, k)."""
    na, nb = xa.shape[0], xb.shape[0]
    if na < 2 or nb < 2:
        raise ValueError(
            f"too few samples: Welch's t-test needs at least 2 replicates per group, got "
            f"{na} for {pair[0]!r} and {nb} for {pair[1]!r}"
        )
    res = welch_test(xa, xb, axis=0)
    d = np.asarray(cohens_d(xa, xb, axis=0))
    indices = np.arange(xa.shape[2])
    common = dict(layer=layer, quantity=quantity, groups=pair, position=position, axes=("step", "index"),
                  steps=np.asarray(steps), indices=indices, d=d, n_samples=(na, nb))
    welch = GroupTest(f"welch-{kind}", t=np.asarray(res.t), p=np.asarray(res.p), df=np.asarray(res.df), **common)
    out = [_finish(welch, fdr_on, method)]
    if n_permutations:
        perm = permutation_test(xa, xb, n_permutations=n_permutations, seed=seed, axis=0, statistic="welch")
        out.append(_finish(GroupTest(f"perm-{kind}", t=np.asarray(perm.statistic), p=np.asarray(perm.p),
                                     df=np.asarray(res.df), **common), fdr_on, method))
    return out


def per_sample_tests(rec, layer, groups=None, n_permutations=0, seed=0, fdr=True, method="bh", log=False):
    """Sound per-cell tests with the samples as replicates: ``rec.per_sample(layer)`` (steps, N, k_s)
    split by ``rec.sample_groups``; for every pair of groups, Welch's t-test (and a permutation
    test when ``n_permutations`` > 0) per (step, index) cell, BH-FDR over the map, Cohen's d.

    Samples are independent replicates, unlike the singular values of one group matrix (the
    paper's per-step test), so these p-values are calibrated. Returns a list of :class:`GroupTest`
    (test "welch-samples", then "perm-samples" when asked), quantity "G".
    """
    labels = rec.sample_groups
    if labels is None:
        raise ValueError("the record has no sample group labels: call rec.set_sample_groups(labels) when recording")
    labels = np.asarray(labels).astype(str)
    present = list(dict.fromkeys(labels.tolist()))
    order = [g for g in rec.groups if g in present]
    available = order if set(order) == set(present) else sorted(present)
    pairs = _choose_groups(available, groups, what="the record's sample labels")
    x = np.asarray(rec.per_sample(layer), dtype=np.float64)
    if x.ndim != 3 or x.shape[1] != labels.shape[0]:
        raise ValueError(
            f"per-sample data of layer {layer!r} has shape {x.shape}, expected (steps, N={labels.shape[0]}, k_s) "
            "matching the sample group labels"
        )
    x = _transform(np.moveaxis(x, 1, 0), log)  # (N, steps, k_s)
    out = []
    for pair in pairs:
        out += _replicate_tests(x[labels == pair[0]], x[labels == pair[1]], "samples", layer, "G", pair, None,
                                rec.steps, n_permutations, seed, fdr, method)
    return out


def _check_seed_records(records):
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise TypeError("records must be a list of Record objects, one per seed")
    if len(records) < 2:
        raise ValueError(f"too few samples: seed tests need at least 2 records (one per seed), got {len(records)}")
    steps0 = np.asarray(records[0].steps)
    for i, r in enumerate(records[1:], start=1):
        s = np.asarray(r.steps)
        if s.shape != steps0.shape or not np.array_equal(s, steps0):
            raise ValueError(
                f"mismatched shapes: record {i} has {s.size} steps ({_short(s)}), record 0 has "
                f"{steps0.size} ({_short(steps0)}); seed records must share their recorded steps"
            )
    groups = [g for g in records[0].groups if all(g in r.groups for r in records[1:])]
    return steps0, groups


def _short(steps):
    return f"{steps[0]}..{steps[-1]}" if len(steps) else "none"


def seed_tests(records, layer, quantity="G", groups=None, position=None, n_permutations=0, seed=0,
               fdr=True, method="bh", log=False):
    """Sound per-cell tests with seeds as replicates: one record per seed, each holding the group
    spectra series; for every pair of groups, Welch's t-test (and a permutation test when
    ``n_permutations`` > 0) per (step, index) cell over the seeds, BH-FDR over the map, Cohen's d.

    Independent runs are independent replicates, unlike the autocorrelated steps of one run (the
    paper's per-index test). The two groups of one seed come from the same run; Welch's test
    ignores that pairing, which is conservative when runs share variation.
    """
    steps, common = _check_seed_records(records)
    pairs = _choose_groups(common, groups, what="every seed record")
    out = []
    for ga, gb in pairs:
        stacks = []
        for g in (ga, gb):
            series = [np.asarray(r.series(layer, quantity, group=g, position=position)) for r in records]
            stacks.append(series)
        padded = _pad_columns(stacks[0] + stacks[1])
        n = len(records)
        xa = _transform(np.stack(padded[:n]), log)
        xb = _transform(np.stack(padded[n:]), log)
        out += _replicate_tests(xa, xb, "seeds", layer, quantity, (ga, gb), position, steps,
                                n_permutations, seed, fdr, method)
    return out


# ----------------------------------------------------------------------------------------------
# summary
# ----------------------------------------------------------------------------------------------


def _by_axis(arr, axes, name):
    """``arr`` with the ``name`` axis first and the other axes flattened: shape (len, -1)."""
    ax = axes.index(name)
    return np.moveaxis(arr, ax, 0).reshape(arr.shape[ax], -1)


def _row(result, alpha, top):
    sig = result.significant(alpha)
    vals = result.q if result.q is not None else result.p
    d_sig = np.abs(result.d[sig])
    row = {
        "layer": result.layer,
        "quantity": result.quantity,
        "position": result.position,
        "groups": result.pair,
        "test": result.test,
        "n_cells": int(np.sum(~np.isnan(result.p))),
        "n_sig": int(sig.sum()),
        "first_step": None,
        "steps_range": "-",
        "sig_steps": [],
        "sig_indices": [],
        "top_indices": [],
        "min_q": float(np.nanmin(vals)) if np.any(~np.isnan(vals)) else float("nan"),
        "max_abs_d": float(np.nanmax(d_sig)) if np.any(~np.isnan(d_sig)) else float("nan"),
    }
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


@dataclasses.dataclass
class Summary:
    """Where significant group differences sit: ``rows`` (one dict per tested map) and ``results``.

    Row keys: layer, quantity, position, groups, test, n_cells, n_sig, first_step, steps_range,
    sig_steps, sig_indices, top_indices, min_q, max_abs_d. ``to_text()`` renders the table.
    """

    rows: list
    results: list
    alpha: float
    fdr: bool
    method: str
    skipped: list = dataclasses.field(default_factory=list)  # (layer, quantity, test, reason) left untested

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
        head = ["layer", "quantity", "groups", "test", "sig/cells", "first_step", "steps_range",
                "top_indices", label, "max|d|"]
        body = []
        for r in (self.significant_rows() if only_significant else self.rows):
            q = "-" if math.isnan(r["min_q"]) else f"{r['min_q']:.2g}"
            d = "-" if math.isnan(r["max_abs_d"]) else f"{r['max_abs_d']:.2f}"
            top = ",".join(str(i) for i in r["top_indices"]) or "-"
            quantity = r["quantity"] if r["position"] is None else f"{r['quantity']}@p{r['position']}"
            body.append([r["layer"], quantity, r["groups"], r["test"], f"{r['n_sig']}/{r['n_cells']}",
                         "-" if r["first_step"] is None else str(r["first_step"]), r["steps_range"], top, q, d])
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [head] + body]
        crit = (f"{self.method.upper()}-FDR q <= {self.alpha:g} within each map" if self.fdr
                else f"uncorrected p <= {self.alpha:g}")
        lines.insert(1, "-" * len(lines[0]))
        if not body:
            lines.append("(no significant cells)" if only_significant else "(nothing tested)")
        lines += [f"not tested: {layer} {quantity} ({test}): {reason}" for layer, quantity, test, reason in self.skipped]
        return "\n".join([f"significance: {crit}"] + lines)

    def __str__(self):
        return self.to_text()


def _is_record_list(source):
    return isinstance(source, (list, tuple))


def summarize(source, groups=None, fdr=True, alpha=0.05, *, layers=None, quantities=None, position=None,
              mode="auto", n_permutations=0, seed=0, method="bh", log=False, top=5):
    """Run the group tests over every layer and quantity and say where differences are significant.

    ``source``: a Record, or a list of Records (one per seed). ``mode``:

    * "auto": a list -> "seeds"; a Record -> "paper" when it holds >= 2 groups, plus
      "per_sample" when it holds per-sample values with sample group labels;
    * "paper": :func:`paper_step_tests` and :func:`paper_index_tests` per layer and quantity;
    * "per_sample": :func:`per_sample_tests` per layer (quantity G);
    * "seeds": :func:`seed_tests` per layer and quantity.

    With ``fdr`` (default), a cell is significant when its BH q <= ``alpha`` (FDR controlled within
    each map of steps x indices); otherwise when p <= ``alpha``. Returns a :class:`Summary`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    modes = ("auto", "paper", "per_sample", "seeds")
    if mode not in modes:
        raise ValueError(f"unknown mode {mode!r}: use one of {modes}")
    seeds = _is_record_list(source)
    if seeds and mode not in ("auto", "seeds"):
        raise ValueError(f"mode {mode!r} needs a single Record; a list of Records is compared with mode='seeds'")
    if not seeds and mode == "seeds":
        raise ValueError("mode 'seeds' needs a list of Records, one per seed")
    first = source[0] if seeds and len(source) else source
    if seeds and not len(source):
        raise ValueError("too few samples: got an empty list of records")
    layer_list = list(first.layers) if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    qty_list = list(first.quantities) if quantities is None else (
        [quantities] if isinstance(quantities, str) else list(quantities))
    combos = [(layer, q) for layer in layer_list for q in qty_list]
    opts = dict(fdr=fdr, method=method, log=log)

    results, skipped = [], []
    if seeds:
        if layers is None or quantities is None:  # skip what some seed did not record per group
            combos = [c for c in combos if all(_records_groups(r, *c, groups, position) for r in source)]
            _require(combos, layer_list, qty_list, groups, "every seed record")
        for layer, q in combos:
            results += seed_tests(source, layer, q, groups=groups, position=position,
                                  n_permutations=n_permutations, seed=seed, **opts)
    else:
        run_paper = mode == "paper" or (mode == "auto" and len(source.groups) >= 2)
        run_ps = mode == "per_sample" or (mode == "auto" and source.sample_groups is not None)
        if mode == "auto" and not (run_paper or run_ps):
            raise ValueError(
                f"nothing to compare: the record has groups {list(source.groups)} (need >= 2) and no "
                "per-sample values with sample group labels; record with groups=labels"
            )
        if run_paper:
            if layers is None or quantities is None:  # skip (layer, quantity) without group spectra
                combos = [c for c in combos if _records_groups(source, *c, groups, position)]
                _require(combos, layer_list, qty_list, groups, "the record")
            for layer, q in combos:
                for test in (paper_step_tests, paper_index_tests):
                    try:
                        results += test(source, layer, q, groups=groups, position=position, **opts)
                    except ValueError as exc:
                        if not str(exc).startswith("too few samples") or (layers is not None and quantities is not None):
                            raise
                        skipped.append((layer, q, test.__name__, str(exc)))
        if run_ps:
            for layer in layer_list:
                if mode == "auto" and not _has_per_sample(source, layer):
                    continue
                results += per_sample_tests(source, layer, groups=groups, n_permutations=n_permutations,
                                            seed=seed, **opts)
    rows = [_row(res, alpha, top) for res in results]
    return Summary(rows, results, alpha, fdr, method, skipped)


def _records_groups(rec, layer, quantity, groups, position):
    """True when ``rec`` holds spectra of every compared group for (layer, quantity, position)."""
    wanted = set(rec.groups if groups is None else (str(g) for g in groups))
    present = {key[2] for key in rec.keys() if key[0] == layer and key[1] == quantity and key[3] == position}
    return len(wanted) >= 2 and wanted <= present


def _require(combos, layers, quantities, groups, where):
    if not combos:
        raise ValueError(
            f"no group spectra to compare: {where} holds spectra of groups {groups or 'all groups'} for none of "
            f"layers {layers} x quantities {quantities}"
        )


def _has_per_sample(rec, layer):
    try:
        x = rec.per_sample(layer)
    except (KeyError, ValueError, LookupError):
        return False
    return x is not None and np.size(x) > 0
