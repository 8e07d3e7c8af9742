"""Issue 2's cases: the paper's MLPs on MNIST-sized data, full batch N=2000, float32.

- mlp-autoencoder: 784 -> 32 -> 784 with ReLU, MSE against the input.
- mlp-classifier:  784 -> 32 -> 10 with ReLU, cross entropy against 10 classes.

One step = zero_grad, forward, loss, backward, SGD update; weights and data drawn from NumPy
seeds alike on both sides (bench/_steps.py).
"""
import numpy as np

from _steps import minigrad_step, torch_step

N, IN, HIDDEN, CLASSES = 2000, 784, 32, 10
LR = 0.01


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N, IN), dtype=np.float32)  # pixel-like values in [0, 1)
    labels = rng.integers(0, CLASSES, size=N)
    return x, labels


def _model(nn, out_features):
    """The layer stack, written once for both libraries (their constructors share signatures)."""
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, out_features))


def minigrad_cases():
    """(name, step) for the autoencoder and the classifier, in minigrad."""
    import minigrad as mg
    from minigrad.nn import functional as F

    x, labels = _data()
    yield "mlp-autoencoder", minigrad_step(_model(mg.nn, IN), F.mse_loss, x, mg.tensor(x), LR)
    yield "mlp-classifier", minigrad_step(_model(mg.nn, CLASSES), F.cross_entropy, x, labels, LR)


def torch_cases():
    """(name, step) for the autoencoder and the classifier, in PyTorch."""
    import torch
    import torch.nn.functional as F

    x, labels = _data()
    yield "mlp-autoencoder", torch_step(_model(torch.nn, IN), F.mse_loss, x, torch.from_numpy(x), LR)
    yield "mlp-classifier", torch_step(_model(torch.nn, CLASSES), F.cross_entropy, x, torch.from_numpy(labels), LR)
