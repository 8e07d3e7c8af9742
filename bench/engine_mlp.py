"""Issue 2's cases: the paper's MLPs on MNIST-sized data, full batch N=2000, float32.

- mlp-autoencoder: 784 -> 32 -> 784 with ReLU, MSE against the input.
- mlp-classifier:  784 -> 32 -> 10 with ReLU, cross entropy against 10 classes.

One step = zero_grad, forward, loss, backward, SGD update, on both sides with the
same weights (PyTorch's init copied into minigrad) and the same data.
"""
import numpy as np

N, IN, HIDDEN, CLASSES = 2000, 784, 32, 10
LR = 0.01


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((N, IN), dtype=np.float32)  # pixel-like values in [0, 1)
    labels = rng.integers(0, CLASSES, size=N)
    return x, labels


def _pair(out_features):
    """The same MLP in PyTorch and minigrad, with identical weights."""
    import torch

    import minigrad as mg
    from minigrad import nn

    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, out_features))
    mmodel = nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, out_features))
    mmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    return tmodel, mmodel, torch, mg


def _steps(out_features, torch_loss, mg_loss, target_np):
    from _steps import training_steps

    tmodel, mmodel, torch, mg = _pair(out_features)
    x_np, _ = _data()
    return training_steps(mmodel, tmodel, mg.tensor(x_np), torch.from_numpy(x_np), target_np,
                          torch.from_numpy(target_np), mg_loss, torch_loss, LR, torch, mg)


def cases(threads):
    """(name, minigrad_step, torch_step) for the autoencoder and the classifier."""
    import torch.nn.functional as F

    from minigrad.nn import functional as MF

    x_np, labels = _data()
    yield ("mlp-autoencoder", *_steps(IN, F.mse_loss, MF.mse_loss, x_np))
    yield ("mlp-classifier", *_steps(CLASSES, F.cross_entropy, MF.cross_entropy, labels))
