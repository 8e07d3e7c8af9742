"""Optimizers with PyTorch's update rules: SGD (momentum, weight decay, Nesterov) and Adam."""
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
