"""Losses, fused for exact and cheap adjoints: MSE, cross entropy, BCE with logits."""
from ._util import result
from .elementwise import sigmoid_array
from .reduction import log_softmax_array
from .. import backend
from ..kernels import elementwise, reductions
from ..tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(values, reduction):
    """Reduced loss and the scale its adjoint carries (None for reduction='none')."""
    if reduction == "mean":
        return values.mean(), 1.0 / max(values.size, 1)
    if reduction == "sum":
        return values.sum(), 1.0
    return values, None


def _target_array(target, like):
    raw = target.data if isinstance(target, Tensor) else target
    return backend.to_device(raw, like.device) if hasattr(raw, "shape") else like.xp.asarray(raw)


def mse_loss(pred, target, reduction="mean"):
    """Mean squared error between ``pred`` and ``target`` (same shape)."""
    _check_reduction(reduction)
    t = _target_array(target, pred)
    if tuple(t.shape) != pred.shape:
        raise ValueError(f"mse_loss: prediction shape {pred.shape} and target shape {tuple(t.shape)} differ")
    diff = elementwise.difference(pred.data, t.astype(pred.dtype, copy=False))
    if reduction == "none":
        out, scale = diff * diff, None
    else:
        total = reductions.sum_of_squares(diff)
        out, scale = (total / max(diff.size, 1), 1.0 / max(diff.size, 1)) if reduction == "mean" else (total, 1.0)
    target_grad = isinstance(target, Tensor) and target.requires_grad

    def backward(g):
        # d/dpred of scale * sum(diff^2) = 2 scale diff (g a 0-d factor, or per element for 'none')
        gd = elementwise.scale(diff, g * (2 * scale)) if scale is not None else diff * (g + g)
        return (gd, -gd if target_grad else None)

    parents = (pred, target) if isinstance(target, Tensor) else (pred,)
    return result(out, parents, backward)


def _check_class_targets(logits, target):
    t = _target_array(target, logits)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy expects integer class targets, got dtype {t.dtype}")
    if logits.ndim < 2:
        raise ValueError(f"cross_entropy expects logits (N, C) or (N, C, ...), got shape {logits.shape}")
    expected = (logits.shape[0],) + logits.shape[2:]
    if tuple(t.shape) != expected:
        raise ValueError(f"cross_entropy: targets of shape {tuple(t.shape)} do not match logits {logits.shape} "
                         f"(expected {expected})")
    n_classes = logits.shape[1]
    if t.size and (int(t.min()) < 0 or int(t.max()) >= n_classes):
        raise ValueError(f"cross_entropy: target classes must lie in [0, {n_classes}), "
                         f"got values in [{int(t.min())}, {int(t.max())}]")
    return t


def _class_mask(t, n_classes, like):
    """Boolean one-hot of class targets ``t`` (N, ...) along axis 1: shape (N, C, ...)."""
    xp = backend.get_array_module(like)
    classes = xp.arange(n_classes).reshape((1, n_classes) + (1,) * (t.ndim - 1))
    return xp.expand_dims(t, 1) == classes


def cross_entropy(logits, target, reduction="mean"):
    """Softmax cross entropy of logits (N, C, ...) against integer classes (N, ...)."""
    _check_reduction(reduction)
    xp = logits.xp
    t = _check_class_targets(logits, target)
    n_classes = logits.shape[1]
    logp = log_softmax_array(logits.data, axis=1)
    if logp.ndim == 2:
        rows = xp.arange(logp.shape[0])
        nll = -logp[rows, t]
    else:
        nll = -xp.take_along_axis(logp, xp.expand_dims(t, 1), axis=1).squeeze(1)
    out, scale = _reduce(nll, reduction)

    def backward(g):
        grad = xp.exp(logp)  # softmax
        if grad.ndim == 2:
            grad[rows, t] -= 1  # (row, class) pairs are distinct: plain fancy assignment
        else:
            grad -= _class_mask(t, n_classes, grad)
        grad *= g * scale if scale is not None else xp.expand_dims(g, 1)
        return (grad,)

    return result(out, (logits,), backward)


def binary_cross_entropy_with_logits(logits, target, reduction="mean"):
    """Stable BCE on logits: max(x,0) - x*t + log(1 + exp(-|x|))."""
    _check_reduction(reduction)
    xp = logits.xp
    t = _target_array(target, logits)
    if tuple(t.shape) != logits.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: logits {logits.shape} and targets {tuple(t.shape)} "
                         f"differ")
    t = t.astype(logits.dtype, copy=False)
    x = logits.data
    vals = xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))
    out, scale = _reduce(vals, reduction)

    def backward(g):
        grad = sigmoid_array(x) - t
        grad *= g * scale if scale is not None else g
        return (grad,)

    return result(out, (logits,), backward)
