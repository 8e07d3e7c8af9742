"""Fast versions of ``attend`` and ``merge_heads`` of minigrad/ops/attention.py (same arguments, same results).

``attend`` never forms the normalized softmax unless the weights are asked for. With
E_ij = exp(s_ij - c_i), c_i >= max_j s_ij a per-row shift and r_i = sum_j E_ij:

    out = (E v) / r,      computed as  E [v, 1] = [E v, r]          (one matmul, no sum pass)
    dS  = E o ([g, -rho] [v, 1]^T) / r,   rho_i = g_i . out_i        (softmax adjoint, one pass)
    dq  = dS k / sqrt(d),   dk = dS^T q / sqrt(d),   dv = E^T (g / r)

The shift c_i = |q_i| max_j |k_j| / sqrt(d) bounds every score (Cauchy-Schwarz), so exp never
overflows, and it enters the scores matmul as an extra column: [q / sqrt(d), -c] [k, 1]^T.
A row whose sum r_i shows the bound was too loose (exp(-margin)) is recomputed with its exact
row maximum. Masked keys get a zero row in [v, 1], so they add nothing to out, r or dS.

On the CPU the scores are made and consumed in cache-sized chunks of samples, split over
minigrad's threads. Outputs and adjoints are allocated in the memory layout of the inputs,
so that the op's head merge is a view (``merge_heads``), also for the adjoint of a packed
(N, L, 3E) projection whose q, k and v are views of one array.
"""
import math

import numpy as np

from . import threads
from ..backend import get_array_module, to_numpy

# rows whose shifted exponentials sum below exp(-margin) are redone with the exact row max
SHIFT_MARGIN = {np.dtype(np.float32): 50.0, np.dtype(np.float64): 600.0}
# on the CPU, scores are made and consumed in chunks of samples of about this size (cache-sized)
CHUNK_BYTES = 1 << 19


def attend(q, k, v, keep=None, drop=None, wanted=(True, True, True)):
    """Fast ``minigrad.ops.attention.attend``."""
    attention = _Attention(q, k, v, keep, drop, wanted)
    return attention.forward(), attention.weights, attention.backward


def merge_heads(*heads):
    """Fast ``minigrad.ops.attention.merge_heads``: a view when the arrays' memory allows it."""
    n, _, length, _ = heads[0].shape
    joint = _joint_base(heads)
    if joint is not None:
        return joint.reshape(n, length, -1)
    merged = [a.transpose(0, 2, 1, 3).reshape(n, length, -1) for a in heads]   # views where the layout allows
    return merged[0] if len(merged) == 1 else get_array_module(heads[0]).concatenate(merged, axis=-1)


def _joint_base(heads):
    """The contiguous array whose (N, L, len(heads), H, d) reshape holds ``heads`` at [:, :, j], or None."""
    first = heads[0]
    base = first.base
    if not isinstance(first, np.ndarray) or base is None or not base.flags.c_contiguous:
        return None
    if any(a.base is not base or a.shape != first.shape for a in heads) or base.size != first.size * len(heads):
        return None
    n, h, length, d = first.shape
    joint = base.reshape(n, length, len(heads), h, d)
    for j, a in enumerate(heads):
        expected = joint[:, :, j].transpose(0, 2, 1, 3)
        if a.ctypes.data != expected.ctypes.data or a.strides != expected.strides:
            return None
    return joint


def _gradient_buffers(arrays, wanted):
    """Empty adjoints laid out like ``arrays`` (None where not wanted). Views of one array whose
    base holds them all (a packed projection) get views at the same places of one new array."""
    xp = get_array_module(arrays[0])
    base = arrays[0].base
    if (all(wanted) and isinstance(base, np.ndarray) and base.flags.c_contiguous
            and all(a.base is base for a in arrays) and base.size == sum(a.size for a in arrays)):
        full = np.empty_like(base)
        return [np.ndarray(a.shape, a.dtype, buffer=full, offset=a.ctypes.data - base.ctypes.data, strides=a.strides)
                for a in arrays]
    return [xp.empty_like(a) if want else None for a, want in zip(arrays, wanted)]


class _Attention:
    """Forward, adjoints and weights of one attention call on (N, H, L, *) arrays (views welcome).

    ``keep``: (N, Lk) 1/0 key weights or None; ``drop``: (N, H, Lq, Lk) dropout multipliers or None.
    """

    def __init__(self, q, k, v, keep, drop, wanted):
        xp = get_array_module(q)
        n, h, lq, d = q.shape
        lk, dv = k.shape[2], v.shape[3]
        dt = q.dtype
        self.xp, self.keep, self.drop, self.wanted = xp, keep, drop, tuple(wanted)
        self.shape = (n, h, lq, lk, d, dv)
        self.scale = dt.type(1 / math.sqrt(d))
        self.q, self.k, self.v = q, k, v

        # samples per chunk: the chunk's scores stay in cache between the matmuls and exp
        per_sample = h * lq * lk * dt.itemsize
        self.chunk = n if xp is not np else max(1, min(n, CHUNK_BYTES // max(per_sample, 1)))

        # scores minus the row bound in one matmul: [q / sqrt(d), -c] [k, 1]^T
        self.q_aug = xp.empty((n, h, lq, d + 1), dt)
        self.qs = self.q_aug[..., :d]                                   # q / sqrt(d)
        self.kt_aug = xp.empty((n, h, d + 1, lk), dt)
        # [v, 1] with masked keys zeroed: they drop out of E v, of the row sums and of dS
        self.v_aug = xp.empty((n, h, lk, dv + 1), dt)

        def prepare(sl):
            qs, ks = self.qs[sl], k[sl]
            xp.multiply(q[sl], self.scale, out=qs)
            k_norm_max = xp.sqrt(xp.einsum("nhld,nhld->nhl", ks, ks).max(axis=-1))          # (n, H)
            bound = xp.sqrt(xp.einsum("nhld,nhld->nhl", qs, qs)) * k_norm_max[..., None]
            xp.negative(bound, out=self.q_aug[sl, ..., d])
            self.kt_aug[sl, ..., :d, :] = ks.swapaxes(-1, -2)
            self.kt_aug[sl, ..., d, :] = 1
            self.v_aug[sl, ..., :dv] = v[sl]
            self.v_aug[sl, ..., dv] = 1
            if keep is not None:
                self.v_aug[sl] *= keep[sl, None, :, None]

        # one range of samples per thread (cache-sized chunks only pay off around the scores)
        threads.run_ranges(prepare, n, self.q_aug.nbytes * 3, xp)

    def _run_chunks(self, work):
        """Call ``work(slice)`` on every chunk of samples, split over minigrad's threads on the CPU."""
        n, step = self.shape[0], self.chunk
        chunks = [slice(a, min(a + step, n)) for a in range(0, n, step)]
        if self.xp is np and len(chunks) > 1 and threads.pool_threads() > 1:
            with threads.blas_single_threaded():  # each thread runs its own chunk's small matmuls
                threads.run_items(work, chunks)  # re-raises a worker's exception here
        else:
            for sl in chunks:
                work(sl)

    # ------------------------------------------------------------------------- forward
    def forward(self):
        """softmax(q k^T / sqrt(d)) v (N, H, Lq, dv), laid out like q; keeps what backward needs."""
        xp = self.xp
        n, h, lq, lk, d, dv = self.shape
        dt = self.qs.dtype
        out = xp.empty_like(self.q, shape=(n, h, lq, dv))
        self.E = xp.empty((n, h, lq, lk), dt)
        self.E_drop = xp.empty_like(self.E) if self.drop is not None else self.E
        num = xp.empty((n, h, lq, dv + 1), dt)
        self.rowsum = num[..., dv:]                                     # (N, H, Lq, 1)
        self.out = out
        floor = math.exp(-SHIFT_MARGIN.get(np.dtype(dt), 30.0))

        def work(sl):
            E = self.E[sl]
            xp.matmul(self.q_aug[sl], self.kt_aug[sl], out=E)
            xp.exp(E, out=E)
            xp.matmul(E, self.v_aug[sl], out=num[sl])                   # [E v, row sums]
            low = num[sl, ..., dv].min(axis=(1, 2)) < floor
            if low.any():
                for i in to_numpy(xp.nonzero(low)[0]):
                    self._exact_rows(sl.start + int(i), num)
            if self.drop is not None:
                if self.keep is not None:  # the -rho term of dS must vanish on masked keys too
                    E *= self.keep[sl, None, None, :]
                xp.multiply(E, self.drop[sl], out=self.E_drop[sl])
                xp.matmul(self.E_drop[sl], self.v_aug[sl, ..., :dv], out=num[sl, ..., :dv])
            xp.divide(num[sl, ..., :dv], self.rowsum[sl], out=out[sl])

        self._run_chunks(work)
        return out

    def _exact_rows(self, i, num):
        """Recompute sample i's exponentials shifted by the exact row max (the bound was too loose)."""
        xp = self.xp
        s = xp.matmul(self.qs[i], self.kt_aug[i, :, :-1, :])             # (H, Lq, Lk)
        if self.keep is not None:
            s = xp.where(self.keep[i] > 0, s, -xp.inf)
        s -= s.max(axis=-1, keepdims=True)
        self.E[i] = xp.exp(s)
        xp.matmul(self.E[i], self.v_aug[i], out=num[i])

    # ------------------------------------------------------------------------ backward
    def backward(self, g_out=None, g_weights=None):
        """(dq, dk, dv) from the adjoint of the output and/or of the weights (None where not wanted)."""
        grads = self._output_backward(g_out) if g_out is not None else (None, None, None)
        if g_weights is not None:
            dq, dk = self._weights_backward(g_weights)
            grads = (_add(grads[0], dq), _add(grads[1], dk), grads[2])
        return grads

    def _output_backward(self, g):
        xp = self.xp
        n, h, lq, lk, d, dvn = self.shape
        dt = self.qs.dtype
        dq, dk, dv = _gradient_buffers((self.q, self.k, self.v), self.wanted)
        k_view = self.kt_aug[:, :, :d, :].swapaxes(-1, -2)            # k, from a contiguous copy
        g_aug = xp.empty((n, h, lq, dvn + 1), dt)
        want_s = dq is not None or dk is not None

        def work(sl):
            inv = 1 / self.rowsum[sl]
            rho = xp.einsum("nhld,nhld->nhl", g[sl], self.out[sl])[..., None]   # g_i . out_i
            ga = g_aug[sl]
            xp.multiply(g[sl], inv, out=ga[..., :dvn])                 # g / r
            xp.multiply(rho, -inv, out=ga[..., dvn:])                  # -rho / r
            if want_s:
                if self.drop is None:
                    # (g v^T - rho) / r in one matmul, zero on masked keys
                    ds = xp.matmul(ga, self.v_aug[sl].swapaxes(-1, -2))
                else:
                    ds = xp.matmul(ga[..., :dvn], self.v_aug[sl, ..., :dvn].swapaxes(-1, -2))
                    ds *= self.drop[sl]
                    ds += ga[..., dvn:]
                ds *= self.E[sl]
                if dq is not None:
                    dq_chunk = dq[sl]
                    xp.matmul(ds, k_view[sl], out=dq_chunk)
                    dq_chunk *= self.scale
                if dk is not None:
                    xp.matmul(ds.swapaxes(-1, -2), self.qs[sl], out=dk[sl])
            if dv is not None:
                dv_chunk = dv[sl]
                xp.matmul(self.E_drop[sl].swapaxes(-1, -2), ga[..., :dvn], out=dv_chunk)
                if self.keep is not None and self.drop is None:
                    dv_chunk *= self.keep[sl, None, :, None]  # E is not zeroed on masked keys: no adjoint for their v

        self._run_chunks(work)
        return dq, dk, dv

    # ------------------------------------------------------------------------- weights
    def _probabilities(self):
        p = self.E / self.rowsum
        if self.keep is not None:
            p *= self.keep[:, None, None, :]
        return p

    def weights(self):
        """The attention weights (N, H, Lq, Lk) as applied to v (after dropout, like PyTorch)."""
        p = self._probabilities()
        return p * self.drop if self.drop is not None else p

    def _weights_backward(self, gw):
        """Adjoints of q and k from gw = dL/d weights (softmax adjoint on the full weights)."""
        p = self._probabilities()
        dp = gw * self.drop if self.drop is not None else gw
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
        dq = ds @ self.k * self.scale if self.wanted[0] else None
        dk = ds.swapaxes(-1, -2) @ self.qs if self.wanted[1] else None
        return dq, dk


def _add(a, b):
    return b if a is None else a + b
