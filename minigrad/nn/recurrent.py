"""Recurrent layers: Elman RNN (tanh or relu) and LSTM, PyTorch's names, shapes and results.

Each layer of a stack is one fused op (minigrad/ops/recurrent.py) with
hand-written backpropagation through time, handing out per-time-step factors:
weight_ih: A_t = x_t, weight_hh: A_t = h_{t-1}, D_t = adjoint of the
pre-activation at step t (4H wide for the LSTM, gate order i, f, g, o).
"""
import math
import numbers

from . import init
from .module import Module, new_parameter
from ..ops import recurrent as R
from ..ops.shape import reshape, stack
from ..tensor import Tensor, as_tensor


class _RecurrentBase(Module):
    """Parameters and input handling shared by RNN and LSTM."""

    _gates = 1
    _name = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=True, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, generator=None):
        super().__init__()
        for label, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{self._name}: {label} must be a positive integer, got {value!r}")
        if bidirectional:
            raise NotImplementedError(f"{self._name}: bidirectional layers are not supported; run a second "
                                      f"{self._name} on the time-reversed input and concatenate the outputs")
        if dropout:
            raise NotImplementedError(f"{self._name}: dropout between layers is not supported (got dropout={dropout})")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        width = self._gates * hidden_size
        bound = 1 / math.sqrt(hidden_size)  # PyTorch: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            shapes = [(f"weight_ih_l{k}", (width, fan_in)), (f"weight_hh_l{k}", (width, hidden_size))]
            if bias:
                shapes += [(f"bias_ih_l{k}", (width,)), (f"bias_hh_l{k}", (width,))]
            for name, shape in shapes:
                setattr(self, name, new_parameter(init.uniform(shape, bound, generator), dtype, device))

    def _layer_parameters(self, k):
        return (getattr(self, f"weight_ih_l{k}"), getattr(self, f"weight_hh_l{k}"),
                getattr(self, f"bias_ih_l{k}", None), getattr(self, f"bias_hh_l{k}", None))

    def _prepare_input(self, x):
        """(x as a 3-D tensor, batch_first flag for the ops, batch size, unbatched?)."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{self._name} expects a minigrad Tensor input, got {type(x).__name__}")
        layout = "(N, T, input_size)" if self.batch_first else "(T, N, input_size)"
        if x.ndim not in (2, 3):
            raise ValueError(f"{self._name} expects input of shape {layout} or unbatched (T, input_size), "
                             f"got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{self._name} expects input_size={self.input_size} features on the last axis "
                             f"of {layout}, got shape {x.shape}")
        if x.dtype.kind != "f":
            raise TypeError(f"{self._name} expects a float input, got dtype {x.dtype}")
        if x.ndim == 2:  # unbatched (T, input_size), as in PyTorch
            return reshape(x, (1,) + x.shape), True, 1, True
        return x, self.batch_first, x.shape[0 if self.batch_first else 1], False

    def _prepare_state(self, state, label, n, unbatched, like):
        """An initial state (num_layers, N, H) (or (num_layers, H) unbatched) as per-layer (N, H) tensors."""
        if state is None:
            return [None] * self.num_layers
        if not isinstance(state, Tensor):
            state = as_tensor(state, like=like)
        expected = (self.num_layers, self.hidden_size) if unbatched else (self.num_layers, n, self.hidden_size)
        if state.shape != expected:
            names = "(num_layers, H)" if unbatched else "(num_layers, N, H)"
            raise ValueError(f"{self._name}: initial state {label} must have shape {names} = {expected}, "
                             f"got {state.shape}")
        if unbatched:
            state = reshape(state, (self.num_layers, 1, self.hidden_size))
        if self.num_layers == 1:
            return [reshape(state, (n, self.hidden_size))]
        return [state[k] for k in range(self.num_layers)]

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        return s + f", batch_first={self.batch_first}"


def _stack_states(states):
    """Per-layer (N, H) final states as one (num_layers, N, H) tensor."""
    if len(states) == 1:
        return reshape(states[0], (1,) + states[0].shape)
    return stack(states, axis=0)


class RNN(_RecurrentBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    ``forward(x, hx=None)`` returns ``(output, h_n)`` like PyTorch: output
    (N, T, H) (batch_first) or (T, N, H), h_n (num_layers, N, H); hx, the initial
    state, has h_n's shape and receives gradients.
    """

    _gates = 1
    _name = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=True,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, generator=None):
        if nonlinearity not in R.NONLINEARITIES:
            raise ValueError(f"RNN: nonlinearity must be one of {R.NONLINEARITIES}, got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype, generator)
        self.nonlinearity = nonlinearity

    def forward(self, x, hx=None):
        x, batch_first, n, unbatched = self._prepare_input(x)
        h0s = self._prepare_state(hx, "hx", n, unbatched, x)
        out, h_n = x, []
        for k in range(self.num_layers):
            out, h = R.rnn(out, h0s[k], *self._layer_parameters(k), nonlinearity=self.nonlinearity,
                           batch_first=batch_first)
            h_n.append(h)
        h_n = _stack_states(h_n)
        if unbatched:
            return _unbatch_output(out), reshape(h_n, (self.num_layers, self.hidden_size))
        return out, h_n

    def extra_repr(self):
        s = super().extra_repr()
        return s if self.nonlinearity == "tanh" else s + f", nonlinearity={self.nonlinearity!r}"


class LSTM(_RecurrentBase):
    """LSTM with PyTorch's equations and gate order (i, f, g, o).

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=True)``;
    dropout and bidirectional are not supported (clear error).

    ``forward(x, hx=None)`` returns ``(output, (h_n, c_n))`` like PyTorch; hx is
    None or a pair (h_0, c_0), each (num_layers, N, H), and receives gradients.
    """

    _gates = 4
    _name = "LSTM"

    def forward(self, x, hx=None):
        x, batch_first, n, unbatched = self._prepare_input(x)
        if hx is None:
            h0s = c0s = [None] * self.num_layers
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: the initial state must be a pair (h_0, c_0), got {type(hx).__name__}"
                                + (f" of length {len(hx)}" if isinstance(hx, (tuple, list)) else ""))
            h0s = self._prepare_state(hx[0], "h_0", n, unbatched, x)
            c0s = self._prepare_state(hx[1], "c_0", n, unbatched, x)
        out, h_n, c_n = x, [], []
        for k in range(self.num_layers):
            out, h, c = R.lstm(out, h0s[k], c0s[k], *self._layer_parameters(k), batch_first=batch_first)
            h_n.append(h)
            c_n.append(c)
        h_n, c_n = _stack_states(h_n), _stack_states(c_n)
        if unbatched:
            shape = (self.num_layers, self.hidden_size)
            return _unbatch_output(out), (reshape(h_n, shape), reshape(c_n, shape))
        return out, (h_n, c_n)


def _unbatch_output(out):
    """(1, T, H) -> (T, H) for unbatched inputs."""
    return reshape(out, out.shape[1:])


__all__ = ["RNN", "LSTM"]
