"""Issue 3's CNN cases: 2-D CNNs on MNIST-sized 1x28x28 images, batch N=256, float32.

- cnn-classifier:  Conv2d(1,8,3,p1)+ReLU+MaxPool2d(2) -> Conv2d(8,16,3,p1)+ReLU+MaxPool2d(2)
                   -> Flatten -> Linear(16*7*7, 10), cross entropy.
- cnn-autoencoder: the same encoder, then Upsample(2) -> Conv2d(16,8,3,p1)+ReLU
                   -> ConvTranspose2d(8,1,2,stride 2), MSE against the input.

One step = zero_grad, forward, loss, backward, SGD update, on both sides with the
same weights (PyTorch's init copied into minigrad) and the same data. Run through
bench/engine.py, or alone (``python bench/engine_cnn.py [--threads 2] [--profile]``)
for a quick interleaved timing, per-layer times (--layers) and a profile (--profile).
"""
import os
import sys

# as bench/engine.py sets it (before NumPy loads OpenBLAS) when this file runs alone
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

N, SIDE, CLASSES = 256, 28, 10
LR = 0.01


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N, 1, SIDE, SIDE), dtype=np.float32)  # pixel-like values in [0, 1)
    labels = rng.integers(0, CLASSES, size=N)
    return x, labels


def _layers(nn, autoencoder):
    """The layer list, written once for both libraries (their constructors share signatures)."""
    encoder = [nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    if autoencoder:
        return encoder + [nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(8, 1, 2, stride=2)]
    return encoder + [nn.Flatten(), nn.Linear(16 * 7 * 7, CLASSES)]


def _pair(autoencoder):
    """The same CNN in PyTorch and minigrad, with identical weights."""
    import torch

    import minigrad as mg

    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(*_layers(torch.nn, autoencoder))
    mmodel = mg.nn.Sequential(*_layers(mg.nn, autoencoder))
    mmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    return tmodel, mmodel, torch, mg


def _steps(autoencoder):
    import torch.nn.functional as F
    from _steps import training_steps

    from minigrad.nn import functional as MF

    tmodel, mmodel, torch, mg = _pair(autoencoder)
    x_np, labels = _data()
    target_np = x_np if autoencoder else labels
    torch_loss, mg_loss = (F.mse_loss, MF.mse_loss) if autoencoder else (F.cross_entropy, MF.cross_entropy)
    mtarget = mg.tensor(target_np) if autoencoder else target_np
    return training_steps(mmodel, tmodel, mg.tensor(x_np), torch.from_numpy(x_np), mtarget,
                          torch.from_numpy(target_np), mg_loss, torch_loss, LR, torch, mg)


def cases(threads):
    """(name, minigrad_step, torch_step) for the classifier and the autoencoder."""
    yield ("cnn-classifier", *_steps(autoencoder=False))
    yield ("cnn-autoencoder", *_steps(autoencoder=True))


def layer_times(autoencoder, repeats=15):
    """Median forward and backward milliseconds of every layer of the minigrad model (one step each)."""
    import time

    import minigrad as mg
    from minigrad.nn import functional as MF

    _, model, _, _ = _pair(autoencoder)
    x_np, labels = _data()
    x = mg.tensor(x_np)
    target, loss_fn = (mg.tensor(x_np), MF.mse_loss) if autoencoder else (labels, MF.cross_entropy)
    fwd, bwd = [], []
    for _ in range(repeats):
        h, outs, f_ms, b_ms = x, [], [], {}
        for layer in model:
            start = time.perf_counter()
            h = layer(h)
            f_ms.append((time.perf_counter() - start) * 1e3)
            outs.append(h)
        for i, out in enumerate(outs):  # time each layer's backward closure
            def timed(g, inner=out._backward, i=i):
                start = time.perf_counter()
                grads = inner(g)
                b_ms[i] = (time.perf_counter() - start) * 1e3
                return grads
            out._backward = timed
        loss_fn(h, target).backward()
        fwd.append(f_ms)
        bwd.append([b_ms.get(i, 0.0) for i in range(len(outs))])
    return [(type(m).__name__, f, b) for m, f, b in zip(model, np.median(fwd, 0), np.median(bwd, 0))]


def _main():
    import argparse
    import cProfile
    import pstats
    import statistics

    parser = argparse.ArgumentParser(description="quick standalone timing of the CNN cases")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--layers", action="store_true", help="also print per-layer forward/backward times")
    parser.add_argument("--profile", action="store_true", help="also profile 10 minigrad steps per case")
    args = parser.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from engine import configure, time_case

    with configure(args.threads):
        for name, mg_step, torch_step in cases(args.threads):
            mg, tc = (statistics.median(t) for t in time_case(name, mg_step, torch_step, args.repeats, 3))
            print(f"{name}: minigrad {mg * 1e3:.1f} ms  torch {tc * 1e3:.1f} ms  ratio {mg / tc:.2f}")
            if args.layers:
                for layer, f, b in layer_times(name.endswith("autoencoder")):
                    print(f"    {layer:<16} forward {f:6.2f} ms  backward {b:6.2f} ms")
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                for _ in range(10):
                    mg_step()
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(14)


if __name__ == "__main__":
    _main()
