"""Two-group tests on arrays: Student and Welch t-tests, permutation tests, Cohen's d and
Hedges' g, Benjamini-Hochberg FDR, effective rank, and masked per-cell moments.

Every function is NaN-aware: NaN marks a missing value (a record pads shorter spectra with NaN)
and is left out of that cell's samples. :mod:`autospec.stats` applies them to records.
"""
from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
from scipy import special as _special
from scipy import stats as _sst

__all__ = ["TTestResult", "PermutationResult", "student_t_test", "welch_test", "permutation_test", "cohens_d",
           "hedges_g", "fdr", "effective_rank", "two_sided_p", "CellMoments", "permutation_chunk"]



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


def two_sided_p(t, df):
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
    return TTestResult(_scalarize(t), _scalarize(two_sided_p(t, df)), _scalarize(df))


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
    return TTestResult(_scalarize(t), _scalarize(two_sided_p(t, df)), _scalarize(df))


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


def effective_rank(sigma, axis=-1, floor=None):
    """Effective rank exp(H(p)), p_i = sigma_i / sum(sigma), of spectra along ``axis`` (Roy & Vetterli 2007).

    ``floor``: the noise floor of each spectrum (a number, or an array shaped like ``sigma``
    without ``axis``, e.g. ``rec.floor(layer, quantity)`` for a series); values at or below it
    are numerically zero and do not count (NaN floor: unknown, every value counts). NaN entries
    are ignored; an all-zero spectrum has effective rank 0, an all-NaN one NaN.
    """
    s = _as_float(sigma, "sigma")
    if np.any(s[~np.isnan(s)] < 0):
        raise ValueError("singular values must be non-negative")
    missing = np.isnan(s).all(axis=axis)
    s = np.where(np.isnan(s), 0.0, s)
    if floor is not None:
        f = np.expand_dims(np.asarray(floor, dtype=np.float64), axis) if np.ndim(floor) else np.float64(floor)
        with np.errstate(invalid="ignore"):
            s = np.where(s > np.where(np.isnan(f), -np.inf, f), s, 0.0)
    total = s.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = s / total
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=axis)
    out = np.where(np.squeeze(total, axis=axis) > 0, np.exp(h), 0.0)
    return _scalarize(np.where(missing, np.nan, out))


class CellMoments:
    """Per-sample values (steps, N, k) standardized per cell, ready for masked group sums.

    Welch's t and Cohen's d are invariant to shifting and scaling a cell, and standardizing keeps
    the sums-of-squares formulas free of cancellation. Cells without spread beyond rounding are
    dropped (no evidence, see :func:`_no_spread`)."""

    def __init__(self, x):
        valid = ~np.isnan(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            filled = np.where(valid, x, 0.0)
            n = valid.sum(axis=1, keepdims=True)
            center = filled.sum(axis=1, keepdims=True) / n
            spread = np.sqrt((np.where(valid, x - center, 0.0) ** 2).sum(axis=1, keepdims=True) / n)
            flat = spread <= 64.0 * np.finfo(np.float64).eps * np.abs(center)
            valid = valid & ~flat
            z = (x - center) / np.where(spread > 0, spread, 1.0)
        self.x0 = np.where(valid, z, 0.0)
        self.x2 = self.x0**2
        self.valid = valid.astype(np.float64)

    def welch(self, in_a, in_b):
        """Welch t, df and Cohen's d per cell for group masks (..., steps, N) -> (..., steps, k)."""
        na, ma, ssa = self._moments(in_a)
        nb, mb, ssb = self._moments(in_b)
        t, df = _welch_from_moments(na, ma, ssa, nb, mb, ssb)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = (ma - mb) / np.sqrt((ssa + ssb) / (na + nb - 2.0))
        d = np.where(np.isnan(t), np.nan, d)
        return t, df, d

    def _moments(self, mask):
        w = np.moveaxis(np.asarray(mask, dtype=np.float64), -2, 0)  # (steps, ..., N)
        shape = w.shape
        w = w.reshape(shape[0], -1, shape[-1])  # (steps, m, N) @ (steps, N, k) -> (steps, m, k)
        n, s1, s2 = (np.moveaxis((w @ v).reshape(shape[:-1] + (v.shape[-1],)), 0, -2)
                     for v in (self.valid, self.x0, self.x2))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = s1 / n
            ss = np.maximum(s2 - n * mean**2, 0.0)
        return n, mean, ss


def permutation_chunk(n_steps, n, k, budget=2_000_000):
    """How many relabellings to evaluate at once so one batch holds about ``budget`` numbers."""
    return max(1, budget // max(1, n_steps * max(n, k)))
