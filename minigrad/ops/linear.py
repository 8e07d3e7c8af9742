"""The affine map y = x W^T + b, the op behind nn.Linear and the attention projections.

Its weight gradient is the paper's eq. (1): grad W = sum_{n,p} D[n,p]^T A[n,p] with
A the input x and D the output adjoint, P the positions between the batch axis and
the feature axis (1 for (N, in) inputs, L tokens for (N, L, in)).
"""
import numpy as np

from ._util import result
from ..kernels import threads


def hand_out_factors(weight, A, D):
    """Give (A, D) to the weight's factor sink, if a capture is active (costs nothing otherwise)."""
    sink = getattr(weight, "factor_sink", None)
    if sink is not None:
        sink(A, D)


def _affine_augmented(x2, w, b):
    """x2 @ w.T + b as one GEMM, [x2, 1] @ [w.T; b]: for narrow inputs and wide outputs, copying
    x2 with a column of ones costs less than a separate pass adding b over the output."""
    n, fan_in = x2.shape
    x_aug = np.empty((n, fan_in + 1), dtype=np.result_type(x2, w))
    x_aug[:, :fan_in] = x2
    x_aug[:, fan_in] = 1
    w_aug = np.empty((fan_in + 1, w.shape[0]), dtype=x_aug.dtype)
    w_aug[:fan_in] = w.T
    w_aug[fan_in] = b
    return x_aug @ w_aug


def linear(x, weight, bias=None):
    """x (..., in) @ weight (out, in)^T + bias (out,)."""
    xd, wd = x.data, weight.data
    if wd.ndim != 2:
        raise ValueError(f"linear weight must be 2-D (out, in), got shape {weight.shape}")
    if xd.ndim < 1 or xd.shape[-1] != wd.shape[1]:
        raise ValueError(f"linear expects input (..., {wd.shape[1]}), got shape {x.shape}")
    if bias is not None and bias.shape != (wd.shape[0],):
        raise ValueError(f"linear bias must have shape ({wd.shape[0]},), got {bias.shape}")
    if x.device != weight.device:
        raise ValueError(f"linear: input is on {x.device} but the weight is on {weight.device}: "
                         f"move the model or the input with .to()")
    fan_out, fan_in = wd.shape
    xp = x.xp
    # one GEMM over all rows of (N, ..., in): a view for contiguous input
    x2 = xd.reshape(-1, fan_in)
    if bias is not None and xp is np and fan_in < fan_out:
        out = _affine_augmented(x2, wd, bias.data)
    else:
        out = x2 @ wd.T
        if bias is not None:  # into the fresh GEMM output, no extra array (split over threads on the CPU)
            if xp is np:
                threads.elementwise(lambda o, b: np.add(o, b, out=o), out, bias.data)
            else:
                out += bias.data
    out = out.reshape(xd.shape[:-1] + (fan_out,))
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, fan_out)
        gx = (g2 @ wd).reshape(xd.shape) if x.requires_grad else None
        gw = None
        if weight.requires_grad:
            gw = g2.T @ x2  # paper eq. (1): sum over samples and positions of D^T A
            n = xd.shape[0] if xd.ndim > 1 else 1
            hand_out_factors(weight, x2.reshape(n, -1, fan_in), g2.reshape(n, -1, fan_out))
        if bias is None:
            return gx, gw
        # bias: column sums of g2 as one BLAS product (NumPy's axis-0 sum is slower for few columns)
        gb = g2.T @ xp.ones(g2.shape[0], dtype=g2.dtype) if bias.requires_grad else None
        return gx, gw, gb

    return result(out, parents, backward)
