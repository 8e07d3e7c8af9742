"""Recurrent models over sequences (N, T, features): Elman RNN and LSTM, classifiers and
sequence auto-encoders.

classify: a stack of recurrent layers (``encoder``) read out at the last time step by ``head``.
autoencode: the ``encoder`` stack, a ``decoder`` stack mirroring it (hidden[-2], ..., hidden[0]),
and a per-time-step linear ``readout`` back to the input features.
Each recurrent layer is its own module, so names read e.g. ``encoder.0.weight_hh_l0``.
"""
import math

from minigrad import nn
from minigrad.nn import init
from minigrad.ops.linear import linear
from minigrad.ops.shape import stack
from minigrad.tensor import Parameter, get_default_dtype, zeros

from .options import check_activation, check_classes, check_hidden, check_positive, check_task, make_activation


def _recurrent_layers():
    from minigrad.nn import recurrent

    return recurrent


class UnrolledRNN(nn.Module):
    """One Elman layer h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh) unrolled with linear ops,
    for activations the fused ``nn.RNN`` lacks (sigmoid, gelu). Same parameter names and init
    as ``nn.RNN``; returns (output (N, T, H), h_n (1, N, H)) like it.

    Factors, numbered like the fused ``nn.RNN``'s (tied position p = time step t for every
    activation): weight_ih gets A_t = x_t and weight_hh gets A_t = h_{t-1}, t = 0..T-1, with
    h_{-1} = 0 (the initial state: its position holds zeros and adds nothing to the gradient).
    """

    def __init__(self, input_size, hidden_size, nonlinearity="sigmoid"):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.nonlinearity = check_activation(nonlinearity)
        self.act = nn.activation(self.nonlinearity)
        bound = 1 / math.sqrt(hidden_size)
        dtype = get_default_dtype()
        for name, shape in (("weight_ih_l0", (hidden_size, input_size)), ("weight_hh_l0", (hidden_size, hidden_size)),
                            ("bias_ih_l0", (hidden_size,)), ("bias_hh_l0", (hidden_size,))):
            setattr(self, name, Parameter(init.uniform(shape, bound), dtype=dtype))

    def forward(self, x):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"UnrolledRNN expects input (N, T, {self.input_size}), got shape {x.shape}")
        drive = linear(x, self.weight_ih_l0, self.bias_ih_l0)  # (N, T, H): all time steps in one product
        h = zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)  # h_{-1}
        outputs = []
        for t in range(x.shape[1]):
            h = self.act(drive[:, t] + linear(h, self.weight_hh_l0, self.bias_hh_l0))
            outputs.append(h)
        return stack(outputs, axis=1), h.unsqueeze(0)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"


class _RecurrentModel(nn.Module):
    def __init__(self, input_size, hidden=(32,), n_classes=None, activation="relu", task="classify"):
        super().__init__()
        self.input_size = check_positive("input_size", input_size)
        self.hidden = check_hidden(hidden)
        self.task = check_task(task)
        self.n_classes = check_classes(self.task, n_classes)
        self.activation = check_activation(activation)
        self.encoder = nn.ModuleList(self._stack(input_size, self.hidden))
        if self.task == "classify":
            self.head = nn.Linear(self.hidden[-1], self.n_classes)
        else:
            mirrored = tuple(reversed(self.hidden[:-1]))
            self.decoder = nn.ModuleList(self._stack(self.hidden[-1], mirrored))
            self.readout = nn.Linear(self.hidden[0], input_size)

    def _stack(self, prev, sizes):
        layers = []
        for size in sizes:
            layers.append(self._layer(prev, size))
            prev = size
        return layers

    def _run(self, layers, x):
        for layer in layers:
            x, _ = layer(x)
            x = self._after_layer(x)
        return x

    def forward(self, x):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects input (N, T, {self.input_size}), got shape {x.shape}")
        z = self._run(self.encoder, x)
        if self.task == "classify":
            return self.head(z[:, -1])
        return self.readout(self._run(self.decoder, z))

    def extra_repr(self):
        return f"task={self.task!r}, hidden={self.hidden}, activation={self.activation!r}"


class ElmanRNN(_RecurrentModel):
    """Elman RNN layers whose nonlinearity is ``activation`` (tanh/relu: the fused ``nn.RNN``;
    sigmoid/gelu: :class:`UnrolledRNN`)."""

    def _layer(self, prev, size):
        if self.activation in _fused_nonlinearities():
            return _recurrent_layers().RNN(prev, size, nonlinearity=self.activation, batch_first=True)
        return UnrolledRNN(prev, size, self.activation)

    def _after_layer(self, x):
        return x  # the cell already applied the activation


class LSTM(_RecurrentModel):
    """LSTM layers (their gates use sigmoid/tanh as always); ``activation`` is applied to each
    layer's output sequence, i.e. between stacked layers and before the head/readout."""

    def __init__(self, input_size, hidden=(32,), n_classes=None, activation="relu", task="classify"):
        super().__init__(input_size, hidden, n_classes, activation, task)
        self.act = make_activation(self.activation)

    def _layer(self, prev, size):
        return _recurrent_layers().LSTM(prev, size, batch_first=True)

    def _after_layer(self, x):
        return self.act(x)


def _fused_nonlinearities():
    from minigrad.ops import recurrent as ops

    return ops.NONLINEARITIES
