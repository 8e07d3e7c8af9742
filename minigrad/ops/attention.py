"""Scaled dot-product attention as one fused op, and the blocks of a packed in-projection.

softmax(q k^T / sqrt(d) + mask) v over (N, heads, L, d), forward and backward in one op
(no L x L intermediate tensors in the graph). Three entry points share one kernel:

- ``scaled_dot_product_attention(q, k, v)``: q (N, H, Lq, d), k (N, H, Lk, d), v (N, H, Lk, dv);
- ``multi_head_attention(q, k, v, num_heads)``: projected (N, L, E) tensors, heads split off
  the feature axis (E = heads * d) and merged back, without copies;
- ``packed_self_attention(qkv, num_heads)``: the (N, L, 3E) output of one packed in-projection.

The kernel never forms the normalized softmax unless the weights are asked for. With
E_ij = exp(s_ij - c_i), c_i >= max_j s_ij a per-row shift and r_i = sum_j E_ij:

    out = (E v) / r,      computed as  E [v, 1] = [E v, r]          (one matmul, no sum pass)
    dS  = E o ([g, -rho] [v, 1]^T) / r,   rho_i = g_i . out_i        (softmax adjoint, one pass)
    dq  = dS k / sqrt(d),   dk = dS^T q / sqrt(d),   dv = E^T (g / r)

The shift c_i = |q_i| max_j |k_j| / sqrt(d) bounds every score (Cauchy-Schwarz), so exp never
overflows, and it enters the scores matmul as an extra column: [q / sqrt(d), -c] [k, 1]^T.
A row whose sum r_i shows the bound was too loose (exp(-margin)) is recomputed with its exact
row maximum. Masked keys get a zero row in [v, 1], so they add nothing to out, r or dS.
"""
import math

import numpy as np

from ._util import result
from .linear import hand_out_factors
from .. import backend
from ..kernels import threads
from ..random import default_generator
from ..tensor import Tensor

# rows whose shifted exponentials sum below exp(-margin) are redone with the exact row max
_SHIFT_MARGIN = {np.dtype(np.float32): 50.0, np.dtype(np.float64): 600.0}
# on the CPU, scores are made and consumed in chunks of samples of about this size (cache-sized)
_CHUNK_BYTES = 1 << 19


# the kernel's CPU threads are minigrad's (set_num_threads here is minigrad.set_num_threads)
set_num_threads = threads.set_num_threads
get_num_threads = threads.get_num_threads


# --------------------------------------------------------------------------- argument checks
def _check_dropout(dropout_p):
    if not 0 <= dropout_p < 1:
        raise ValueError(f"attention dropout probability must be in [0, 1), got {dropout_p}")


def _keep_mask(key_padding_mask, n, lk, xp, dtype, device):
    """Validate a bool (N, Lk) key padding mask (True = ignore); 1/0 keep weights or None."""
    if key_padding_mask is None:
        return None
    mask = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else key_padding_mask
    if not hasattr(mask, "dtype"):
        mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"key_padding_mask must be a bool array (True = ignore that key, as in PyTorch), "
                        f"got dtype {mask.dtype}")
    if tuple(mask.shape) != (n, lk):
        raise ValueError(f"key_padding_mask must have shape (batch, key length) = {(n, lk)}, "
                         f"got {tuple(mask.shape)}")
    mask = backend.to_device(mask, device)
    if not mask.any():
        return None
    full = mask.all(axis=1)
    if full.any():
        rows = [int(i) for i in backend.to_numpy(xp.nonzero(full)[0])[:10]]
        raise ValueError(f"key_padding_mask ignores every key of sample(s) {rows}: attention over no key "
                         f"is undefined (PyTorch returns NaN there); leave at least one key per sample")
    return (~mask).astype(dtype)


def _check_same(tensors, names):
    first = tensors[0]
    for t, name in zip(tensors, names):
        if not isinstance(t, Tensor):
            raise TypeError(f"attention input {name} must be a minigrad Tensor, got {type(t).__name__}")
        if t.dtype.kind != "f":
            raise TypeError(f"attention input {name} must be float, got dtype {t.dtype}")
        if t.dtype != first.dtype:
            raise TypeError(f"attention inputs must share one dtype, got {[x.dtype for x in tensors]} "
                            f"for {names}")
        if t.device != first.device:
            raise ValueError(f"attention inputs are on different devices {[x.device for x in tensors]}")


def _dropout_keep(generator, p, shape, dtype, device):
    """Inverted-dropout multipliers (0 or 1/(1-p)) drawn from ``generator`` on the host."""
    gen = generator or default_generator()
    draw_dtype = np.float32 if np.dtype(dtype) == np.float32 else np.float64
    keep = gen.random(shape, dtype=draw_dtype) >= p
    return backend.to_device((keep * (1.0 / (1.0 - p))).astype(dtype), device)


# ---------------------------------------------------------------------------------- kernel
class _Attention:
    """Forward, adjoints and weights of one attention call on (N, H, L, *) arrays (views welcome).

    ``keep``: (N, Lk) 1/0 key weights or None; ``drop``: (N, H, Lq, Lk) dropout multipliers or None.
    """

    def __init__(self, q, k, v, keep=None, drop=None):
        xp = backend.get_array_module(q)
        n, h, lq, d = q.shape
        lk, dv = k.shape[2], v.shape[3]
        dt = q.dtype
        self.xp, self.keep, self.drop = xp, keep, drop
        self.shape = (n, h, lq, lk, d, dv)
        self.scale = dt.type(1 / math.sqrt(d))
        self.k = k

        # samples per chunk: the chunk's scores stay in cache between the matmuls and exp
        per_sample = h * lq * lk * dt.itemsize
        self.chunk = n if xp is not np else max(1, min(n, _CHUNK_BYTES // max(per_sample, 1)))

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
        parts = threads.parts_for(self.q_aug.nbytes * 3, xp)
        ranges = threads.ranges(n, parts)
        threads.run_parts(lambda i: prepare(ranges[i]), len(ranges))

    def _run_chunks(self, work):
        """Call ``work(slice)`` on every chunk of samples, split over minigrad's threads on the CPU."""
        n, step = self.shape[0], self.chunk
        chunks = [slice(a, min(a + step, n)) for a in range(0, n, step)]
        if self.xp is np and len(chunks) > 1 and threads.get_num_threads() > 1:
            with threads.blas_single_threaded():  # each thread runs its own chunk's small matmuls
                threads.run_items(work, chunks)  # re-raises a worker's exception here
        else:
            for sl in chunks:
                work(sl)

    # ------------------------------------------------------------------------- forward
    def forward(self, out):
        """Write softmax(q k^T / sqrt(d)) v into ``out`` (N, H, Lq, dv) and keep what backward needs."""
        xp = self.xp
        n, h, lq, lk, d, dv = self.shape
        dt = self.qs.dtype
        self.E = xp.empty((n, h, lq, lk), dt)
        self.E_drop = xp.empty_like(self.E) if self.drop is not None else self.E
        num = xp.empty((n, h, lq, dv + 1), dt)
        self.rowsum = num[..., dv:]                                     # (N, H, Lq, 1)
        self.out = out
        floor = math.exp(-_SHIFT_MARGIN.get(np.dtype(dt), 30.0))

        def work(sl):
            E = self.E[sl]
            xp.matmul(self.q_aug[sl], self.kt_aug[sl], out=E)
            xp.exp(E, out=E)
            xp.matmul(E, self.v_aug[sl], out=num[sl])                   # [E v, row sums]
            low = num[sl, ..., dv].min(axis=(1, 2)) < floor
            if low.any():
                for i in backend.to_numpy(xp.nonzero(low)[0]):
                    self._exact_rows(sl.start + int(i), num)
            if self.drop is not None:
                if self.keep is not None:  # the -rho term of dS must vanish on masked keys too
                    E *= self.keep[sl, None, None, :]
                xp.multiply(E, self.drop[sl], out=self.E_drop[sl])
                xp.matmul(self.E_drop[sl], self.v_aug[sl, ..., :dv], out=num[sl, ..., :dv])
            xp.divide(num[sl, ..., :dv], self.rowsum[sl], out=out[sl])

        self._run_chunks(work)

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
    def backward(self, g, dq=None, dk=None, dv=None):
        """Given g = dL/d out (N, H, Lq, dv), write the adjoints into the views dq, dk, dv (None: skip)."""
        xp = self.xp
        n, h, lq, lk, d, dvn = self.shape
        dt = self.qs.dtype
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

    def weights_backward(self, gw, dq=None, dk=None):
        """Adjoints of q and k from gw = dL/d weights (softmax adjoint on the full weights)."""
        xp = self.xp
        p = self._probabilities()
        dp = gw * self.drop if self.drop is not None else gw
        ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
        if dq is not None:
            xp.matmul(ds, self.k, out=dq)
            dq *= self.scale
        if dk is not None:
            xp.matmul(ds.swapaxes(-1, -2), self.qs, out=dk)


# ------------------------------------------------------------------------------ op wrappers
def _attention_op(parents, kernel, out_heads, out_data, head_view, grad_buffers, need_weights):
    """Run the kernel and build the output tensor (and, with ``need_weights``, the weights tensor).

    ``out_heads``: the (N, H, Lq, dv) view of ``out_data`` the kernel writes; ``head_view`` maps the
    output adjoint (laid out like ``out_data``) to that view. ``grad_buffers(for_weights)`` returns the
    adjoint arrays aligned with ``parents`` and the (dq, dk, dv) head views the kernel writes into
    (None where no adjoint is needed; the weights do not depend on v).
    """
    kernel.forward(out_heads)

    def backward(g):
        grads, views = grad_buffers(False)
        kernel.backward(head_view(g), *views)
        return grads

    out_t = result(out_data, parents, backward)
    if not need_weights:
        return out_t

    def weights_backward(gw):
        grads, views = grad_buffers(True)
        kernel.weights_backward(gw, views[0], views[1])
        return grads

    return out_t, result(kernel.weights(), parents, weights_backward)


def _prepare(q_like, n, h, lq, lk, key_padding_mask, dropout_p, training, generator):
    """Validated keep weights of the keys and dropout multipliers (each None when not needed)."""
    _check_dropout(dropout_p)
    keep = _keep_mask(key_padding_mask, n, lk, q_like.xp, q_like.dtype, q_like.device)
    drop = None
    if training and dropout_p > 0:
        drop = _dropout_keep(generator, dropout_p, (n, h, lq, lk), q_like.dtype, q_like.device)
    return keep, drop


def _separate_buffers(tensors, xp, to_view):
    """Adjoint buffers for separate q, k, v parents (v none for the weights) and their head views."""
    def grad_buffers(for_weights):
        arrays = [xp.empty(t.shape, t.dtype) if t.requires_grad and not (for_weights and j == 2) else None
                  for j, t in enumerate(tensors)]
        return tuple(arrays), [None if a is None else to_view(a) for a in arrays]

    return grad_buffers


def scaled_dot_product_attention(q, k, v, key_padding_mask=None, dropout_p=0.0, training=True,
                                 need_weights=False, generator=None):
    """softmax(q k^T / sqrt(d)) v with q (N, H, Lq, d), k (N, H, Lk, d), v (N, H, Lk, dv).

    ``key_padding_mask``: bool (N, Lk), True = ignore that key (PyTorch's convention).
    ``dropout_p``: dropout on the attention weights, applied only when ``training``.
    Returns the output (N, H, Lq, dv), or (output, weights (N, H, Lq, Lk)) with ``need_weights``.
    """
    _check_same((q, k, v), ("q", "k", "v"))
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        if t.ndim != 4:
            raise ValueError(f"scaled_dot_product_attention expects 4-D (N, heads, L, d) inputs, "
                             f"got {name} of shape {t.shape}")
    n, h, lq, d = q.shape
    if k.shape[:2] != (n, h) or k.shape[3] != d:
        raise ValueError(f"k must have shape (N, heads, Lk, d) = ({n}, {h}, Lk, {d}) to match q {q.shape}, "
                         f"got {k.shape}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"v must have shape (N, heads, Lk, dv) with (N, heads, Lk) = {k.shape[:3]} like k, "
                         f"got {v.shape}")
    keep, drop = _prepare(q, n, h, lq, k.shape[2], key_padding_mask, dropout_p, training, generator)
    kernel = _Attention(q.data, k.data, v.data, keep, drop)
    out = q.xp.empty((n, h, lq, v.shape[3]), q.dtype)
    return _attention_op((q, k, v), kernel, out, out, lambda g: g,
                         _separate_buffers((q, k, v), q.xp, lambda a: a), need_weights)


def _split_heads(a, num_heads):
    """(N, L, H*d) array -> (N, H, L, d) view (head j holds features j*d:(j+1)*d, as in PyTorch)."""
    n, length, e = a.shape
    return a.reshape(n, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)


def _check_heads(e, num_heads, what):
    if isinstance(num_heads, bool) or not isinstance(num_heads, (int, np.integer)) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive integer, got {num_heads!r}")
    if e % num_heads:
        raise ValueError(f"{what} size {e} is not divisible by num_heads={num_heads}")


def multi_head_attention(q, k, v, num_heads, key_padding_mask=None, dropout_p=0.0, training=True,
                         need_weights=False, generator=None):
    """Attention of projected q (N, Lq, E), k (N, Lk, E), v (N, Lk, Ev) split into ``num_heads`` heads.

    Returns the heads merged back (N, Lq, Ev), or with ``need_weights`` also the per-head
    weights (N, H, Lq, Lk).
    """
    _check_same((q, k, v), ("q", "k", "v"))
    for t, name in ((q, "q"), (k, "k"), (v, "v")):
        if t.ndim != 3:
            raise ValueError(f"multi_head_attention expects 3-D (N, L, E) inputs, got {name} of shape {t.shape}")
    n, lq, e = q.shape
    if k.shape[0] != n or k.shape[2] != e:
        raise ValueError(f"k must have shape (N, Lk, E) = ({n}, Lk, {e}) to match q {q.shape}, got {k.shape}")
    if v.shape[:2] != k.shape[:2]:
        raise ValueError(f"v must have shape (N, Lk, Ev) with (N, Lk) = {k.shape[:2]} like k, got {v.shape}")
    _check_heads(e, num_heads, "q/k feature")
    _check_heads(v.shape[2], num_heads, "v feature")
    keep, drop = _prepare(q, n, num_heads, lq, k.shape[1], key_padding_mask, dropout_p, training, generator)

    def heads(a):
        return _split_heads(a, num_heads)

    kernel = _Attention(heads(q.data), heads(k.data), heads(v.data), keep, drop)
    merged = q.xp.empty((n, lq, v.shape[2]), q.dtype)
    return _attention_op((q, k, v), kernel, heads(merged), merged, heads,
                         _separate_buffers((q, k, v), q.xp, heads), need_weights)


def packed_self_attention(qkv, num_heads, key_padding_mask=None, dropout_p=0.0, training=True,
                          need_weights=False, generator=None):
    """Self-attention on the output of a packed in-projection: qkv (N, L, 3E) = [q, k, v] -> (N, L, E).

    Heads are strided views of qkv, and the adjoint is written straight into one (N, L, 3E)
    array (no split or concatenate copies). ``need_weights`` adds the weights (N, H, L, L).
    """
    _check_same((qkv,), ("qkv",))
    if qkv.ndim != 3 or qkv.shape[2] % 3:
        raise ValueError(f"packed_self_attention expects qkv of shape (N, L, 3E), got {qkv.shape}")
    n, length, e3 = qkv.shape
    e = e3 // 3
    _check_heads(e, num_heads, "embedding")
    keep, drop = _prepare(qkv, n, num_heads, length, length, key_padding_mask, dropout_p, training, generator)
    xp = qkv.xp

    def heads(a):
        return _split_heads(a, num_heads)

    blocks = qkv.data.reshape(n, length, 3, e)
    kernel = _Attention(*(heads(blocks[:, :, j]) for j in range(3)), keep, drop)
    merged = xp.empty((n, length, e), qkv.dtype)

    def grad_buffers(for_weights):
        full = xp.empty((n, length, 3, e), qkv.dtype)
        if for_weights:
            full[:, :, 2] = 0  # the weights do not depend on v
        return (full.reshape(n, length, e3),), [heads(full[:, :, j]) for j in range(3)]

    return _attention_op((qkv,), kernel, heads(merged), merged, heads, grad_buffers, need_weights)


# ------------------------------------------------------------------- packed projection blocks
def linear_block(x, weight, bias, start, stop):
    """x (..., in) @ weight[start:stop]^T + bias[start:stop]: one block of a packed weight.

    Used for the q, k and v projections of MultiheadAttention when query, key and value
    differ. Factors: A = x (N, P, in) and D = the output adjoint zero-padded to the full
    fan_out (N, P, out), so that the uses of one packed weight, which ``capture_factors``
    joins along P, give einsum("npo,npi->oi", D, A) == weight.grad exactly.
    """
    xd, wd = x.data, weight.data
    fan_out, fan_in = wd.shape
    if not 0 <= start < stop <= fan_out:
        raise ValueError(f"rows {start}:{stop} are not a block of a weight with {fan_out} rows")
    if xd.ndim < 1 or xd.shape[-1] != fan_in:
        raise ValueError(f"linear_block expects input (..., {fan_in}), got shape {x.shape}")
    w_block = wd[start:stop]
    out = xd @ w_block.T
    if bias is not None:
        out += bias.data[start:stop]
    parents = (x, weight) if bias is None else (x, weight, bias)
    xp = x.xp

    def backward(g):
        n = xd.shape[0] if xd.ndim > 1 else 1
        x2 = xd.reshape(-1, fan_in)
        g2 = g.reshape(-1, stop - start)
        gx = (g2 @ w_block).reshape(xd.shape) if x.requires_grad else None
        gw = gb = None
        if weight.requires_grad:
            gw = xp.zeros_like(wd)
            gw[start:stop] = g2.T @ x2
            if getattr(weight, "factor_sink", None) is not None:
                padded = xp.zeros((x2.shape[0], fan_out), dtype=g2.dtype)
                padded[:, start:stop] = g2
                hand_out_factors(weight, x2.reshape(n, -1, fan_in), padded.reshape(n, -1, fan_out))
        if bias is not None and bias.requires_grad:
            gb = xp.zeros_like(bias.data)
            gb[start:stop] = g2.T @ xp.ones(g2.shape[0], dtype=g2.dtype)  # column sums as one BLAS product
        return (gx, gw) if bias is None else (gx, gw, gb)

    return result(out, parents, backward)
