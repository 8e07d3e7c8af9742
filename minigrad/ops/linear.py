"""The affine map y = x W^T + b, the op behind nn.Linear and the attention projections.

Its weight gradient is the paper's eq. (1): grad W = sum_{n,p} D[n,p]^T A[n,p] with
A the input x and D the output adjoint, P the positions between the batch axis and
the feature axis (1 for (N, in) inputs, L tokens for (N, L, in)).
"""
from ._util import result
from ..factors import hand_out_factors
from ..kernels import gemm


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
    n = xd.shape[0] if xd.ndim > 1 else 1
    x2 = xd.reshape(-1, fan_in)                  # A: every row of (N, ..., in), a view for contiguous input
    y2 = gemm.affine(x2, wd, None if bias is None else bias.data)       # x W^T + b
    parents = (x, weight) if bias is None else (x, weight, bias)

    def backward(g):
        g2 = g.reshape(-1, fan_out)              # D: the output adjoint, row by row
        gx = gw = gb = None
        if weight.requires_grad:
            hand_out_factors(weight, x2.reshape(n, -1, fan_in), g2.reshape(n, -1, fan_out))
        if weight.requires_grad or (bias is not None and bias.requires_grad):
            gw, gb = gemm.affine_gradients(x2, g2, bias is not None)    # sum_{n,p} D^T A (eq. 1), sum D
            gw = gw if weight.requires_grad else None
        if x.requires_grad:
            gx = (g2 @ wd).reshape(xd.shape)     # D W
        return (gx, gw) if bias is None else (gx, gw, gb)

    return result(y2.reshape(xd.shape[:-1] + (fan_out,)), parents, backward)
