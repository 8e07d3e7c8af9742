"""Recurrent layers as one op each: Elman RNN (tanh or relu) and LSTM (PyTorch's equations).

Forward loops over the T time steps; backward is backpropagation through time written
by hand inside one closure, so a sequence of T = 1000 steps costs one graph node and no
recursion. The cells (``rnn_forward_steps`` / ``rnn_backward_steps``, ``lstm_forward_steps`` /
``lstm_backward_steps``) are the maths step by step, forward and backward side by side, with
b = b_ih + b_hh; ``minigrad/kernels/recurrent.py`` holds their fast versions (each step a
(features, N) block, the input products and the sums below made over all steps at once, split
over threads, one tanh for all four LSTM gates).

The backward cells end with the sums over all steps (``sums_over_steps``; time-major (T, N, features)):
    weight gradients grad W_ih = sum_t D_t^T x_t,   grad W_hh = sum_t D_t^T h_{t-1}
    bias gradient    grad b = sum_t sum_n D_t  (for b_ih and b_hh alike)
and the op adds the input gradient dx_t = D_t W_ih
with D_t = dLoss/d(pre-activation at step t), (N, H) for the RNN and (N, 4H) for the
LSTM in PyTorch's gate order i, f, g, o.

Factors (paper eq. 1, tied over the time axis P = T):
    weight_ih: A_t = x_t (N, T, input_size),   weight_hh: A_t = h_{t-1} (N, T, H),
    D as above, (N, T, H) or (N, T, 4H); h_{-1} is the initial state.
"""
from .. import autograd
from ..backend import get_array_module
from ..factors import hand_out_factors
from ..kernels import recurrent as fast_cells
from ..kernels.dispatch import kernel
from ..tensor import Tensor
from ._util import result

NONLINEARITIES = ("tanh", "relu")


# ---------------------------------------------------------------------------------- the cells
@kernel
def rnn_forward_steps(xs, w_ih, bias, w_hh, h0, nonlinearity):
    """Elman recurrence h_t = act(x_t W_ih^T + b + h_{t-1} W_hh^T) over xs (T, N, I) from h0 (N, H);
    ``bias`` (H,) or None.

    Returns hs (T + 1, N, H): hs[0] = h0 and hs[t + 1] = h_t.
    """
    xp = get_array_module(xs)
    act = xp.tanh if nonlinearity == "tanh" else (lambda z: xp.maximum(z, 0))
    hs = xp.empty((len(xs) + 1,) + h0.shape, dtype=xs.dtype)
    hs[0] = h0
    for t in range(len(xs)):
        z = xs[t] @ w_ih.T + hs[t] @ w_hh.T
        hs[t + 1] = act(z if bias is None else z + bias)
    return hs


@kernel
def rnn_backward_steps(hs, xs, w_hh, g_out, g_hn, nonlinearity):
    """Backpropagation through ``rnn_forward_steps``: D_t = dLoss/dz_t for t = T-1, ..., 0.

    ``g_out`` (T, N, H): adjoints of every h_t (or None); ``g_hn`` (N, H): of the last (or None).
    Returns (D (T, N, H), adjoint of h0, ``sums_over_steps(D, xs, hs[:-1])``).
    """
    xp = get_array_module(hs)
    h = hs[1:]
    act_grad = 1 - h * h if nonlinearity == "tanh" else (h > 0).astype(h.dtype)  # d h_t / d z_t
    D = xp.empty_like(h)
    dh = xp.zeros_like(hs[0]) if g_hn is None else g_hn
    for t in reversed(range(len(h))):
        if g_out is not None:
            dh = dh + g_out[t]                              # h_t feeds the output and step t + 1
        D[t] = dh * act_grad[t]
        dh = D[t] @ w_hh                                    # adjoint of h_{t-1}
    return D, dh, sums_over_steps(D, xs, hs[:-1])


@kernel
def lstm_forward_steps(xs, w_ih, bias, w_hh, h0, c0):
    """LSTM recurrence over xs (T, N, I) from h0, c0 (N, H), gate order i, f, g, o; ``bias`` (4H,) or None:

        z_t = x_t W_ih^T + b + h_{t-1} W_hh^T
        i, f, g, o = sigma, sigma, tanh, sigma of z_t's four blocks of H
        c_t = f * c_{t-1} + i * g,     h_t = o * tanh(c_t)

    Returns gates (T, N, 4H) (i, f, g, o side by side), hs and cs (T + 1, N, H) with
    hs[0] = h0, hs[t + 1] = h_t, and likewise for c.
    """
    xp = get_array_module(xs)
    H = w_hh.shape[1]

    def sigmoid(z):
        return (1 + xp.tanh(z / 2)) / 2                     # = 1 / (1 + exp(-z)), never overflows

    gates = xp.empty((len(xs),) + h0.shape[:1] + (4 * H,), dtype=xs.dtype)
    hs = xp.empty((len(xs) + 1,) + h0.shape, dtype=xs.dtype)
    cs = xp.empty_like(hs)
    hs[0], cs[0] = h0, c0
    for t in range(len(xs)):
        z = xs[t] @ w_ih.T + hs[t] @ w_hh.T
        if bias is not None:
            z = z + bias
        i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), xp.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        cs[t + 1] = f * cs[t] + i * g
        hs[t + 1] = o * xp.tanh(cs[t + 1])
        gates[t] = xp.concatenate([i, f, g, o], axis=1)
    return gates, hs, cs


@kernel
def lstm_backward_steps(gates, hs, cs, xs, w_hh, g_out, g_hn, g_cn):
    """Backpropagation through ``lstm_forward_steps``: D_t = dLoss/dz_t (N, 4H) for t = T-1, ..., 0.

    ``g_out`` (T, N, H) or None, ``g_hn`` and ``g_cn`` (N, H) or None: adjoints of the outputs.
    Returns (D (T, N, 4H), adjoint of h0, adjoint of c0, ``sums_over_steps(D, xs, hs[:-1])``).
    """
    xp = get_array_module(gates)
    H = hs.shape[2]
    D = xp.empty_like(gates)
    dh = xp.zeros_like(hs[0]) if g_hn is None else g_hn
    dc = xp.zeros_like(cs[0]) if g_cn is None else g_cn
    for t in reversed(range(len(gates))):
        i, f, g, o = (gates[t, :, k * H:(k + 1) * H] for k in range(4))
        if g_out is not None:
            dh = dh + g_out[t]
        tanh_c = xp.tanh(cs[t + 1])
        dc = dc + dh * o * (1 - tanh_c * tanh_c)            # c_t feeds h_t and c_{t+1}
        D[t] = xp.concatenate([dc * g * i * (1 - i),          # d/d z_i   (sigma' = sigma (1 - sigma))
                               dc * cs[t] * f * (1 - f),      # d/d z_f
                               dc * i * (1 - g * g),          # d/d z_g   (tanh' = 1 - tanh^2)
                               dh * tanh_c * o * (1 - o)],    # d/d z_o
                              axis=1)
        dc = dc * f                                          # adjoint of c_{t-1}
        dh = D[t] @ w_hh                                     # adjoint of h_{t-1}
    return D, dh, dc, sums_over_steps(D, xs, hs[:-1])


def sums_over_steps(D, xs, h_prev):
    """The weight and bias gradients, sums over every step of the step adjoints D (T, N, G):

        grad W_ih = sum_t D_t^T x_t,   grad W_hh = sum_t D_t^T h_{t-1},   grad b = sum_t sum_n D_t

    with ``xs`` (T, N, I) and ``h_prev`` (T, N, H) what W_ih and W_hh multiplied; each sum is
    one product over all steps at once.
    """
    T, N, width = D.shape
    D2 = D.reshape(T * N, width)
    return D2.T @ xs.reshape(T * N, -1), D2.T @ h_prev.reshape(T * N, -1), D2.sum(0)


rnn_forward_steps.fast(fast_cells.rnn_forward_steps)
rnn_backward_steps.fast(fast_cells.rnn_backward_steps)
lstm_forward_steps.fast(fast_cells.lstm_forward_steps)
lstm_backward_steps.fast(fast_cells.lstm_backward_steps)


# ------------------------------------------------------------------------------------ the ops
def rnn(x, h0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, nonlinearity="tanh", batch_first=True):
    """One Elman RNN layer: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh).

    ``x``: (N, T, input_size) if ``batch_first`` else (T, N, input_size);
    ``h0``: (N, H) or None (zeros). Returns ``(output, h_n)``: output (N, T, H)
    (or (T, N, H)) holds h_t for every step, h_n (N, H) the last one.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    hidden = _check_layer(x, weight_ih, weight_hh, bias_ih, bias_hh, gates=1, batch_first=batch_first)
    _check_state(h0, "h0", x, hidden, batch_first)
    xs = _time_major(x.data, batch_first)
    w_hh = weight_hh.data
    hs = rnn_forward_steps(xs, weight_ih.data, _bias(bias_ih, bias_hh), w_hh, _initial_state(h0, xs, hidden),
                           nonlinearity)

    def backward(adjoints):
        g_out, g_hn = adjoints
        D, dh0, sums = rnn_backward_steps(hs, xs, w_hh, _time_major_view(g_out, batch_first), g_hn, nonlinearity)
        return _gradients(D, sums, xs, hs[:-1], dh0, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, batch_first)

    output = _time_major_view(hs[1:], batch_first)
    return _multi_result((output, hs[-1]), (x, h0, weight_ih, weight_hh, bias_ih, bias_hh), backward)


def lstm(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, batch_first=True):
    """One LSTM layer with PyTorch's equations and gate order (i, f, g, o) (see ``lstm_forward_steps``).

    ``x``: (N, T, input_size) if ``batch_first`` else (T, N, input_size);
    ``h0``, ``c0``: (N, H) or None (zeros). Returns ``(output, h_n, c_n)``.
    """
    hidden = _check_layer(x, weight_ih, weight_hh, bias_ih, bias_hh, gates=4, batch_first=batch_first)
    _check_state(h0, "h0", x, hidden, batch_first)
    _check_state(c0, "c0", x, hidden, batch_first)
    xs = _time_major(x.data, batch_first)
    w_hh = weight_hh.data
    gates, hs, cs = lstm_forward_steps(xs, weight_ih.data, _bias(bias_ih, bias_hh), w_hh,
                                       _initial_state(h0, xs, hidden), _initial_state(c0, xs, hidden))

    def backward(adjoints):
        g_out, g_hn, g_cn = adjoints
        D, dh0, dc0, sums = lstm_backward_steps(gates, hs, cs, xs, w_hh, _time_major_view(g_out, batch_first),
                                                g_hn, g_cn)
        grads = _gradients(D, sums, xs, hs[:-1], dh0, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, batch_first)
        return grads + (_needed(dc0, c0),)

    output = _time_major_view(hs[1:], batch_first)
    return _multi_result((output, hs[-1], cs[-1]), (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, c0), backward)


# ------------------------------------------------------------------------------ shared pieces
def _bias(bias_ih, bias_hh):
    """b = b_ih + b_hh, the one bias the recurrence adds (None without biases)."""
    biases = [b.data for b in (bias_ih, bias_hh) if b is not None]
    return biases[0] + biases[1] if len(biases) == 2 else (biases[0] if biases else None)


def _gradients(D, sums, xs, h_prev, dh0, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, batch_first):
    """Adjoints of x, h0, weight_ih, weight_hh, bias_ih, bias_hh from the step adjoints D (T, N, G)
    and their ``sums_over_steps``; hands out the weights' factors.

    ``xs`` (T, N, I) and ``h_prev`` (T, N, H) are what W_ih and W_hh multiplied, ``dh0``
    the adjoint of the initial state.
    """
    T, N, width = D.shape
    g_w_ih, g_w_hh, g_b = sums
    if weight_ih.requires_grad:
        hand_out_factors(weight_ih, xs.transpose(1, 0, 2), D.transpose(1, 0, 2))
    if weight_hh.requires_grad:
        hand_out_factors(weight_hh, h_prev.transpose(1, 0, 2), D.transpose(1, 0, 2))
    g_x = None
    if x.requires_grad:
        g_x = _time_major_view((D.reshape(T * N, width) @ weight_ih.data).reshape(T, N, -1), batch_first)

    return (g_x, _needed(dh0, h0), _needed(g_w_ih, weight_ih), _needed(g_w_hh, weight_hh),
            _needed(g_b, bias_ih), _needed(g_b, bias_hh))


def _needed(grad, tensor):
    """``grad`` where ``tensor`` is present and requires one, else None."""
    return grad if tensor is not None and tensor.requires_grad else None


def _multi_result(arrays, inputs, backward):
    """Several output tensors of one op whose ``backward(adjoints)`` runs once.

    ``inputs``: the op's operands, None for absent ones (no initial state, no bias);
    ``backward`` gets one adjoint per output (None for outputs the loss does not
    depend on) and returns one adjoint (or None) per entry of ``inputs``.

    Each output is a child of one hidden node that carries the op's backward. The
    graph walk reaches every output before that node (their only parent), so the
    outputs' adjoints are gathered by then.
    """
    present = tuple(k for k, t in enumerate(inputs) if t is not None)
    parents = tuple(inputs[k] for k in present)
    if not (autograd.is_grad_enabled() and any(p.requires_grad for p in parents)):
        return tuple(Tensor.wrap(a) for a in arrays)
    zero = parents[0].xp.zeros((), dtype=arrays[0].dtype)
    gathered = [None] * len(arrays)

    def hub_backward(_):
        adjoints = list(gathered)
        gathered[:] = [None] * len(arrays)
        grads = backward(adjoints)
        return tuple(grads[k] for k in present)

    hub = result(zero, parents, hub_backward)

    def gather(k):
        def output_backward(g):
            gathered[k] = g if gathered[k] is None else gathered[k] + g
            return (zero,)
        return output_backward

    return tuple(result(a, (hub,), gather(k)) for k, a in enumerate(arrays))


def _initial_state(state, xs, hidden):
    """The (N, H) array of an initial state, zeros when it is None."""
    xp = get_array_module(xs)
    return xp.zeros((xs.shape[1], hidden), dtype=xs.dtype) if state is None else state.data


def _time_major(arr, batch_first):
    """(T, N, F) contiguous array from an input laid out (N, T, F) or (T, N, F)."""
    xp = get_array_module(arr)
    return xp.ascontiguousarray(arr.transpose(1, 0, 2) if batch_first else arr)


def _time_major_view(arr, batch_first):
    """(N, T, F) <-> (T, N, F) when ``batch_first``, else ``arr`` itself (a view, no copy; None stays
    None): the same swap turns a batch-first array time-major and a time-major one batch-first."""
    return arr.transpose(1, 0, 2) if batch_first and arr is not None else arr


def _check_layer(x, weight_ih, weight_hh, bias_ih, bias_hh, gates, batch_first):
    """Validate shapes, dtypes and devices of one layer's operands; returns the hidden size."""
    name = "LSTM" if gates == 4 else "RNN"
    for label, t in (("input", x), ("weight_ih", weight_ih), ("weight_hh", weight_hh)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} layer: {label} must be a minigrad Tensor, got {type(t).__name__}")
    if weight_hh.ndim != 2 or weight_hh.shape[0] % gates or weight_hh.shape[0] != gates * weight_hh.shape[1]:
        raise ValueError(f"{name} layer: weight_hh must have shape ({gates} * H, H), got {weight_hh.shape}")
    hidden = weight_hh.shape[1]
    if weight_ih.ndim != 2 or weight_ih.shape[0] != gates * hidden:
        raise ValueError(f"{name} layer: weight_ih must have shape ({gates * hidden}, input_size), got {weight_ih.shape}")
    layout = "(N, T, input_size)" if batch_first else "(T, N, input_size)"
    if x.ndim != 3:
        raise ValueError(f"{name} layer expects a 3-D input {layout}, got shape {x.shape}")
    if x.shape[2] != weight_ih.shape[1]:
        raise ValueError(f"{name} layer expects input features {weight_ih.shape[1]} (last axis of {layout}), "
                         f"got shape {x.shape}")
    if x.shape[1 if batch_first else 0] < 1:
        raise ValueError(f"{name} layer needs a sequence of at least one step, got input shape {x.shape}")
    for label, b in (("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if b is not None and b.shape != (gates * hidden,):
            raise ValueError(f"{name} layer: {label} must have shape ({gates * hidden},), got {b.shape}")
    dtype = weight_ih.dtype
    if dtype.kind != "f":
        raise TypeError(f"{name} layer: weights must be float, got {dtype}")
    for label, t in (("input", x), ("weight_hh", weight_hh), ("bias_ih", bias_ih), ("bias_hh", bias_hh)):
        if t is None:
            continue
        if t.dtype != dtype:
            raise TypeError(f"{name} layer: {label} has dtype {t.dtype} but weight_ih has {dtype}; "
                            f"cast them to one dtype (e.g. x.to(dtype=...) or module.double())")
        if t.device != weight_ih.device:
            raise ValueError(f"{name} layer: {label} is on {t.device} but weight_ih is on {weight_ih.device}; "
                             f"move them to one device with .to()")
    return hidden


def _check_state(state, label, x, hidden, batch_first):
    if state is None:
        return
    if not isinstance(state, Tensor):
        raise TypeError(f"initial state {label} must be a minigrad Tensor or None, got {type(state).__name__}")
    n = x.shape[0 if batch_first else 1]
    if state.shape != (n, hidden):
        raise ValueError(f"initial state {label} must have shape (N, H) = ({n}, {hidden}), got {state.shape}")
    if state.dtype != x.dtype:
        raise TypeError(f"initial state {label} has dtype {state.dtype} but the input has {x.dtype}")
    if state.device != x.device:
        raise ValueError(f"initial state {label} is on {state.device} but the input is on {x.device}")


__all__ = ["rnn", "lstm", "NONLINEARITIES"]
