"""Cost of the live view (autospec.live): ms per refresh, and a training step's cost with and
without ``live=True`` (the default adaptive rate), for a 2-layer MLP and a 3-layer model.

    PYTHONPATH=. python bench/live_cost.py [--steps 100 500]

Times are CPU seconds of this process (time.process_time), steadier than wall time on a shared
machine; BLAS runs on one thread. The adaptive rule of live=True itself works on wall time.
"""
import argparse
import os
import tempfile
import time

import numpy as np

# one thread for the BLAS libraries loaded later on (SciPy's own OpenBLAS, on first use);
# NumPy's, loaded already, gets it from mg.set_num_threads(1) below
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import autospec  # noqa: E402
import autospec.live  # noqa: E402
import minigrad as mg  # noqa: E402

_real_refresh = autospec.live.LiveView.refresh


def _timed_refresh(self):
    start = time.process_time()
    png = _real_refresh(self)
    self.cpu_costs = getattr(self, "cpu_costs", []) + [time.process_time() - start]
    return png


autospec.live.LiveView.refresh = _timed_refresh
mg.set_num_threads(1)
from minigrad import nn, optim  # noqa: E402


def model_of(depth, width=64):
    mg.manual_seed(0)
    if depth == 2:
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 4))
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 4))


def train(depth, steps, live, per_sample=False, folder=".", width=64, n=128):
    rng = np.random.default_rng(0)
    X, y = mg.tensor(rng.normal(size=(n, 64))), mg.tensor(rng.integers(0, 4, n))
    groups = np.where(np.arange(n) < n // 2, "a", "b")
    model = model_of(depth, width)
    opt, loss_fn = optim.SGD(model.parameters(), lr=0.05), nn.CrossEntropyLoss()
    spec = autospec.Introspector(model, live=live, per_sample=per_sample,
                                 live_path=os.path.join(folder, f"live-{depth}.png") if live else None)
    times = []
    for _ in range(steps):
        t0 = time.process_time()
        loss = loss_fn(model(X), y)
        opt.zero_grad()
        with spec.step(groups=groups, loss=loss):
            loss.backward()
        opt.step()
        times.append(time.process_time() - t0)
    t0 = time.process_time()
    spec.close()
    close = time.process_time() - t0
    return np.array(times), spec.live, close


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--long", type=int, default=300, help="steps of the longer run (0: skip it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        train(2, 3, 1, folder=folder)  # warm-up: imports, font cache
        if args.long:  # a run long enough for the steady state: 3-layer, width 512, batch 512
            kw = dict(folder=folder, width=512, n=512)
            base, _, _ = train(3, args.long, False, **kw)
            t_auto, auto, close = train(3, args.long, True, **kw)
            print(f"3-layer MLP width 512, batch 512, {args.long} steps: {base.sum():.1f} s of steps without live "
                  f"({1e3 * base.mean():.0f} ms each), {t_auto.sum() + close:.1f} s with live=True "
                  f"({(t_auto.sum() + close) / base.sum():.2f}x): {auto.refreshes} refreshes of "
                  f"{1e3 * np.median(auto.cpu_costs):.0f} ms median = "
                  f"{100 * sum(auto.cpu_costs) / (t_auto.sum() + close):.1f}% of the time")
        for depth in (2, 3):
            for steps in args.steps:
                base, _, _ = train(depth, steps, False, folder=folder)
                t_auto, auto, close = train(depth, steps, True, folder=folder)
                t_10, ten, _ = train(depth, steps, 10, folder=folder)
                costs = 1e3 * np.array(ten.cpu_costs[1:])  # the first refresh also builds the figure
                print(f"{depth}-layer MLP, {steps} recorded steps: refresh {np.median(costs):.0f} ms median "
                      f"(first {1e3 * ten.cpu_costs[0]:.0f} ms, last {costs[-1]:.0f} ms) | step without live "
                      f"{1e3 * base.mean():.1f} ms mean, {1e3 * np.median(base):.1f} median | live=True: "
                      f"{1e3 * t_auto.mean():.1f} ms mean ({t_auto.sum() / base.sum():.2f}x), {auto.refreshes} "
                      f"refreshes = {100 * sum(auto.cpu_costs) / (t_auto.sum() + close):.1f}% of the time (+{1e3 * close:.0f} ms "
                      f"at close) | live=10: {1e3 * t_10.mean():.1f} ms mean ({t_10.sum() / base.sum():.2f}x)")
        _, view, _ = train(3, 100, 10, per_sample=True, folder=folder)
        print(f"3-layer MLP, per_sample=True (six panels), 100 steps, live=10: "
              f"{1e3 * np.median(view.cpu_costs[1:]):.0f} ms median per refresh")


if __name__ == "__main__":
    main()
