"""Fused recurrent layers: Elman RNN (tanh or relu) and LSTM, one op per layer.

Forward loops over time steps on arrays; backward is hand-written
backpropagation through time inside one closure (no graph node per step), so a
sequence of T = 1000 steps costs one node and no recursion.

Cost layout: x W_ih^T for all steps is one GEMM before the loop, each step does
only the h_{t-1} W_hh^T GEMM, and backward stacks the per-step adjoints D_t so
that grad W_hh, grad W_ih and grad x are one GEMM each after the loop.

Factors (paper eq. 1, tied over the time axis P = T):
    weight_ih: A_t = x_t        (N, T, input_size)
    weight_hh: A_t = h_{t-1}    (N, T, H), h_{-1} the initial state
    D_t = dLoss/d(pre-activation at step t), (N, T, H) for the RNN and
          (N, T, 4H) for the LSTM in PyTorch's gate order i, f, g, o,
so that einsum("npo,npi->oi", D, A) is each weight's gradient and D[:, t], A[:, t]
give step t's share.

Both ops work on time-major arrays (T, N, features) inside; ``batch_first``
only says how the input is laid out and the outputs are returned (as views).
"""
from .. import autograd
from ..backend import get_array_module
from ..tensor import Tensor
from ._util import result
from .linear import hand_out_factors

NONLINEARITIES = ("tanh", "relu")


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
    xp = x.xp
    xs = _time_major(x.data, batch_first)                    # (T, N, I), contiguous
    T, N, _ = xs.shape
    w_ih, w_hh = weight_ih.data, weight_hh.data
    dtype = w_ih.dtype
    relu = nonlinearity == "relu"

    # pre-activations of the input side for all steps at once: one GEMM
    xw = (xs.reshape(T * N, -1) @ w_ih.T).reshape(T, N, hidden)
    bias = _summed_bias(bias_ih, bias_hh)
    if bias is not None:
        xw += bias
    # hs[0] = h_{-1}, hs[t + 1] = h_t: outputs and the A factor of W_hh are both views of it
    hs = xp.empty((T + 1, N, hidden), dtype=dtype)
    hs[0] = 0 if h0 is None else h0.data
    w_hh_t = xp.ascontiguousarray(w_hh.T)                   # BLAS is faster on it than on a view
    z = xp.empty((N, hidden), dtype=dtype)
    for t in range(T):
        xp.matmul(hs[t], w_hh_t, out=z)
        z += xw[t]
        if relu:
            xp.maximum(z, 0, out=hs[t + 1])
        else:
            xp.tanh(z, out=hs[t + 1])
    del xw, z

    def backward(adjoints):
        g_out, g_hn = adjoints
        h = hs[1:]
        # d act / d z for all steps at once (tanh' = 1 - h^2, relu' = [h > 0])
        deriv = (h > 0).astype(dtype) if relu else 1 - h * h
        g_seq = None if g_out is None else _swap_time_and_batch(g_out, batch_first)
        D = xp.empty((T, N, hidden), dtype=dtype)
        dh = _state_adjoint(g_hn, (N, hidden), xp, dtype)
        for t in range(T - 1, -1, -1):
            if g_seq is not None:
                dh += g_seq[t]
            xp.multiply(dh, deriv[t], out=D[t])
            xp.matmul(D[t], w_hh, out=dh)                   # adjoint of h_{t-1}
        del deriv
        return _finish_backward(D, xs, hs[:-1], dh, w_ih, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, batch_first)

    output = _swap_time_and_batch(hs[1:], batch_first)
    return _multi_result((output, hs[T]), (x, h0, weight_ih, weight_hh, bias_ih, bias_hh), backward)


def lstm(x, h0, c0, weight_ih, weight_hh, bias_ih=None, bias_hh=None, batch_first=True):
    """One LSTM layer with PyTorch's equations and gate order (i, f, g, o).

        i, f, g, o = sigma, sigma, tanh, sigma of (x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)
        c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)

    ``x``: (N, T, input_size) if ``batch_first`` else (T, N, input_size);
    ``h0``, ``c0``: (N, H) or None (zeros). Returns ``(output, h_n, c_n)``.
    """
    hidden = _check_layer(x, weight_ih, weight_hh, bias_ih, bias_hh, gates=4, batch_first=batch_first)
    _check_state(h0, "h0", x, hidden, batch_first)
    _check_state(c0, "c0", x, hidden, batch_first)
    xp = x.xp
    xs = _time_major(x.data, batch_first)
    T, N, _ = xs.shape
    H = hidden
    w_ih, w_hh = weight_ih.data, weight_hh.data
    dtype = w_ih.dtype

    # sigma(z) = (1 + tanh(z / 2)) / 2: halving the sigmoid gates' rows of the weights and
    # biases (exact, a power of two) lets one tanh call activate all four gates per step.
    half = xp.ones(4 * H, dtype=dtype)
    half[:2 * H] = 0.5
    half[3 * H:] = 0.5
    shift = 1 - half                                          # 0.5 on sigmoid gates, 0 on g
    xw = (xs.reshape(T * N, -1) @ (w_ih * half[:, None]).T).reshape(T, N, 4 * H)
    bias = _summed_bias(bias_ih, bias_hh)
    if bias is not None:
        xw += bias * half
    w_hh_half_t = xp.ascontiguousarray((w_hh * half[:, None]).T)

    gates = xp.empty((T, N, 4 * H), dtype=dtype)              # activated i, f, g, o per step
    hs = xp.empty((T + 1, N, H), dtype=dtype)                 # hs[t + 1] = h_t, hs[0] = h_{-1}
    cs = xp.empty((T + 1, N, H), dtype=dtype)                 # cs[t + 1] = c_t, cs[0] = c_{-1}
    tanh_c = xp.empty((T, N, H), dtype=dtype)
    hs[0] = 0 if h0 is None else h0.data
    cs[0] = 0 if c0 is None else c0.data
    ig = xp.empty((N, H), dtype=dtype)
    for t in range(T):
        a = gates[t]
        xp.matmul(hs[t], w_hh_half_t, out=a)
        a += xw[t]
        xp.tanh(a, out=a)
        a *= half
        a += shift
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        xp.multiply(f, cs[t], out=cs[t + 1])
        xp.multiply(i, g, out=ig)
        cs[t + 1] += ig
        xp.tanh(cs[t + 1], out=tanh_c[t])
        xp.multiply(o, tanh_c[t], out=hs[t + 1])
    del xw, ig

    def backward(adjoints):
        g_out, g_hn, g_cn = adjoints
        # Everything that does not depend on the carried adjoints, for all steps at once:
        # partner[t] = (g, c_{t-1}, i, tanh c_t) * (the gate's activation derivative), so that
        # D_t = (dc, dc, dc, dh) * partner[t] in gate order i, f, g, o.
        i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))
        partner = xp.empty((T, N, 4, H), dtype=dtype)
        xp.multiply(g, i * (1 - i), out=partner[:, :, 0])
        xp.multiply(cs[:-1], f * (1 - f), out=partner[:, :, 1])
        xp.multiply(i, 1 - g * g, out=partner[:, :, 2])
        xp.multiply(tanh_c, o * (1 - o), out=partner[:, :, 3])
        o_dtanh = o * (1 - tanh_c * tanh_c)                   # dh_t -> dc_t
        g_seq = None if g_out is None else _swap_time_and_batch(g_out, batch_first)

        D = xp.empty((T, N, 4 * H), dtype=dtype)
        D4 = D.reshape(T, N, 4, H)
        dh = _state_adjoint(g_hn, (N, H), xp, dtype)
        dc_next = _state_adjoint(g_cn, (N, H), xp, dtype)
        carried = xp.empty((N, 4, H), dtype=dtype)           # (dc, dc, dc, dh) of the step
        dc = carried[:, 0]
        for t in range(T - 1, -1, -1):
            if g_seq is not None:
                dh += g_seq[t]
            xp.multiply(dh, o_dtanh[t], out=dc)
            dc += dc_next
            carried[:, 1:3] = dc[:, None]
            carried[:, 3] = dh
            xp.multiply(carried, partner[t], out=D4[t])
            xp.multiply(dc, f[t], out=dc_next)                # adjoint of c_{t-1}
            xp.matmul(D[t], w_hh, out=dh)                    # adjoint of h_{t-1}
        del partner, o_dtanh
        grads = _finish_backward(D, xs, hs[:-1], dh, w_ih, x, h0, weight_ih, weight_hh, bias_ih, bias_hh,
                                 batch_first)
        return grads + (dc_next if c0 is not None and c0.requires_grad else None,)

    output = _swap_time_and_batch(hs[1:], batch_first)
    return _multi_result((output, hs[T], cs[T]), (x, h0, weight_ih, weight_hh, bias_ih, bias_hh, c0), backward)


# ---------------------------------------------------------------- shared pieces
def _finish_backward(D, xs, h_prev, dh0, w_ih, x, h0, weight_ih, weight_hh, bias_ih, bias_hh, batch_first):
    """The weight, bias, input and h0 adjoints from the stacked step adjoints D (T, N, G): one GEMM each.

    ``xs`` (T, N, I) and ``h_prev`` (T, N, H) are what W_ih and W_hh multiplied, ``w_ih``
    the W_ih array of the forward pass, ``dh0`` the adjoint of the initial state.

    Returns them in the order x, h0, weight_ih, weight_hh, bias_ih, bias_hh.
    """
    T, N, width = D.shape
    D2 = D.reshape(T * N, width)
    if weight_ih.requires_grad or weight_hh.requires_grad:
        D_batch = D.transpose(1, 0, 2)
        if weight_ih.requires_grad:
            hand_out_factors(weight_ih, _swap_time_and_batch(xs, True), D_batch)
        if weight_hh.requires_grad:
            hand_out_factors(weight_hh, _swap_time_and_batch(h_prev, True), D_batch)
    g_w_ih = D2.T @ xs.reshape(T * N, -1) if weight_ih.requires_grad else None
    g_w_hh = D2.T @ h_prev.reshape(T * N, -1) if weight_hh.requires_grad else None
    g_x = None
    if x.requires_grad:
        g_x = _swap_time_and_batch((D2 @ w_ih).reshape(T, N, -1), batch_first)
    need_bias = (bias_ih is not None and bias_ih.requires_grad) or (bias_hh is not None and bias_hh.requires_grad)
    g_b = D2.sum(axis=0) if need_bias else None
    g_h0 = dh0 if h0 is not None and h0.requires_grad else None
    return (g_x, g_h0, g_w_ih, g_w_hh,
            g_b if bias_ih is not None and bias_ih.requires_grad else None,
            g_b if bias_hh is not None and bias_hh.requires_grad else None)


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
        return tuple(Tensor._wrap(a) for a in arrays)
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


def _state_adjoint(g, shape, xp, dtype):
    """A fresh (N, H) buffer holding the adjoint of a final state (zeros if the loss ignores it)."""
    buf = xp.zeros(shape, dtype=dtype)
    if g is not None:
        buf += g
    return buf


def _summed_bias(bias_ih, bias_hh):
    if bias_ih is None and bias_hh is None:
        return None
    if bias_ih is None:
        return bias_hh.data
    if bias_hh is None:
        return bias_ih.data
    return bias_ih.data + bias_hh.data


def _time_major(arr, batch_first):
    """(T, N, F) contiguous array from an input laid out (N, T, F) or (T, N, F)."""
    xp = get_array_module(arr)
    return xp.ascontiguousarray(arr.transpose(1, 0, 2) if batch_first else arr)


def _swap_time_and_batch(arr, batch_first):
    """(N, T, F) <-> (T, N, F) when ``batch_first``, else ``arr`` itself (a view, no copy): the
    same swap turns a batch-first array time-major and a time-major one batch-first."""
    return arr.transpose(1, 0, 2) if batch_first else arr


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
