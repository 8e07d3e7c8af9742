"""What introspection costs: AutoSpec against a plain step and against the naive pipeline.

The paper's MLP autoencoder (784 -> 32 -> 784, ReLU, MSE), full batch, float32,
spectra of G, A and D for every weight, for the batch and two groups, every step.

(a) introspected minigrad step / plain minigrad step            (target <= 1.5)
(b) naive PyTorch step (forward/backward hooks + torch.linalg.svdvals of A, D and G,
    for the batch and each group) / introspected minigrad step   (target >= 10)
(c) how both grow with N and width: a table of step times and ratios.
(d) what the presets and lighter schedules cost (mean step over runs of steps).

(a) and (b) are timed as users run them, one library per process (bench/overhead_processes.py);
(c) and (d) compare minigrad with itself in one process, steps timed in alternating blocks,
medians reported. Nothing is set that a user would not set; threads as a user sets them.

    python bench/autospec_overhead.py               # (a), (b), (c), (d)
    python bench/autospec_overhead.py --skip-scaling --repeats 30
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import autospec  # noqa: E402
import overhead_processes  # noqa: E402
from _naive_torch import make_data  # noqa: E402
from _timing import medians  # noqa: E402
import minigrad as mg  # noqa: E402
from minigrad import nn, optim  # noqa: E402


def minigrad_steps(X, labels, width, lr=1e-3, **settings):
    """(plain_step, introspected_step, introspector, model) on one model; ``settings`` go to the
    Introspector (default: G, A and D of every weight, every step)."""
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(X.shape[1], width), nn.ReLU(), nn.Linear(width, X.shape[1]))
    opt = optim.SGD(model.parameters(), lr=lr)
    x = mg.tensor(X)
    spec = autospec.Introspector(model, **(settings or {"quantities": ("G", "A", "D")}))

    def plain():
        loss = nn.functional.mse_loss(model(x), X)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def introspected():
        loss = nn.functional.mse_loss(model(x), X)
        opt.zero_grad()
        with spec.step(groups=labels, loss=loss):
            loss.backward()
        opt.step()

    return plain, introspected, spec, model


def part_a(n, width, repeats, clock):
    """(a) alone, in this process (minigrad only)."""
    X, labels = make_data(n)
    plain, intro, spec, _ = minigrad_steps(X, labels, width)
    med = medians([plain, intro], repeats, clock=clock)
    print(f"MLP autoencoder 784 -> {width} -> 784, N={n}, full batch, float32, groups HC/SZ, "
          f"spectra of G, A, D for both weights every step ({repeats} repeats, medians of {clock} time)")
    print(f"  plain minigrad step        {med[0] * 1e3:9.2f} ms")
    print(f"  introspected minigrad step {med[1] * 1e3:9.2f} ms")
    print(f"  (a) introspected / plain   {med[1] / med[0]:9.2f}x   (target <= 1.5)")
    seconds = spec.record.extra("introspect_seconds")
    print(f"  spectra time inside the introspected step: median {np.median(seconds) * 1e3:.2f} ms")


def part_c(sizes, widths, repeats, clock):
    print("(c) scaling: median step times (ms) and introspected/plain ratio")
    print(f"  {'N':>6} {'width':>6} {'plain':>10} {'introspected':>13} {'ratio':>7}")
    for width in widths:
        for n in sizes:
            X, labels = make_data(n)
            plain, intro, _, _ = minigrad_steps(X, labels, width)
            p, i = medians([plain, intro], repeats, warmup=1, clock=clock)
            print(f"  {n:>6} {width:>6} {p * 1e3:>10.2f} {i * 1e3:>13.2f} {i / p:>7.2f}")


SCHEDULES = [
    ("preset economy (G, top-8, every 10th step)", {"preset": "economy"}),
    ("preset business (G, A, D, every step)", {"preset": "business"}),
    ("G, A, D every 10th step", {"every": 10}),
    ("G only, every step", {"quantities": ("G",)}),
    ("G only, top-8, every step", {"quantities": ("G",), "k": 8}),
]


def part_schedules(n, width, repeats, clock, run=20):
    """(d) what the presets and schedules cost: mean step time over runs of ``run`` steps."""
    X, labels = make_data(n)
    print(f"(d) presets and schedules, N={n}, width {width}: mean step over {run} consecutive steps, "
          "introspected / plain")
    for name, settings in SCHEDULES:
        plain, intro, _, _ = minigrad_steps(X, labels, width, **settings)

        def runs(step):
            return lambda: [step() for _ in range(run)]

        p, i = medians([runs(plain), runs(intro)], repeats, warmup=1, clock=clock, block=1)
        print(f"  {name:<46} {i / p:6.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    overhead_processes.add_run_arguments(parser)  # --n --width --threads --repeats --rounds
    parser.add_argument("--skip-torch", action="store_true", help="(a) alone, in this process, instead of (a) and (b)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-schedules", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000, 16000])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--scaling-repeats", type=int, default=3)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time (robust on a busy machine; use with --threads 1)")
    args = parser.parse_args(argv)
    mg.set_num_threads(args.threads)
    if args.skip_torch:
        part_a(args.n, args.width, args.repeats, args.clock)
    else:
        overhead_processes.compare(args)  # (a) and (b), one library per process
    if not args.skip_schedules:
        part_schedules(args.n, args.width, max(3, args.repeats // 3), args.clock)
    if not args.skip_scaling:
        part_c(args.sizes, args.widths, args.scaling_repeats, args.clock)


if __name__ == "__main__":
    main()
