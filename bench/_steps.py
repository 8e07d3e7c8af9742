"""One full SGD training step on either library, from weights both sides draw alike.

A case module builds ONE side at a time (a minigrad process never imports torch), so the two
sides cannot copy weights from each other: each draws them from NumPy generators seeded by the
parameter's name (:func:`seeded_weights`), which gives identical arrays on both sides.
"""
import zlib

import numpy as np


def seeded_weights(initial, seed=0):
    """{name: float32 array} of the same names and shapes as ``initial`` ({name: NumPy array}).

    An entry of several values the library initialises to one constant (a LayerNorm's ones, zero
    biases) keeps it; every other entry is drawn uniformly from +-1/sqrt(fan_in) (PyTorch's default
    bound) by a generator seeded by ``seed`` and the name, so the order of entries does not matter.
    """
    weights = {}
    for name, value in initial.items():
        value = np.asarray(value)
        if value.size > 1 and np.all(value == value.flat[0]):
            weights[name] = value.astype(np.float32)
            continue
        fan_in = int(np.prod(value.shape[1:])) if value.ndim > 1 else value.shape[0]
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        bound = 1 / np.sqrt(max(fan_in, 1))
        weights[name] = rng.uniform(-bound, bound, value.shape).astype(np.float32)
    return weights


def sgd_step(model, optimizer, loss_fn, x, target):
    """zero_grad, forward, loss, backward, SGD update; returns the loss (both libraries share this API)."""
    def step():
        optimizer.zero_grad()
        loss = loss_fn(model(x), target)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def minigrad_step(model, loss_fn, x, target, lr):
    """A minigrad model's training step on NumPy input ``x``, its weights from :func:`seeded_weights`."""
    import minigrad as mg

    model.load_state_dict(seeded_weights(model.state_dict()))
    return sgd_step(model, mg.optim.SGD(model.parameters(), lr=lr), loss_fn, mg.tensor(x), target)


def torch_step(model, loss_fn, x, target, lr):
    """A PyTorch model's training step on NumPy input ``x``, its weights from :func:`seeded_weights`."""
    import torch

    state = seeded_weights({k: v.detach().numpy() for k, v in model.state_dict().items()})
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return sgd_step(model, torch.optim.SGD(model.parameters(), lr=lr), loss_fn, torch.from_numpy(x), target)
