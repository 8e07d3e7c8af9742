"""BERT-style encoder training step, minigrad vs PyTorch CPU (a case for bench/engine.py).

Model (both sides, identical weights and data, float32, dropout 0): a Linear(53, 64) input
projection of a sequence of L=150 feature vectors, two post-LN TransformerEncoderLayers
(d_model 64, 4 heads, dim_feedforward 128, GELU), mean pooling over tokens and a Linear(64, 10)
classifier; cross-entropy on batch N=32; one SGD step (lr 0.01). Both sides use ``threads``
threads: torch.set_num_threads, BLAS through threadpoolctl, and minigrad's attention workers.

Run: ``python bench/engine.py --only bert``, or ``python bench/engine_bert.py [--threads 2]
[--repeats 21] [--profile]`` (the same through bench/engine.py, plus a cProfile of minigrad's step).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH, LENGTH, FEATURES = 32, 150, 53
D_MODEL, HEADS, FEEDFORWARD, LAYERS, CLASSES = 64, 4, 128, 2, 10
LR = 0.01


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, LENGTH, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=BATCH)
    return x, y


def build_torch():
    import torch

    class TorchEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(FEATURES, D_MODEL)
            layer = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, activation="gelu",
                                                     batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = torch.nn.Linear(D_MODEL, CLASSES)

        def forward(self, x):
            return self.head(self.encoder(self.embed(x)).mean(dim=1))

    torch.manual_seed(0)
    return TorchEncoder()


def build_minigrad():
    from minigrad import nn
    from minigrad.nn.transformer import TransformerEncoder, TransformerEncoderLayer

    class MinigradEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(FEATURES, D_MODEL)
            layer = TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, activation="gelu",
                                            batch_first=True)
            self.encoder = TransformerEncoder(layer, LAYERS)
            self.head = nn.Linear(D_MODEL, CLASSES)

        def forward(self, x):
            return self.head(self.encoder(self.embed(x)).mean(axis=1))

    return MinigradEncoder()


def make_steps():
    """(minigrad_step, torch_step) on identical weights and data; each runs one SGD training step."""
    import torch

    import minigrad as mg
    from minigrad import nn, optim

    x, y = _data()
    tmodel = build_torch()
    mmodel = build_minigrad()
    mmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    topt = torch.optim.SGD(tmodel.parameters(), lr=LR)
    mx = mg.tensor(x)
    mopt = optim.SGD(mmodel.parameters(), lr=LR)
    criterion = nn.CrossEntropyLoss()

    def torch_step():
        topt.zero_grad()
        loss = torch.nn.functional.cross_entropy(tmodel(tx), ty)
        loss.backward()
        topt.step()
        return float(loss.item())

    def minigrad_step():
        mopt.zero_grad()
        loss = criterion(mmodel(mx), y)
        loss.backward()
        mopt.step()
        return float(loss.item())

    return minigrad_step, torch_step


def cases(threads):
    """Yield (name, minigrad_step, torch_step) for bench/engine.py (which sets torch's and BLAS's threads).

    The attention kernel's own worker threads (it splits the batch; NumPy's elementwise work is
    single-threaded otherwise) are set to the same count here.
    """
    from minigrad.ops import attention

    attention.set_num_threads(threads)
    minigrad_step, torch_step = make_steps()
    yield (f"bert-style encoder {LAYERS}x(d{D_MODEL}, h{HEADS}, ff{FEEDFORWARD}) L={LENGTH} N={BATCH}",
           minigrad_step, torch_step)


def _profile(threads, steps=20):
    """Where minigrad's step time goes: cProfile of ``steps`` steps, sorted by own time."""
    import cProfile
    import pstats

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(limits=threads):
        (_, minigrad_step, _), = cases(threads)
        for _ in range(3):
            minigrad_step()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(steps):
            minigrad_step()
        prof.disable()
    print(f"minigrad, {steps} steps, {threads} threads:")
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--profile", action="store_true", help="also print where minigrad's time goes")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import engine

    code = engine.main(["--only", "bert", "--threads", str(args.threads), "--repeats", str(args.repeats)])
    if args.profile:
        _profile(args.threads)
    return code


if __name__ == "__main__":
    sys.exit(main())
