"""Convolution and transposed convolution over 1-3 spatial dimensions (im2col + one GEMM).

Conv (weight (c_out, c_in, *k)). With A = unfold(x) (im2col) of shape (N, P, c_in * prod(k))
(P = output positions, columns in the weight's (c_in, *k) order) and W2 = weight
reshaped to (c_out, c_in * prod(k)), the output is A W2^T + b and, with D the output
adjoint (N, P, c_out), the weight gradient is the paper's eq. (1):

    weight.grad.reshape(c_out, -1) = sum_{n,p} D[n,p]^T A[n,p] = Factors.gradient().

ConvTranspose (weight (c_in, c_out, *k)) is the adjoint map: every input position
p multiplies its channel vector A[n,p] = x[n,:,p] (c_in) by W2 = weight.reshape(c_in, -1)
into a patch of c_out * prod(k) values that fold (col2im) adds onto the output. The
output side of that product, D = unfold(output adjoint) (N, P_in, c_out * prod(k)),
is handed out with A (N, P_in, c_in), so that

    weight.grad = Factors.gradient().T.reshape(c_in, c_out, *k)

(``gradient()`` is (fan_out, fan_in) = (c_out * prod(k), c_in), the transpose of the
weight's (c_in, c_out * prod(k)) layout).

The op is that maths; the patches (``unfold``), their adjoint (``fold``) and the GEMMs
are kernels (minigrad/kernels/unfold.py, gemm.py), whose fast versions keep outputs
channel-major in memory, fold the bias into the GEMM and split work over threads.
"""
from ._util import result
from .im2col import Window, as_padding_pairs, as_tuple, output_shape
from .shape import squeeze, unsqueeze
from ..factors import hand_out_factors
from ..kernels import elementwise, gemm, unfold
from ..tensor import Tensor

_DIM_NAMES = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_types(x, weight, bias, op):
    for name, t in (("input", x), ("weight", weight)) + ((("bias", bias),) if bias is not None else ()):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a minigrad Tensor, got {type(t).__name__} "
                            f"(wrap arrays with minigrad.tensor)")
    if weight.ndim not in (3, 4, 5):
        raise ValueError(f"{op} supports 1, 2 or 3 spatial dimensions: the weight must be 3-, 4- or 5-D "
                         f"(channels, channels, *kernel), got shape {weight.shape}")


def _check_operands(x, weight, bias, d, op, channel_axis):
    """Checks an input (N, C, *S) or unbatched (C, *S) against the weight."""
    if x.ndim not in (d + 1, d + 2):
        raise ValueError(f"{op}{d}d expects a {d + 2}-D input {_DIM_NAMES[d]} (or {d + 1}-D unbatched), "
                         f"got shape {x.shape}")
    channels = x.shape[x.ndim - d - 1]
    if channels != weight.shape[channel_axis]:
        raise ValueError(f"{op}{d}d expects {weight.shape[channel_axis]} input channels (weight shape "
                         f"{weight.shape}), got input of shape {x.shape} with {channels} channels")
    if x.data.dtype.kind != "f":
        raise TypeError(f"{op}{d}d needs a float input, got dtype {x.dtype}")
    if x.dtype != weight.dtype:
        raise TypeError(f"{op}{d}d input dtype {x.dtype} differs from weight dtype {weight.dtype}; "
                        f"cast one of them (e.g. x.to(dtype=...))")
    if x.device != weight.device:
        raise ValueError(f"{op}{d}d input is on {x.device} but weight on {weight.device}: move one with .to()")
    n_out = weight.shape[1 - channel_axis]
    if bias is not None and bias.shape != (n_out,):
        raise ValueError(f"{op}{d}d bias must have shape ({n_out},), got {bias.shape}")


def _check_groups(groups, op):
    if groups != 1:
        raise ValueError(f"{op}: groups={groups!r} is not supported, only groups=1")


def conv_padding(padding, kernel, stride, dilation):
    """Padding as (before, after) pairs; also accepts PyTorch's "valid" and "same" (stride 1 only)."""
    d = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * d
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1, got stride {stride}")
            total = [dl * (k - 1) for k, dl in zip(kernel, dilation)]
            return tuple((t // 2, t - t // 2) for t in total)  # the extra one goes after, as in PyTorch
        raise ValueError(f"padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    return as_padding_pairs(padding, d)


def _positions(a):
    """(N, C, *S) -> (N, P, C): each position's channel vector (a view where the layout allows)."""
    return a.reshape(a.shape[0], a.shape[1], -1).transpose(0, 2, 1)


def _channels(y2, n, spatial):
    """(N * P, C) rows, one per position -> (N, C, *S) (a view where the layout allows)."""
    return y2.reshape(n, -1, y2.shape[1]).transpose(0, 2, 1).reshape((n, y2.shape[1]) + tuple(spatial))


def conv(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """N-d convolution (cross-correlation, as PyTorch), d = weight.ndim - 2 in {1, 2, 3}.

    x (N, c_in, *S), weight (c_out, c_in, *k), bias (c_out,) or None. ``padding``:
    int, tuple, tuple of (before, after) pairs, "valid" or "same". Hands out the
    factors A = unfold(x) (N, P, c_in * prod(k)) and D = output adjoint (N, P, c_out).
    """
    d = weight.ndim - 2
    _check_groups(groups, "conv")
    _check_types(x, weight, bias, "conv")
    _check_operands(x, weight, bias, d, "conv", channel_axis=1)
    if x.ndim == d + 1:  # unbatched (c_in, *S), as PyTorch allows
        return squeeze(conv(unsqueeze(x, 0), weight, bias, stride, padding, dilation), 0)
    window = _conv_window(x.shape[2:], weight.shape[2:], stride, padding, dilation, d)
    n, c_out = x.shape[0], weight.shape[0]
    W2 = weight.data.reshape(c_out, -1)                          # (c_out, c_in * prod(k))
    A = unfold.unfold(x.data, window)                           # (N, P, c_in * prod(k)): the patches
    A2 = A.reshape(-1, W2.shape[1])
    y2 = gemm.affine(A2, W2, None if bias is None else bias.data)   # A W2^T + b, (N * P, c_out)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        D2 = _positions(g).reshape(-1, c_out)                   # output adjoint, (N * P, c_out)
        gx = gw = gb = None
        if weight.requires_grad:
            hand_out_factors(weight, A, D2.reshape(n, -1, c_out))
        if weight.requires_grad or (bias is not None and bias.requires_grad):
            gw, gb = gemm.affine_gradients(A2, D2, bias is not None)   # sum_{n,p} D^T A (eq. 1), sum D
            gw = gw.reshape(weight.shape) if weight.requires_grad else None
        if x.requires_grad:
            gx = unfold.fold_product(D2.reshape(n, -1, c_out), W2, window)   # fold(D W2)
        return (gx, gw) if bias is None else (gx, gw, gb)

    return result(_channels(y2, n, window.out_shape), parents, backward)


def _conv_window(in_shape, kernel, stride, padding, dilation, d):
    stride = as_tuple(stride, d, "stride", minimum=1)
    dilation = as_tuple(dilation, d, "dilation", minimum=1)
    pads = conv_padding(padding, kernel, stride, dilation)
    out_shape = output_shape(in_shape, kernel, stride, pads, dilation)
    if any(o < 1 for o in out_shape):
        effective = tuple(dl * (k - 1) + 1 for k, dl in zip(kernel, dilation))
        raise ValueError(f"conv{d}d: kernel (dilated size {effective}) is larger than the padded input "
                         f"(spatial size {in_shape}, padding {pads}); the output would be empty")
    return Window(tuple(kernel), stride, pads, dilation, tuple(in_shape), out_shape)


def transpose_output_shape(in_shape, kernel, stride, padding, output_padding, dilation):
    """(S - 1) s - 2 p + dl (k - 1) + output_padding + 1 per axis (PyTorch's ConvTranspose size)."""
    return tuple((n - 1) * s - lo - hi + dl * (k - 1) + op + 1
                 for n, k, s, (lo, hi), op, dl in zip(in_shape, kernel, stride, padding, output_padding, dilation))


def conv_transpose(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """N-d transposed convolution (PyTorch's conv_transpose), d = weight.ndim - 2 in {1, 2, 3}.

    x (N, c_in, *S), weight (c_in, c_out, *k), bias (c_out,) or None. Hands out
    A = x per input position (N, P_in, c_in) and D = unfold(output adjoint)
    (N, P_in, c_out * prod(k)); ``weight.grad == gradient().T.reshape(weight.shape)``.
    """
    d = weight.ndim - 2
    _check_groups(groups, "conv_transpose")
    _check_types(x, weight, bias, "conv_transpose")
    _check_operands(x, weight, bias, d, "conv_transpose", channel_axis=0)
    if x.ndim == d + 1:  # unbatched (c_in, *S), as PyTorch allows
        return squeeze(conv_transpose(unsqueeze(x, 0), weight, bias, stride, padding, output_padding,
                                      groups, dilation), 0)
    # the window of the convolution this one is the adjoint of: it slides over our output
    window = _transpose_window(x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation, d)
    n, c_in = x.shape[0], weight.shape[0]
    W2 = weight.data.reshape(c_in, -1)                          # (c_in, c_out * prod(k))
    A2 = _positions(x.data).reshape(-1, c_in)                   # (N * P_in, c_in)
    out = unfold.fold_product(A2.reshape(n, -1, c_in), W2, window)    # fold(A W2), (N, c_out, *out)
    if bias is not None:
        out = elementwise.add_channel_bias(out, bias.data)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        gx = gw = gb = None
        if x.requires_grad or weight.requires_grad:
            D = unfold.unfold(g, window)                        # (N, P_in, c_out * prod(k))
            D2 = D.reshape(-1, W2.shape[1])
            if weight.requires_grad:
                hand_out_factors(weight, A2.reshape(n, -1, c_in), D)
                gw = gemm.affine_gradients(A2, D2, False)[0].T.reshape(weight.shape)   # (sum D^T A)^T
            if x.requires_grad:
                gx = _channels(gemm.affine(D2, W2), n, x.shape[2:])             # D W2^T
        if bias is not None and bias.requires_grad:
            gb = g.sum(axis=(0,) + tuple(range(2, g.ndim)))
        return (gx, gw) if bias is None else (gx, gw, gb)

    return result(out, parents, backward)


def _transpose_window(in_shape, kernel, stride, padding, output_padding, dilation, d):
    stride = as_tuple(stride, d, "stride", minimum=1)
    dilation = as_tuple(dilation, d, "dilation", minimum=1)
    if isinstance(padding, str):
        raise ValueError(f"conv_transpose{d}d padding must be an int or a tuple of ints, got {padding!r}")
    pads = as_padding_pairs(padding, d)
    output_padding = as_tuple(output_padding, d, "output_padding")
    if any(op >= max(s, dl) for op, s, dl in zip(output_padding, stride, dilation)):
        raise ValueError(f"conv_transpose{d}d: output_padding {output_padding} must be smaller than "
                         f"stride {stride} or dilation {dilation} in every dimension")
    out_shape = transpose_output_shape(in_shape, kernel, stride, pads, output_padding, dilation)
    if any(o < 1 for o in out_shape):
        raise ValueError(f"conv_transpose{d}d: padding {pads} is too large for input spatial size {in_shape} "
                         f"and kernel {kernel}; the output size would be {out_shape}")
    return Window(tuple(kernel), stride, pads, dilation, out_shape, tuple(in_shape))


def _fixed_dim(fn, d, name):
    def op(x, weight, *args, **kwargs):
        if isinstance(weight, Tensor) and weight.ndim != d + 2:
            raise ValueError(f"{name} needs a {d + 2}-D weight, got shape {weight.shape}")
        return fn(x, weight, *args, **kwargs)
    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"{fn.__name__} with {d} spatial dimension{'s' if d > 1 else ''}; see :func:`{fn.__name__}`."
    return op


conv1d, conv2d, conv3d = (_fixed_dim(conv, d, f"conv{d}d") for d in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (
    _fixed_dim(conv_transpose, d, f"conv_transpose{d}d") for d in (1, 2, 3))
