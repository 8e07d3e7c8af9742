"""Spectra of one layer's G, A and D at one training step, for the batch and each group.

``LayerSpectra.compute`` returns, for every spectrum, its values and its noise floor (the
level below which values are numerically zero, :func:`autospec.linalg.noise_floor_from`),
with group spectra scaled by ``group_scale``:

* "mean" (the default): group g records G_g / N_g (its mean gradient) and A_g, D_g scaled by
  1 / sqrt(N_g) (the roots of its second-moment matrices), so that what all samples share
  does not grow with the group's size. The sample-to-sample part of a mean still shrinks
  like 1 / sqrt(N_g): compare group-level spectra at matched sizes, and take findings from
  per-sample tests.
* "sum": eq. 5's sums; the groups of a partition sum to the batch's G exactly.

The batch (group None) is the same in both: G = sum_n sum_p A[n,p]^T D[n,p], the weight
gradient under the model's own loss reduction.

``LayerSpectra`` keeps what makes the next step cheaper: warm-start bases for the
top-k iteration (one per layer, quantity and group) and the spectra of activations
that did not change (the first layer's A under full-batch training).
"""
import math
import warnings
from typing import NamedTuple

import numpy as np

from minigrad.kernels import threads
from minigrad.backend import get_array_module, is_cupy_array, to_numpy

from . import linalg
from .groups import selector_size

QUANTITIES = ("G", "A", "D")
GROUP_SCALES = ("mean", "sum")
# A method name for G, and the method the factor spectra (A, D) use with it.
G_METHODS = {"auto": "auto", "direct": "auto", "exact": "exact", "factored": "auto", "gram": "gram", "topk": "topk"}
_SHARE_G_MAX_ENTRIES = 1 << 22  # form group G's (and sum them to the batch's G) up to this size


def _map_parts(fn, parts, X):
    """[fn(part) for part in parts]: the parts (batch and groups) are independent, so on the CPU
    with several minigrad threads and a large batch matrix ``X`` they run on those threads, one
    BLAS thread each (the many small dense steps of a spectrum do not spread over BLAS threads)."""
    results = [None] * len(parts)

    def work(i):
        results[i] = fn(parts[i])

    threads.run_blocks(work, range(len(parts)), X.nbytes, get_array_module(X))
    return results


def _pointer(x):
    iface = getattr(x, "__array_interface__", None)
    return iface["data"][0] if iface is not None else x.data.ptr


def _all_finite(x):
    xp = get_array_module(x)
    return bool(xp.isfinite(x.sum())) or bool(xp.isfinite(x).all())


def _selectors_tag(subsets):
    """A hashable summary of the group selectors (labels and the samples they pick)."""
    tag = []
    for label, sel in subsets:
        if isinstance(sel, slice):
            tag.append((label, sel.start, sel.stop, sel.step))
        else:
            tag.append((label, to_numpy(sel).tobytes()))
    return tuple(tag)


class _ConstantCache:
    """Spectra of factor matrices that stay the same from step to step.

    A matrix is a candidate once it reappears at the same address; from then on a
    stored copy proves equality exactly (one comparison pass, far cheaper than an SVD).
    A matrix seen to change is not checked again.
    """

    def __init__(self):
        self._entries = {}
        self._varying = set()

    def get(self, key, X, compute, tag=None):
        """compute()'s result, reused while X (and the hashable ``tag``) stay the same."""
        if key in self._varying:
            return compute()
        xp = get_array_module(X)
        sig = (tuple(X.shape), X.dtype.str, tuple(X.strides), _pointer(X), tag)
        entry = self._entries.get(key)
        if entry is not None and entry["sig"] == sig:
            if entry["copy"] is not None:
                if xp.array_equal(entry["copy"], X):
                    return entry["values"]
                self._varying.add(key)
                self._entries.pop(key, None)
                return compute()
            values = compute()
            self._entries[key] = {"sig": sig, "copy": X.copy(), "values": values}
            return values
        if entry is not None and entry["copy"] is not None:  # moved or changed
            self._varying.add(key)
            self._entries.pop(key, None)
            return compute()
        values = compute()
        self._entries[key] = {"sig": sig, "copy": None, "values": values}
        return values


class _Part(NamedTuple):
    """One subset of the batch (the whole batch or a group): its factors, and with positions as rows."""

    label: object
    A: object   # (n, P, in)
    D: object   # (n, P, out)
    A2: object  # (n * P, in)
    D2: object  # (n * P, out)

    @classmethod
    def select(cls, label, selector, A, D):
        A_s, D_s = A[selector], D[selector]
        return cls(label, A_s, D_s, A_s.reshape(-1, A.shape[2]), D_s.reshape(-1, D.shape[2]))

    @property
    def rows(self):
        return self.A2.shape[0]


class StepSpectra(NamedTuple):
    """What one layer contributes to a record step."""

    values: dict      # {(layer, quantity, group, position): descending singular values}
    floors: dict      # the same keys -> noise floor (float) of that spectrum
    per_sample: object  # (N, k) per-sample gradient spectra, or None


class LayerSpectra:
    """Computes the spectra one layer contributes to a record step."""

    def __init__(self, name, quantities=QUANTITIES, k=None, method="auto", positions=None, per_sample=False,
                 group_scale="mean"):
        if group_scale not in GROUP_SCALES:
            raise ValueError(f"group_scale must be one of {GROUP_SCALES}, got {group_scale!r}")
        self.name = name
        self.quantities = tuple(quantities)
        self.k = k
        self.g_method = method
        self.factor_method = G_METHODS[method]
        self.positions = positions
        self.per_sample = per_sample
        self.group_scale = group_scale
        self._trackers = {}
        self._tracker_step = {}  # key -> the step its tracker last ran
        self._steps = 0
        self._constant = _ConstantCache()
        self._power_vectors = {}  # (quantity, label, position) -> warm start of its sigma_1 estimate
        self._warned_nonfinite = False

    # ------------------------------------------------------------------ helpers
    def _k(self, bound):
        return bound if self.k is None else min(self.k, bound)

    def _bound(self, quantity, rows, fin, fout):
        """How many values a spectrum keeps: its matrix's own rank bound (G: min(rows, in, out),
        A: min(rows, in), D: min(rows, out)), capped by k."""
        cols = {"G": min(fin, fout), "A": fin, "D": fout}[quantity]
        return self._k(min(rows, cols))

    def _warm_iters(self, key, k):
        """Iterations a warm-started top-k of ``key`` is expected to take (for the cost model)."""
        # The tracker carries each step's basis to the next. Its last iteration count keeps the
        # estimate honest for a matrix that changes fast; each step it sits idle takes one off,
        # so that a matrix that settles gets the top-k route back.
        tracker = self._trackers.get(key)
        iters = linalg.AUTO_TOPK_WARM_ITERS
        if tracker is not None and tracker.last is not None and tracker.k == k:
            idle = self._steps - self._tracker_step[key] - 1
            iters = max(iters, tracker.last.iterations - idle)
        return iters

    def _factor_method(self, key, X, k):
        """The method for the top-k values of factor matrix X ("auto" resolved by the cost model)."""
        if self.factor_method != "auto":
            return self.factor_method
        return linalg.choose_svdvals_method(X.shape[0], X.shape[1], k, X.dtype,
                                             warm_iters=self._warm_iters(key, k))[0]

    def _tracked(self, key, k, M, exact):
        """Top-k values of M (array or Operator) from the key's warm-started tracker; ``exact()``
        instead when the iteration did not converge (never record an unconverged estimate)."""
        tracker = self._trackers.get(key)
        if tracker is None or tracker.k != k:
            tracker = self._trackers[key] = linalg.TopKTracker(k)
        values = tracker(M)
        self._tracker_step[key] = self._steps
        if not tracker.last.converged:
            tracker.reset()
            return exact()
        return values

    def _factor_values(self, key, X, k):
        """Top-k singular values of a factor matrix (A or D), warm-started when iterative."""
        method = self._factor_method(key, X, k)
        if method != "topk":
            return linalg.svdvals(X, k, method=method)
        return self._tracked(key, k, X, lambda: linalg.svdvals(X, k, method="exact"))

    def _gradient_values(self, key, A2, D2, k):
        """Top-k singular values of G = A2^T D2 without forming it unless that is cheapest."""
        method = self.g_method if self.g_method != "exact" else "direct"
        if method == "auto" and is_cupy_array(A2):
            return linalg.gradient_svdvals(A2, D2, k)  # on a GPU: its own latency cost model
        if method == "auto":
            method = linalg.choose_gradient_method(A2.shape[0], A2.shape[1], D2.shape[1], k, A2.dtype,
                                                    warm_iters=self._warm_iters(key, k))[0]
        if method != "topk":
            return linalg.gradient_svdvals(A2, D2, k, method=method)
        return self._tracked(key, k, linalg.gradient_operator(A2, D2),
                             lambda: linalg.gradient_svdvals(A2, D2, k, method="direct"))

    def _shared_grams(self, q, parts, k):
        """{label: float64 column-side Gram matrix} of the batch and every group when the batch's
        values go by the Gram route and the groups partition its rows, else None: the batch's
        Gram is then the sum of the groups' (no second pass over the batch)."""
        X = getattr(parts[0], q + "2")
        if len(parts) < 2 or X.shape[0] < X.shape[1] or self._factor_method((q, None), X, k) != "gram":
            return None
        xp = get_array_module(X)
        grams = {}
        for part in parts[1:]:
            Xg = getattr(part, q + "2").astype(xp.float64, copy=False)
            grams[part.label] = Xg.T @ Xg
        grams[None] = sum(grams.values())
        return grams

    def _factor_spectra(self, q, parts, fin, fout):
        out = {}
        grams = self._shared_grams(q, parts, self._bound(q, parts[0].rows, fin, fout))

        def values(part):
            k = self._bound(q, part.rows, fin, fout)
            if grams is not None:
                return linalg.eig_to_svdvals(grams[part.label], k)
            return self._factor_values((q, part.label), getattr(part, q + "2"), k)

        for part, v in zip(parts, _map_parts(values, parts, getattr(parts[0], q + "2"))):
            out[(self.name, q, part.label, None)] = v
        return out

    def _positions(self, P):
        pos = self.positions
        if pos is None or pos is False or P <= 1:
            return []
        if pos is True:
            return list(range(P))
        if isinstance(pos, (int, np.integer)):
            return sorted(set(np.linspace(0, P - 1, num=min(int(pos), P)).round().astype(int).tolist()))
        bad = [p for p in pos if not 0 <= int(p) < P]
        if bad:
            raise ValueError(f"positions {bad} are out of range for layer '{self.name}' with {P} tied positions")
        return sorted(int(p) for p in pos)

    # ------------------------------------------------------------------ main
    def compute(self, A, D, subsets):
        """The layer's :class:`StepSpectra` for one step.

        A (N, P, in), D (N, P, out); subsets: [(label, selector)] of the groups (may be empty).
        Groups are scaled by ``group_scale`` (module docstring); floors scale with their values.
        """
        self._steps += 1
        N, P, fin = A.shape
        fout = D.shape[2]
        everyone = [(None, slice(None))] + list(subsets)
        if not (_all_finite(A) and _all_finite(D)):
            return self._nonfinite(N, P, fin, fout, everyone)
        values = {}
        parts = [_Part.select(label, sel, A, D) for label, sel in everyone]
        if "G" in self.quantities:
            values.update(self._gradient(parts, fin, fout, partition=bool(subsets)))
        if "A" in self.quantities:
            # One equality check of the whole batch covers its groups too (same selectors).
            values.update(self._constant.get("A", A, lambda: self._factor_spectra("A", parts, fin, fout),
                                             tag=_selectors_tag(subsets)))
        if "D" in self.quantities:
            values.update(self._factor_spectra("D", parts, fin, fout))
        for p in self._positions(P):
            for part in parts:
                values.update(self._position(p, part.label, part.A[:, p, :], part.D[:, p, :]))
        floors = self._floors(values, parts, linalg.coarser_dtype(A.dtype, D.dtype))
        if self.group_scale == "mean":
            self._scale_to_group_means(values, floors, {part.label: part.A.shape[0] for part in parts})
        per_sample = self._per_sample(A, D) if self.per_sample else None
        return StepSpectra(values, floors, per_sample)

    def _floors(self, values, parts, dtype):
        """{key: noise floor} of every spectrum in ``values`` (unscaled): a factor's scale is its
        own sigma_1; G's is sigma_1(A) sigma_1(D) of the same rows (linalg.noise_floor_from)."""
        by_label = {part.label: part for part in parts}
        largest = {}  # (quantity, label, position) -> sigma_1 of that factor matrix

        def sigma_1(q, label, position):
            if (q, label, position) not in largest:
                known = values.get((self.name, q, label, position))
                if known is not None and known.shape[0]:
                    largest[(q, label, position)] = float(known[0])
                else:  # the factor's spectrum is not recorded: estimate its top value
                    part = by_label[label]
                    X = getattr(part, q + "2") if position is None else getattr(part, q)[:, position, :]
                    largest[(q, label, position)] = self._sigma_1_estimate((q, label, position), X)
            return largest[(q, label, position)]

        floors = {}
        for key in values:
            _, q, label, position = key
            part = by_label[label]
            rows = part.rows if position is None else part.A.shape[0]
            # position spectra always go by "auto" (a method only changes the floor if "gram")
            if q == "G":
                scale = sigma_1("A", label, position) * sigma_1("D", label, position)
                shape = (part.A.shape[2], part.D.shape[2])
                method = self.g_method if position is None else "auto"
            else:
                scale = sigma_1(q, label, position)
                shape = (rows, getattr(part, q).shape[2])
                method = self.factor_method if position is None else "auto"
            floors[key] = linalg.noise_floor_from(scale, shape, dtype, method=method)
        return floors

    def _sigma_1_estimate(self, key, X):
        """sigma_1(X) from below for a floor's scale: power steps warm-started from the vector this
        key ended with last step (4 steps from a random start the first time, then 1)."""
        v = self._power_vectors.get(key)
        if v is None or v.shape[0] != X.shape[1] or v.dtype != X.dtype:
            estimate, v = linalg.power_steps(X, linalg.random_unit_vector(X.shape[1], X.dtype, get_array_module(X)), 4)
        else:
            estimate, v = linalg.power_steps(X, v, 1)
        self._power_vectors[key] = v
        return estimate

    def _scale_to_group_means(self, values, floors, sizes):
        """group_scale="mean": a group's G divided by N_g, its A and D by sqrt(N_g) (in place)."""
        for key in list(values):
            _, q, label, _ = key
            if label is None:  # the batch keeps its definition
                continue
            factor = 1.0 / sizes[label] if q == "G" else 1.0 / math.sqrt(sizes[label])
            values[key] = values[key] * factor  # a new array: cached values stay as they were
            floors[key] *= factor

    def _gradient(self, parts, fin, fout, partition):
        """Spectra of G for the batch and each group (eq. 5); group G's sum to the batch's."""
        out = {}
        share = (self.g_method in ("auto", "direct", "exact") and fin * fout <= _SHARE_G_MAX_ENTRIES
                 and all(part.rows >= min(fin, fout) for part in parts))
        if share:
            mats = {part.label: part.A2.T @ part.D2 for part in (parts[1:] if partition else parts)}
            if partition:
                mats[None] = sum(mats.values())  # the groups partition the batch
            for part in parts:
                k = self._bound("G", part.rows, fin, fout)
                G = mats[part.label]
                if is_cupy_array(G):  # on a GPU, svdvals' own latency cost model decides (top-k iterations are slow there)
                    values = linalg.svdvals(G, k, method=self.factor_method)
                else:  # like a factor matrix: costed as a warm start, tracked
                    values = self._factor_values(("G", part.label), G, k)
                out[(self.name, "G", part.label, None)] = values
            return out

        def values(part):
            return self._gradient_values(("G", part.label), part.A2, part.D2, self._bound("G", part.rows, fin, fout))

        larger = parts[0].A2 if fin >= fout else parts[0].D2
        for part, v in zip(parts, _map_parts(values, parts, larger)):
            out[(self.name, "G", part.label, None)] = v
        return out

    def _position(self, p, label, A_p, D_p):
        """Spectra of G_p = A_p^T D_p, A_p and D_p at one tied position."""
        fin, fout, n = A_p.shape[1], D_p.shape[1], A_p.shape[0]
        out = {}
        if "G" in self.quantities:
            out[(self.name, "G", label, p)] = linalg.gradient_svdvals(A_p, D_p, self._bound("G", n, fin, fout))
        if "A" in self.quantities:
            out[(self.name, "A", label, p)] = linalg.svdvals(A_p, self._bound("A", n, fin, fout))
        if "D" in self.quantities:
            out[(self.name, "D", label, p)] = linalg.svdvals(D_p, self._bound("D", n, fin, fout))
        return out

    def _per_sample(self, A, D):
        """Per-sample gradient spectra: |a_n||d_n| when untied, else the top values of G_n."""
        xp = get_array_module(A)
        N, P, fin = A.shape
        fout = D.shape[2]
        if P == 1:
            a = xp.linalg.norm(A[:, 0, :].astype(xp.float64), axis=1)
            d = xp.linalg.norm(D[:, 0, :].astype(xp.float64), axis=1)
            return (a * d)[:, None]
        k = self._k(min(fin, fout, P))
        G_n = xp.einsum("npi,npo->nio", A.astype(xp.float64), D.astype(xp.float64))
        return xp.linalg.svd(G_n, compute_uv=False)[:, :k]

    def _nonfinite(self, N, P, fin, fout, everyone):
        if not self._warned_nonfinite:
            warnings.warn(f"layer '{self.name}': NaN or Inf in its factors; recording NaN spectra "
                          "(training goes on; warned once per layer)", RuntimeWarning, stacklevel=4)
            self._warned_nonfinite = True
        values = {}
        for label, sel in everyone:
            rows = selector_size(sel, N) * P
            for q in self.quantities:
                values[(self.name, q, label, None)] = np.full(self._bound(q, rows, fin, fout), np.nan)
        per_sample = None
        if self.per_sample:
            per_sample = np.full((N, 1 if P == 1 else self._k(min(fin, fout, P))), np.nan)
        return StepSpectra(values, {key: math.nan for key in values}, per_sample)
