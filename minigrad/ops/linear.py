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
    # one GEMM over all rows of (N, ..., in): a view for contiguous input
    x2 = xd.reshape(-1, fan_in)
    out = gemm.affine(x2, wd, None if bias is None else bias.data)
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
        gb = gemm.column_sums(g2) if bias.requires_grad else None
        return gx, gw, gb

    return result(out, parents, backward)
