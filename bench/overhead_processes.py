"""Introspection cost timed as users run it: one library per process, nothing set that a user
would not set (no OPENBLAS_THREAD_TIMEOUT, no torch in minigrad's process and vice versa).

The paper's MLP autoencoder (784 -> 32 -> 784, ReLU, MSE), N=2000, full batch, float32, groups
HC/SZ; spectra of G, A and D of both weights for the batch and each group, every step.

(a) introspected minigrad step / plain minigrad step   (one minigrad process, blocked timing)
(b) naive PyTorch step (hooks + torch.linalg.svdvals of A, D and G per group, in its own process)
    / introspected minigrad step

Each round starts a fresh process per library (the order alternates from round to round) and
takes the median of its timed steps; the ratios are reported as a median and range over rounds.

    python bench/overhead_processes.py --threads 2 --rounds 3
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _processes import child_environment, emit, format_range, round_order, run_child  # noqa: E402
from _timing import medians  # noqa: E402


def run_minigrad(n, width, threads, repeats):
    sys.path.insert(0, ROOT)
    import minigrad as mg
    from _naive_torch import make_data
    from autospec_overhead import minigrad_steps

    mg.set_num_threads(threads)  # as a user sets it (BLAS's threads follow minigrad's policy)
    X, labels = make_data(n)
    plain, introspected, _, _ = minigrad_steps(X, labels, width)
    # blocks of the two steps, alternating (same library: no foreign threads)
    plain_s, introspected_s = medians([plain, introspected], repeats, block=repeats // 3 or 1, warmup=3)
    return {"plain": plain_s, "introspected": introspected_s}


def run_torch(n, width, threads, repeats):
    import torch

    from _naive_torch import make_data, torch_naive_step

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    X, labels = make_data(n)
    return {"naive": medians([torch_naive_step(X, labels, width)], repeats, block=repeats, warmup=3)[0]}


def _child(side, args):
    return run_child(__file__, ["--side", side, "--n", args.n, "--width", args.width, "--threads", args.threads,
                                "--repeats", args.repeats], child_environment())[0]


def add_run_arguments(parser):
    """The options of a comparison (also bench/autospec_overhead.py's)."""
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per library for (a) and (b)")


def compare(args):
    """(a) and (b) over ``args.rounds`` rounds of one process per library, printed."""
    a, b = [], []
    for r in range(args.rounds):
        result = {}
        for side in round_order(("minigrad", "torch"), r):
            result.update(_child(side, args))
        a.append(result["introspected"] / result["plain"])
        b.append(result["naive"] / result["introspected"])
        print(f"round {r + 1}: plain {result['plain'] * 1e3:.2f} ms, introspected {result['introspected'] * 1e3:.2f} ms, "
              f"naive PyTorch {result['naive'] * 1e3:.2f} ms")
    print(f"MLP autoencoder 784 -> {args.width} -> 784, N={args.n}, {args.threads} threads, one library per process, "
          f"{args.rounds} rounds (median, range)")
    print(f"  (a) introspected / plain minigrad step    {format_range(a)}x")
    print(f"  (b) naive PyTorch / introspected minigrad {format_range(b)}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser)
    parser.add_argument("--side", choices=("minigrad", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        run = run_minigrad if args.side == "minigrad" else run_torch
        emit(run(args.n, args.width, args.threads, args.repeats))
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
