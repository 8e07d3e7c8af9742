"""Issue 3's CNN cases: 2-D CNNs on MNIST-sized 1x28x28 images, batch N=256, float32.

- cnn-classifier:  Conv2d(1,8,3,p1)+ReLU+MaxPool2d(2) -> Conv2d(8,16,3,p1)+ReLU+MaxPool2d(2)
                   -> Flatten -> Linear(16*7*7, 10), cross entropy.
- cnn-autoencoder: the same encoder, then Upsample(2) -> Conv2d(16,8,3,p1)+ReLU
                   -> ConvTranspose2d(8,1,2,stride 2), MSE against the input.

One step = zero_grad, forward, loss, backward, SGD update; weights and data drawn from NumPy
seeds alike on both sides (bench/_steps.py).
"""
import numpy as np

from _steps import minigrad_step, torch_step

N, SIDE, CLASSES = 256, 28, 10
LR = 0.01


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N, 1, SIDE, SIDE), dtype=np.float32)  # pixel-like values in [0, 1)
    labels = rng.integers(0, CLASSES, size=N)
    return x, labels


def _model(nn, autoencoder):
    """The layer stack, written once for both libraries (their constructors share signatures)."""
    encoder = [nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
               nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    if autoencoder:
        return nn.Sequential(*encoder, nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
                             nn.ConvTranspose2d(8, 1, 2, stride=2))
    return nn.Sequential(*encoder, nn.Flatten(), nn.Linear(16 * 7 * 7, CLASSES))


def minigrad_cases():
    """(name, step) for the classifier and the autoencoder, in minigrad."""
    import minigrad as mg
    from minigrad.nn import functional as F

    x, labels = _data()
    yield "cnn-classifier", minigrad_step(_model(mg.nn, False), F.cross_entropy, x, labels, LR)
    yield "cnn-autoencoder", minigrad_step(_model(mg.nn, True), F.mse_loss, x, mg.tensor(x), LR)


def torch_cases():
    """(name, step) for the classifier and the autoencoder, in PyTorch."""
    import torch
    import torch.nn.functional as F

    x, labels = _data()
    yield "cnn-classifier", torch_step(_model(torch.nn, False), F.cross_entropy, x, torch.from_numpy(labels), LR)
    yield "cnn-autoencoder", torch_step(_model(torch.nn, True), F.mse_loss, x, torch.from_numpy(x), LR)
