"""Time autospec.linalg's methods against numpy.linalg.svd (and torch.linalg.svdvals).

Each case times every method and the baselines in one process, interleaved round by
round, and prints the median time and its ratio to the NumPy baseline (time / baseline:
below 1 is faster), plus the largest error of the top-k values against a float64 SVD of
the same data (relative, and relative to sigma_1). Baseline: what a user would write, ``np.linalg.svd(A.T @ D,
compute_uv=False)`` on the input dtype (CuPy's on --device cuda).

    python bench/linalg_methods.py [--repeats 5] [--dtype float32] [--device cpu] [--quick]
    python bench/linalg_methods.py --costs [--device cpu]   # re-measure the cost model's constants

Spectra: "decaying" factors have power-law singular values (like activations of real
data); "gaussian" factors have the flat spectra that are the worst case for top-k.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from autospec.linalg import TopKTracker, gradient_operator, gradient_svdvals, svdvals  # noqa: E402
from autospec.linalg_costs import MEASURED, MEASURED_ON  # noqa: E402
from minigrad.backend import synchronize, to_numpy, xp_for  # noqa: E402


def factors(rng, M, fin, fout, spectrum, dtype):
    """(M, in) and (M, out) factors with power-law ("decaying") or Gaussian spectra."""
    if spectrum == "gaussian":
        return rng.standard_normal((M, fin)).astype(dtype), rng.standard_normal((M, fout)).astype(dtype)

    def powerlaw(cols, alpha):
        r = min(M, cols)
        U = np.linalg.qr(rng.standard_normal((M, r)))[0]
        V = np.linalg.qr(rng.standard_normal((cols, r)))[0]
        return ((U * np.arange(1.0, r + 1) ** -alpha) @ V.T).astype(dtype)

    return powerlaw(fin, 1.0), powerlaw(fout, 0.5)


def timed(fn, device):
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return time.perf_counter() - t0, out


def run_case(title, calls, device, repeats, k, exact):
    """calls: {name: fn}, the NumPy (or CuPy) baseline first; exact: float64 reference values."""
    times = {name: [] for name in calls}
    outs = {}
    for name, fn in calls.items():  # warm-up (imports, allocator, BLAS threads)
        outs[name] = to_numpy(fn())
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(timed(fn, device)[0])
    base = statistics.median(times[next(iter(calls))])
    ref = exact[:k]
    print(f"\n{title}")
    print(f"  {'method':<26}{'median s':>10}{'x numpy':>9}{'rel err':>10}{'err/s1':>10}")
    for name in calls:
        med = statistics.median(times[name])
        vals = np.sort(np.asarray(outs[name], dtype=np.float64))[::-1][:k]
        err = np.abs(vals - ref[: len(vals)])
        rel = np.max(err / np.maximum(ref[: len(vals)], 1e-300))
        print(f"  {name:<26}{med:>10.4f}{med / base:>9.3f}{rel:>10.1e}{np.max(err) / ref[0]:>10.1e}")


def exact_gradient_svdvals(A, D):
    A64, D64 = to_numpy(A).astype(np.float64), to_numpy(D).astype(np.float64)
    return np.linalg.svd(A64.T @ D64, compute_uv=False)


def baselines(xp, G_fn, device):
    calls = {"numpy svd(A^T D)" if xp is np else "cupy svd(A^T D)": lambda: xp.linalg.svd(G_fn(), compute_uv=False)}
    try:
        import torch

        tdev = "cuda" if device == "cuda" else "cpu"

        def torch_svdvals():
            G = G_fn()
            tG = torch.from_numpy(G) if xp is np else torch.as_tensor(G, device=tdev)
            return torch.linalg.svdvals(tG).cpu().numpy()

        calls["torch svdvals(A^T D)"] = torch_svdvals
    except ImportError:
        pass
    return calls


def gradient_case(rng, xp, device, repeats, M, fin, fout, k, spectrum, dtype):
    A_h, D_h = factors(rng, M, fin, fout, spectrum, dtype)
    A, D = xp.asarray(A_h), xp.asarray(D_h)
    bound = min(M, fin, fout)
    kk = bound if k is None else k
    calls = baselines(xp, lambda: A.T @ D, device)
    methods = ["direct", "gram", "auto"]
    if M < max(fin, fout):
        methods.insert(1, "factored")
    if k is not None and 4 * k <= bound:
        methods.insert(-1, "topk")
    for m in methods:
        calls[f"gradient_svdvals {m}"] = lambda m=m: gradient_svdvals(A, D, k=k, method=m)
    title = f"G = A^T D: M={M}, in={fin}, out={fout}, k={kk} ({spectrum}, {np.dtype(dtype).name}, {device})"
    run_case(title, calls, device, repeats, kk, exact_gradient_svdvals(A_h, D_h))


def matrix_case(rng, xp, device, repeats, m, n, k, spectrum, dtype):
    X_h, _ = factors(rng, m, n, 1, spectrum, dtype)
    X = xp.asarray(X_h)
    calls = baselines(xp, lambda: X, device)
    calls = {name.replace("(A^T D)", "(M)"): fn for name, fn in calls.items()}
    for meth in ["exact", "gram"] + (["topk"] if k is not None else []) + ["auto"]:
        calls[f"svdvals {meth}"] = lambda meth=meth: svdvals(X, k=k, method=meth)
    title = f"svdvals of M: {m}x{n}, k={k if k else min(m, n)} ({spectrum}, {np.dtype(dtype).name}, {device})"
    exact = np.linalg.svd(X_h.astype(np.float64), compute_uv=False)
    run_case(title, calls, device, repeats, k if k else min(m, n), exact)


def tracking_case(rng, xp, device, repeats, M, fin, fout, k, dtype, steps=8, drift=1e-2):
    """A training-like sequence: factors drift a little each step; warm-started top-k
    (TopKTracker through the matrix-free operator) against a full SVD per step."""
    A_h, D_h = factors(rng, M, fin, fout, "decaying", dtype)
    seq = []
    for _ in range(steps):
        A_h = A_h + drift * np.abs(A_h).mean() * rng.standard_normal(A_h.shape).astype(dtype)
        D_h = D_h + drift * np.abs(D_h).mean() * rng.standard_normal(D_h.shape).astype(dtype)
        seq.append((xp.asarray(A_h), xp.asarray(D_h)))

    def full():
        return [xp.linalg.svd(A.T @ D, compute_uv=False)[:k] for A, D in seq]

    def direct():
        return [gradient_svdvals(A, D, k=k, method="direct") for A, D in seq]

    iters = []

    def tracked():
        tracker = TopKTracker(k)
        out = []
        for A, D in seq:
            out.append(tracker(gradient_operator(A, D)))
            iters.append(tracker.last.iterations)
        return out

    times = {"svd per step": [], "direct per step": [], "TopKTracker (warm)": []}
    fns = {"svd per step": full, "direct per step": direct, "TopKTracker (warm)": tracked}
    outs = {name: fn() for name, fn in fns.items()}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(timed(fn, device)[0])
    base = statistics.median(times["svd per step"])
    ref = np.stack([exact_gradient_svdvals(A, D)[:k] for A, D in seq])
    print(f"\nTracking {steps} steps of G = A^T D: M={M}, in={fin}, out={fout}, k={k}, drift {drift}/step "
          f"({np.dtype(dtype).name}, {device})")
    print(f"  {'method':<26}{'median s':>10}{'x numpy':>9}{'rel err':>10}")
    for name in fns:
        med = statistics.median(times[name])
        got = np.stack([to_numpy(v) for v in outs[name]]).astype(np.float64)
        print(f"  {name:<26}{med:>10.4f}{med / base:>9.3f}{np.max(np.abs(got - ref) / ref):>10.1e}")
    per_call = iters[len(iters) - steps:]
    print(f"  top-k iterations per step (last run): {per_call}")


def median_time(fn, device, repeats):
    fn()  # warm-up
    return statistics.median(timed(fn, device)[0] for _ in range(repeats))


def measure_costs(xp, device, repeats):
    """The constants of autospec.linalg_costs.MEASURED for the LAPACK / cuSOLVER routines,
    measured here at the paper's layer sizes, beside the table's values. CPU rows are in units
    of one float32 multiply-add of a large product; GPU rows in seconds (per unit of s where
    the table says so). The top-k iteration rows (ritz_*, svqb_*, topk_iteration) are not
    re-measured: time them through the tracking case instead."""
    rng = np.random.default_rng(0)
    l, s, thin = 2000, 784, 200  # M = 2000 rows, a 784-wide layer, a group of 200 rows (factored route)

    def rand(*shape, dtype=np.float64):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))

    X32, S32 = rand(l, s, dtype=np.float32), rand(s, s, dtype=np.float32)
    X64, S64 = rand(l, s), rand(s, s)
    tall, wide = rand(l, s), rand(s, thin)
    C = X64.T @ X64
    t = {
        "gemm32": median_time(lambda: X32 @ S32, device, repeats) / (l * s * s),
        "gemm64": median_time(lambda: X64 @ S64, device, repeats) / (l * s * s),
        "syrk64": median_time(lambda: X64.T @ X64, device, repeats) / (l * s * s),
        "svd_square": median_time(lambda: xp.linalg.svd(S64, compute_uv=False), device, repeats),
        "svd_tall": median_time(lambda: xp.linalg.svd(tall, compute_uv=False), device, repeats),
        "eigvalsh": median_time(lambda: xp.linalg.eigvalsh(C), device, repeats),
        "qr": median_time(lambda: xp.linalg.qr(wide, mode="r"), device, repeats),
    }
    if device == "cpu":
        unit = t["gemm32"]
        # svd(l, s) = a l s^2 + b s^3, from a square (s, s) and a tall (l, s) matrix
        lhs = np.array([[float(s) ** 3, float(s) ** 3], [l * float(s) ** 2, float(s) ** 3]])
        a, b = np.linalg.solve(lhs, np.array([t["svd_square"], t["svd_tall"]]) / unit)
        got = {"gemm64": t["gemm64"] / unit, "syrk64": t["syrk64"] / (2 * unit), "svd_ls2": a, "svd_s3": b,
               "eigvalsh_s3": t["eigvalsh"] / (s**3 * unit), "qr_ls2": t["qr"] / (s * thin**2 * unit)}
        regime = "cpu"
    else:
        got = {"flop": t["gemm32"], "gemm64": t["gemm64"] / t["gemm32"], "syrk64": t["syrk64"] / (2 * t["gemm32"]),
               "svd_per_s": t["svd_square"] / s, "eigvalsh_per_s": t["eigvalsh"] / s, "qr_per_s": t["qr"] / thin}
        regime = "gpu"
    print(f"cost model constants ({regime}), medians of {repeats}; table measured: {MEASURED_ON[regime]}")
    print(f"  {'constant':<16}{'table':>10}{'here':>10}  meaning")
    for name, (value, meaning) in MEASURED[regime].items():
        here = f"{got[name]:>10.3g}" if name in got else f"{'-':>10}"
        print(f"  {name:<16}{value:>10.3g}{here}  {meaning}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="only the paper's MLP shapes")
    parser.add_argument("--costs", action="store_true", help="re-measure the cost model's constants instead")
    args = parser.parse_args(argv)
    xp = xp_for(args.device)
    if args.costs:
        return measure_costs(xp, args.device, args.repeats)
    dtype = np.dtype(args.dtype)
    rng = np.random.default_rng(0)
    r, dev = args.repeats, args.device
    print(f"autospec.linalg methods vs numpy.linalg.svd; median of {r}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")

    # The paper's MLP on MNIST (full batch of 2000): hidden layer 784->32 and decoder 32->784
    # (G is in x out = 784 x 32), and a 784 -> 784 layer, all k = 32.
    gradient_case(rng, xp, dev, r, 2000, 784, 32, None, "decaying", dtype)
    gradient_case(rng, xp, dev, r, 2000, 784, 784, 32, "decaying", dtype)
    gradient_case(rng, xp, dev, r, 2000, 784, 784, 32, "gaussian", dtype)
    gradient_case(rng, xp, dev, r, 2000, 784, 784, None, "decaying", dtype)
    if not args.quick:
        # N*P < min(in, out): one group of a few samples, or a small batch.
        gradient_case(rng, xp, dev, r, 200, 784, 784, None, "decaying", dtype)
        gradient_case(rng, xp, dev, r, 20, 784, 784, None, "decaying", dtype)
        # A conv layer: N=32 samples, P=100 positions, in = 32*3*3, out = 64.
        gradient_case(rng, xp, dev, r, 3200, 288, 64, None, "decaying", dtype)
        # Spectra of the factors themselves.
        matrix_case(rng, xp, dev, r, 2000, 784, None, "decaying", dtype)
        matrix_case(rng, xp, dev, r, 2000, 784, 32, "decaying", dtype)
        tracking_case(rng, xp, dev, max(3, r // 2), 2000, 784, 784, 32, dtype)


if __name__ == "__main__":
    main()
