"""GPU benchmark: training steps on CuPy vs NumPy (and PyTorch CUDA where installed),
with and without full introspection, side by side in one process.

Models (the paper's, from models/ via ``models.build_model``, at the sizes of bench/engine_*.py):
MLP autoencoder 784-32-784 (N=2000), CNN2D classifier on 1x28x28 with stride-2 convolutions of
8 and 16 channels (N=256), LSTM 53->32 over T=150 (N=64), 2-layer BERT (d_model 64, 4 heads,
ff 128, GELU, L=150, N=32); PyTorch CUDA runs the same layers (``torch_twin``). Every step: forward, loss, backward,
SGD. "Introspected" = autospec.Introspector with spectra of G, A, D of every weight for
the batch and two groups, every step. Medians of repeats timed in alternating blocks.

    python bench/gpu.py                       # prints a table of times and ratios
    python bench/gpu.py --markdown bench/results/gpu.md
"""
import argparse
import datetime
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import autospec  # noqa: E402
from _timing import medians  # noqa: E402
import minigrad as mg  # noqa: E402
import models  # noqa: E402
from minigrad import backend, nn, optim  # noqa: E402


# The paper's models from models/ at the sizes of bench/engine_*.py: build_model's arguments per case.
MODELS = {
    "mlp-autoencoder": dict(arch="mlp", task="autoencode", input_shape=(784,), width=32),
    "cnn2d-classifier": dict(arch="cnn2d", task="classify", input_shape=(1, 28, 28), n_classes=10, hidden=(8, 16)),
    "lstm-classifier": dict(arch="lstm", task="classify", input_shape=(150, 53), n_classes=2, width=32),
    "bert-classifier": dict(arch="bert", task="classify", input_shape=(150, 53), n_classes=2, hidden=(64, 64),
                            nhead=4, ff_mult=2, activation="gelu"),
}


def cases(seed=0):
    """(name, model factory, inputs, targets, loss) per model, host data."""
    rng = np.random.default_rng(seed)
    mnist = rng.random((2000, 784), dtype=np.float32)
    images = rng.random((256, 1, 28, 28), dtype=np.float32)
    seq = rng.standard_normal((64, 150, 53)).astype(np.float32)
    seq_b = rng.standard_normal((32, 150, 53)).astype(np.float32)
    data = {"mlp-autoencoder": (mnist, mnist, "mse"),
            "cnn2d-classifier": (images, rng.integers(0, 10, 256), "ce"),
            "lstm-classifier": (seq, rng.integers(0, 2, 64), "ce"),
            "bert-classifier": (seq_b, rng.integers(0, 2, 32), "ce")}
    return [(name, lambda spec=spec: models.build_model(**spec), *data[name]) for name, spec in MODELS.items()]


def make_step(factory, X, Y, loss_kind, device, introspect):
    mg.manual_seed(0)
    model = factory().to(device)
    opt = optim.SGD(model.parameters(), lr=0.01)
    x = mg.tensor(X, device=device)
    y = backend.to_device(Y, device)
    labels = np.where(np.arange(len(X)) % 2 == 0, "HC", "SZ")
    spec = autospec.Introspector(model) if introspect else None
    loss_fn = nn.functional.mse_loss if loss_kind == "mse" else nn.functional.cross_entropy

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        if spec is None:
            loss.backward()
        else:
            with spec.step(groups=labels, loss=loss):
                loss.backward()
        opt.step()
        backend.synchronize(device)

    return step


def torch_twin(name, torch):
    """The PyTorch model with the layers of models/' model for case ``name`` (see MODELS)."""
    tn = torch.nn
    if name == "mlp-autoencoder":  # MLP(784, hidden=(32,), task="autoencode")
        return tn.Sequential(tn.Linear(784, 32), tn.ReLU(), tn.Linear(32, 784))
    if name == "cnn2d-classifier":  # CNN2D: stride-2 convolutions, then a linear head
        return tn.Sequential(tn.Conv2d(1, 8, 3, stride=2, padding=1), tn.ReLU(),
                             tn.Conv2d(8, 16, 3, stride=2, padding=1), tn.ReLU(), tn.Flatten(),
                             tn.Linear(16 * 7 * 7, 10))
    if name == "lstm-classifier":  # LSTM: ReLU on the output sequence, head on the last step
        class LSTM(tn.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.head = tn.LSTM(53, 32, batch_first=True), tn.Linear(32, 2)

            def forward(self, x):
                return self.head(tn.functional.relu(self.lstm(x)[0])[:, -1])
        return LSTM()

    class BERT(tn.Module):  # embedding + learned positions + LayerNorm, 2 post-LN layers, mean, head
        def __init__(self):
            super().__init__()
            self.embed = tn.Linear(53, 64)
            self.position = tn.Parameter(0.02 * torch.randn(150, 64))
            self.embed_norm = tn.LayerNorm(64)
            self.encoder = tn.TransformerEncoder(tn.TransformerEncoderLayer(
                64, 4, dim_feedforward=128, dropout=0.0, activation="gelu", batch_first=True), 2,
                enable_nested_tensor=False)
            self.head = tn.Linear(64, 2)

        def forward(self, x):
            h = self.embed_norm(self.embed(x) + self.position[: x.shape[1]])
            return self.head(self.encoder(h).mean(dim=1))
    return BERT()


def torch_step(name, X, Y, loss_kind):
    """The same model in PyTorch CUDA (None when torch or CUDA is missing)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    model = torch_twin(name, torch).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.from_numpy(X).cuda()
    y = torch.from_numpy(np.asarray(Y)).cuda()
    F = torch.nn.functional
    loss_fn = F.mse_loss if loss_kind == "mse" else F.cross_entropy

    def step():
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.cuda.synchronize()

    return step


def device_name():
    try:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        return props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    except Exception as exc:  # pragma: no cover
        return f"unknown ({exc})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cpu-repeats", type=int, default=3)
    parser.add_argument("--only", default=None)
    parser.add_argument("--markdown", default=None, help="also write the table as Markdown to this file")
    parser.add_argument("--gpu-device", default="cuda", help="'cpu' only to dry-run this script without a GPU")
    args = parser.parse_args(argv)
    gpu_dev = args.gpu_device
    backend.xp_for(gpu_dev)  # clear error without a GPU
    card = device_name() if gpu_dev == "cuda" else "none (dry run on CPU)"
    threads = os.cpu_count()
    rows = []
    print(f"GPU: {card}; NumPy on {threads} CPU threads; medians of {args.repeats} GPU / {args.cpu_repeats} CPU repeats")
    header = (f"{'model':<18} {'numpy':>9} {'cupy':>9} {'cupy+spec':>10} {'numpy+spec':>11} {'torch-cuda':>10} "
              f"{'cupy vs numpy':>14} {'spec overhead gpu':>18} {'spec overhead cpu':>18} {'cupy vs torch':>14}")
    print(header)
    for name, factory, X, Y, kind in cases():
        if args.only and args.only not in name:
            continue
        cpu_plain, cpu_spec = medians([make_step(factory, X, Y, kind, "cpu", False),
                                       make_step(factory, X, Y, kind, "cpu", True)], args.cpu_repeats, warmup=1)
        gpu = [make_step(factory, X, Y, kind, gpu_dev, False), make_step(factory, X, Y, kind, gpu_dev, True)]
        t_step = torch_step(name, X, Y, kind) if gpu_dev == "cuda" else None
        if t_step is not None:
            gpu.append(t_step)
        med = medians(gpu, args.repeats)
        gpu_plain, gpu_spec = med[0], med[1]
        torch_t = med[2] if t_step is not None else float("nan")
        row = dict(model=name, numpy=cpu_plain, cupy=gpu_plain, cupy_spec=gpu_spec, numpy_spec=cpu_spec,
                   torch=torch_t, speedup=cpu_plain / gpu_plain, overhead_gpu=gpu_spec / gpu_plain,
                   overhead_cpu=cpu_spec / cpu_plain, vs_torch=gpu_plain / torch_t)
        rows.append(row)
        print(f"{name:<18} {cpu_plain * 1e3:>7.1f}ms {gpu_plain * 1e3:>7.2f}ms {gpu_spec * 1e3:>8.2f}ms "
              f"{cpu_spec * 1e3:>9.1f}ms {torch_t * 1e3:>8.2f}ms {row['speedup']:>13.1f}x "
              f"{row['overhead_gpu']:>17.2f}x {row['overhead_cpu']:>17.2f}x {row['vs_torch']:>13.2f}x", flush=True)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(f"# GPU benchmark\n\nCard: {card}. Date: {datetime.date.today().isoformat()}. "
                     f"NumPy baseline on the same machine's {threads} CPU threads. Command: `python bench/gpu.py`.\n\n"
                     "Step = forward, loss, backward, SGD; spec = autospec.Introspector (G, A, D of every weight, "
                     "batch + 2 groups, every step). Medians of repeats timed in alternating blocks.\n\n"
                     "| model | NumPy step | CuPy step | CuPy + spectra | PyTorch CUDA | CuPy vs NumPy | "
                     "spectra overhead on GPU | CuPy / PyTorch CUDA |\n|---|---|---|---|---|---|---|---|\n")
            for r in rows:
                fh.write(f"| {r['model']} | {r['numpy'] * 1e3:.1f} ms | {r['cupy'] * 1e3:.2f} ms | "
                         f"{r['cupy_spec'] * 1e3:.2f} ms | {r['torch'] * 1e3:.2f} ms | {r['speedup']:.1f}x | "
                         f"{r['overhead_gpu']:.2f}x | {r['vs_torch']:.2f}x |\n")
    return rows


if __name__ == "__main__":
    main()
