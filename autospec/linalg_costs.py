"""The cost model behind ``method="auto"``: which route gives the top-k singular values of a
matrix, or of G = A^T D, for the least time.

Two regimes, each in its own unit; only ratios within a regime matter:

* CPU (NumPy + OpenBLAS/LAPACK): flops, in units of one float32 multiply-add of a large
  product, with measured factors for each LAPACK routine.
* GPU (CuPy): at these sizes time is latency, not flops: seconds, from cuSOLVER's per-call
  times; products are nearly free, a top-k iteration costs its host synchronisations.

Every measured number is in :data:`MEASURED`, and :data:`MEASURED_ON` says where it came from.
"""
import numpy as np

from .linalg_topk import KRYLOV_DEPTH, WARM_DEPTH, default_oversample

# The measured constants of the model, one row each (value, meaning). l >= s are the sides of
# the matrix a routine works on.
MEASURED = {
    "cpu": {  # units: one float32 multiply-add of a large matrix product
        "gemm64": (2.0, "one float64 multiply-add of a product"),
        "syrk64": (0.6, "float64 syrk, per multiply-add of the full product (so 1.2 l s^2)"),
        "svd_ls2": (10.0, "SVD, values only: this times l s^2 ..."),
        "svd_s3": (6.0, "... plus this times s^3"),
        "eigvalsh_s3": (5.0, "symmetric eigenvalues of an s x s matrix: this times s^3"),
        "qr_ls2": (12.0, "Householder QR of a thin l x s matrix: this times l s^2"),
        "ritz_md2": (2.0, "top-k iteration: Gram of the m x d images (d = depth * b columns), times m d^2"),
        "ritz_d3": (4.0, "top-k iteration: its small eigh and products, times d^3"),
        "svqb_ndb": (4.0, "top-k iteration: SVQB of each new (n, b) block against d columns, times n d b"),
    },
    "gpu": {  # units: seconds
        "flop": (1e-13, "one float32 multiply-add of a product"),
        "gemm64": (2.0, "one float64 multiply-add of a product, in float32 ones (as on the CPU)"),
        "syrk64": (0.6, "float64 syrk, per multiply-add of the full product (as on the CPU)"),
        "svd_per_s": (60e-6, "cuSOLVER SVD, per unit of s (47 ms for s = 784)"),
        "eigvalsh_per_s": (9e-6, "cuSOLVER symmetric eigenvalues, per unit of s"),
        "qr_per_s": (20e-6, "cuSOLVER QR, per unit of s"),
        "topk_iteration": (10e-3, "latency of one top-k iteration (host synchronisations)"),
    },
}
MEASURED_ON = {
    "cpu": "2026-11-26 (commit 2803b1e) on this project's CPU sandbox: AMD EPYC, 2 cores, NumPy with "
           "OpenBLAS (scipy-openblas 0.3), the routines timed at the paper's layer sizes (M = 2000, 784-wide "
           "layers). The original timing script was not kept; `python bench/linalg_methods.py --costs` "
           "re-measures these rows beside the table (the ritz_* and svqb_* rows are flop-count estimates).",
    "gpu": "2026-11-26 (commit 2803b1e) on one NVIDIA H200 with CuPy/cuSOLVER, same sizes; "
           "`python bench/linalg_methods.py --costs --device cuda` re-measures them (topk_iteration: "
           "the tracking case of bench/linalg_methods.py).",
}

# Iterations the model assumes for a top-k call (not measured: the solver's typical counts).
AUTO_TOPK_COLD_ITERS = 5  # a cold start
AUTO_TOPK_WARM_ITERS = 2  # a warm start on a matrix that changed little (at least); autospec.spectra
# costs its warm-started trackers with it


class Costs:
    """The cost of each building block, in the unit of its regime (``gpu`` True: seconds on CuPy)."""

    def __init__(self, gpu):
        self.gpu = gpu
        self.c = {name: value for name, (value, _) in MEASURED["gpu" if gpu else "cpu"].items()}

    def svd(self, l, s):
        l, s = max(l, s), min(l, s)
        c = self.c
        return c["svd_per_s"] * s if self.gpu else c["svd_ls2"] * l * s * s + c["svd_s3"] * s**3

    def eigvalsh(self, s):
        return self.c["eigvalsh_per_s"] * s if self.gpu else self.c["eigvalsh_s3"] * s**3

    def qr(self, l, s):
        return self.c["qr_per_s"] * s if self.gpu else self.c["qr_ls2"] * l * s * s

    def gemm(self, m, n, p, dtype):
        adds = float(m) * n * p * (1.0 if dtype == np.float32 else self.c["gemm64"])
        return adds * self.c["flop"] if self.gpu else adds

    def syrk64(self, l, s):
        return self.gemm(l, s, s, np.float64) * self.c["syrk64"]

    def topk(self, m, n, b, product, iters, depth=KRYLOV_DEPTH):
        """iters * (2 (depth - 1) products on b columns (``product`` each) + Gram
        Rayleigh-Ritz on d = depth * b columns + SVQB of depth - 1 blocks)."""
        c = self.c
        if self.gpu:
            return iters * (c["topk_iteration"] + 2 * (depth - 1) * product)
        d = depth * b
        return iters * (2 * (depth - 1) * product + c["ritz_md2"] * m * d * d + c["ritz_d3"] * d**3
                        + c["svqb_ndb"] * (depth - 1) * n * d * b)

    def topk_call(self, m, n, b, product, warm_iters=None):
        """One top-k call: a cold start, or ``warm_iters`` iterations at the warm depth."""
        if warm_iters is None:
            return self.topk(m, n, b, product, AUTO_TOPK_COLD_ITERS)
        return self.topk(m, n, b, product, warm_iters, depth=WARM_DEPTH + 1)


def choose_svdvals_method(m, n, k, dtype, gpu=False, warm_iters=None):
    """(method, costs) for the top-k values of an (m, n) matrix. ``warm_iters``: the top-k route
    is warm-started (a tracker kept from step to step) and expected to take that many
    iterations at the warm depth, instead of a cold start's."""
    c = Costs(gpu)
    l, s = max(m, n), min(m, n)
    costs = {"exact": c.svd(l, s)}
    if dtype == np.float32:
        # Gram in float64 is as accurate as float32 data (autospec.linalg's docstring); for float64
        # input it would lose values below ~1e-8 sigma_1, so auto never picks it there.
        costs["gram"] = c.syrk64(l, s) + c.eigvalsh(s)
    if 4 * k <= s:
        b = min(k + default_oversample(k, s), s)
        costs["topk"] = c.topk_call(m, n, b, c.gemm(m, n, b, dtype), warm_iters)
    return min(costs, key=costs.get), costs


def choose_gradient_method(M, fin, fout, k, dtype, gpu=False, warm_iters=None):
    """(method, costs) for the top-k values of G = A^T D with M rows; ``warm_iters`` as in
    :func:`choose_svdvals_method`."""
    c = Costs(gpu)
    lo, hi = min(fin, fout), max(fin, fout)
    costs = {"direct": c.gemm(M, fin, fout, dtype) + c.svd(hi, lo)}
    if M < hi:
        ra, rd = min(M, fin), min(M, fout)
        qr = (c.qr(fin, M) if fin > M else 0.0) + (c.qr(fout, M) if fout > M else 0.0)
        costs["factored"] = qr + c.gemm(ra, rd, M, np.float64) + c.svd(ra, rd)
    if dtype == np.float32:
        costs["gram"] = gradient_gram_cost(M, fin, fout, c) + c.eigvalsh(lo)
    if 4 * k <= min(lo, M):
        b = min(k + default_oversample(k, lo), lo)
        if M * (fin + fout) > 2 * fin * fout:  # factor_operator forms G first
            form, product = c.gemm(M, fin, fout, dtype), c.gemm(fin, fout, b, dtype)
        else:
            form, product = 0.0, c.gemm(M, fin + fout, b, dtype)
        costs["topk"] = form + c.topk_call(fin, fout, b, product, warm_iters)
    return min(costs, key=costs.get), costs


def gram_routes(M, fin, fout, c):
    """Costs of building G^T G (fout <= fin) by forming G, or as D^T (A A^T) D."""
    via_g = c.gemm(M, fin, fout, np.float64) + c.syrk64(fin, fout)
    via_k = c.syrk64(fin, M) + c.gemm(M, M, fout, np.float64) + c.gemm(fout, fout, M, np.float64)
    return via_g, via_k


def gradient_gram_cost(M, fin, fout, c=None):
    """The cheaper of the two ways to build the smaller Gram matrix of G = A^T D (CPU costs by default)."""
    lo, hi = min(fin, fout), max(fin, fout)
    return min(gram_routes(M, hi, lo, c or Costs(False)))
