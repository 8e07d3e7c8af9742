"""Optimizers with PyTorch's update rules: SGD (momentum, weight decay, Nesterov) and Adam."""
import numpy as np

from .backend import get_array_module, to_numpy
from .tensor import Tensor


def _non_negative(name, value):
    value = float(value)  # a Python float: NumPy float64 scalars would turn float32 weights into float64
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters and per-parameter state; subclasses define ``_update``."""

    def __init__(self, params, lr):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        bad = [type(p).__name__ for p in self.params if not isinstance(p, Tensor)]
        if bad:
            raise TypeError(f"optimizer parameters must be Tensors (e.g. model.parameters()), got {bad[0]}")
        self.lr = _non_negative("learning rate", lr)
        self.state = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        """Update every parameter that has a gradient."""
        for i, p in enumerate(self.params):
            if p.grad is not None:
                p.data = self._update(i, p.data, p.grad)

    def _update(self, i, w, g):
        raise NotImplementedError

    #: names of the arrays each parameter's state holds (a subclass's ``state[i]`` is one array
    #: or a tuple of them, in this order)
    state_names = ()
    #: names of the scalar counters saved with the state
    scalar_names = ()

    def state_dict(self):
        """Everything needed to continue training exactly: {"lr": ..., <counters>, "state":
        {parameter index: {name: host NumPy copy}}}; plain numbers and arrays only (no pickling)."""
        state = {}
        for i, value in self.state.items():
            values = value if isinstance(value, tuple) else (value,)
            state[i] = {name: np.array(to_numpy(v)) for name, v in zip(self.state_names, values)}
        return {"lr": self.lr, **{name: getattr(self, name) for name in self.scalar_names}, "state": state}

    def load_state_dict(self, saved):
        """Continue from ``state_dict()``'s output (arrays go to each parameter's device); every
        index, name and shape is checked before anything changes."""
        state = {}
        for i, arrays in saved["state"].items():
            i = int(i)
            if not 0 <= i < len(self.params):
                raise ValueError(f"optimizer state names parameter {i}, but there are {len(self.params)}")
            p = self.params[i]
            if sorted(arrays) != sorted(self.state_names):
                raise KeyError(f"optimizer state of parameter {i} holds {sorted(arrays)}, expected "
                               f"{list(self.state_names)}")
            xp = get_array_module(p.data)
            values = []
            for name in self.state_names:
                arr = np.asarray(arrays[name])
                if arr.shape != tuple(p.shape):
                    raise ValueError(f"optimizer state {name!r} of parameter {i} has shape {arr.shape}, "
                                     f"the parameter {tuple(p.shape)}")
                values.append(xp.asarray(arr))
            state[i] = values[0] if len(values) == 1 else tuple(values)
        self.lr = _non_negative("learning rate", saved.get("lr", self.lr))
        for name in self.scalar_names:
            setattr(self, name, type(getattr(self, name))(saved[name]))
        self.state = state


class SGD(Optimizer):
    """w -= lr * v with v = momentum * v + (g + weight_decay * w) (PyTorch's SGD, dampening 0);
    Nesterov: w -= lr * (g + momentum * v)."""

    def __init__(self, params, lr=1e-2, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum = _non_negative("momentum", momentum)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov momentum needs momentum > 0")
        self.nesterov = bool(nesterov)

    state_names = ("momentum_buffer",)

    def _update(self, i, w, g):
        if self.weight_decay:
            g = g + self.weight_decay * w
        if self.momentum:
            v = self.state.get(i)
            v = g.copy() if v is None else self.momentum * v + g
            self.state[i] = v
            g = g + self.momentum * v if self.nesterov else v
        return w - self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias correction and L2 weight decay."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        b1, b2 = (float(b) for b in betas)
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"Adam betas must lie in [0, 1), got {betas}")
        self.betas = (b1, b2)
        self.eps = _non_negative("eps", eps)
        self.weight_decay = _non_negative("weight_decay", weight_decay)
        self.t = 0

    state_names = ("exp_avg", "exp_avg_sq")
    scalar_names = ("t",)

    def step(self):
        self.t += 1
        super().step()

    def _update(self, i, w, g):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * w
        m, v = self.state.get(i, (0.0, 0.0))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g * g)
        self.state[i] = (m, v)
        # PyTorch: w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        denom = v ** 0.5 / (1 - b2 ** self.t) ** 0.5 + self.eps
        return w - (self.lr / (1 - b1 ** self.t)) * (m / denom)
