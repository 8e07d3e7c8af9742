"""Cost of the live view (autospec.live): ms per refresh, and a training step's cost with and
without ``live=True`` (the default adaptive rate), for a 2-layer MLP and a 3-layer model.

    PYTHONPATH=. python bench/live_cost.py [--steps 100 300 500]
"""
import argparse
import os
import tempfile
import time

import numpy as np

import autospec
import minigrad as mg
from minigrad import nn, optim


def model_of(depth):
    mg.manual_seed(0)
    if depth == 2:
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))


def train(depth, steps, live, per_sample=False, folder="."):
    rng = np.random.default_rng(0)
    X, y = mg.tensor(rng.normal(size=(128, 64))), mg.tensor(rng.integers(0, 4, 128))
    groups = np.where(np.arange(128) < 64, "a", "b")
    model = model_of(depth)
    opt, loss_fn = optim.SGD(model.parameters(), lr=0.05), nn.CrossEntropyLoss()
    spec = autospec.Introspector(model, live=live, per_sample=per_sample,
                                 live_path=os.path.join(folder, f"live-{depth}.png") if live else None)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = loss_fn(model(X), y)
        opt.zero_grad()
        with spec.step(groups=groups, loss=loss):
            loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    spec.close()
    close = time.perf_counter() - t0
    return np.array(times), spec.live, close


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 300, 500])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        train(2, 3, 1, folder=folder)  # warm-up: imports, font cache
        for depth in (2, 3):
            for steps in args.steps:
                # refresh cost at a fixed rate with `steps` recorded: redraw every step of the last 10
                base, _, _ = train(depth, steps, False, folder=folder)
                t_live, view, close = train(depth, steps, True, folder=folder)
                fixed = view  # adaptive run's refreshes
                n = fixed.refreshes
                print(f"{depth}-layer MLP, {steps} steps: step {1e3 * np.median(base):.1f} ms median, "
                      f"{1e3 * base.mean():.1f} ms mean without live; with live=True {1e3 * t_live.mean():.1f} ms mean "
                      f"({t_live.sum() / base.sum():.2f}x the training time, +{1e3 * close:.0f} ms at close); "
                      f"{n} refreshes, {1e3 * np.median(fixed.costs):.0f} ms median per refresh "
                      f"(max {1e3 * max(fixed.costs):.0f}), {100 * fixed.seconds / t_live.sum():.1f}% of the time")
            # the refresh cost itself, as the series grow: one refresh after 100..500 recorded steps
            _, view, _ = train(depth, max(args.steps), max(args.steps) // 5 or 1, folder=folder)
            print(f"  live={max(args.steps) // 5}: refresh costs (ms) over the run: "
                  f"{', '.join(f'{1e3 * c:.0f}' for c in view.costs)}")
        _, view, _ = train(3, 200, 20, per_sample=True, folder=folder)
        print(f"3-layer, per_sample=True (six panels), live=20: {1e3 * np.median(view.costs):.0f} ms median per refresh")


if __name__ == "__main__":
    main()
