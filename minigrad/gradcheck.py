"""Finite-difference gradient check, public so learners can check their own ops."""
import numpy as np

from . import backend
from .autograd import no_grad
from .tensor import Tensor


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-6, rtol=1e-4, seed=0, raise_on_failure=True):
    """Compare backward of ``fn(*inputs)`` with central finite differences (use float64).

    ``fn`` returns a tensor of any shape; it is reduced with a fixed random weighting
    u so that one backward gives J^T u, which is compared against
    (f(x + eps e_i) - f(x - eps e_i)) . u / (2 eps) for every element i of every input
    that requires grad. Returns True, or raises AssertionError naming the input,
    the element and both values.
    """
    tensors = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not tensors:
        raise ValueError("gradcheck needs at least one input tensor with requires_grad=True")
    for t in tensors:
        if t.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 inputs for meaningful finite differences, got {t.dtype}")
    saved_grads = [t.grad for t in tensors]
    for t in tensors:
        t.grad = None
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    if not out.requires_grad:
        raise ValueError("gradcheck: fn's output does not depend on any input that requires grad")
    rng = np.random.default_rng(seed)
    u = backend.to_device(rng.standard_normal(out.shape), out.device).astype(out.dtype)
    out.backward(u)
    analytic = [backend.to_numpy(t.grad) if t.grad is not None else np.zeros(t.shape) for t in tensors]
    for t, g in zip(tensors, saved_grads):
        t.grad = g

    def value():
        with no_grad():
            return float(backend.to_numpy((fn(*inputs).data * u).sum()))

    for k, t in enumerate(tensors):
        host = backend.to_numpy(t.data).copy()
        numeric = np.zeros_like(host)
        flat = host.reshape(-1)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            t.data = backend.to_device(host, t.device)
            plus = value()
            flat[i] = orig - eps
            t.data = backend.to_device(host, t.device)
            minus = value()
            flat[i] = orig
            numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        t.data = backend.to_device(host, t.device)
        bad = ~np.isclose(analytic[k], numeric, atol=atol, rtol=rtol)
        if bad.any():
            idx = np.unravel_index(np.argmax(np.abs(analytic[k] - numeric) * bad), numeric.shape)
            msg = (f"gradcheck failed for input {k} (shape {t.shape}) at element {tuple(int(i) for i in idx)}: "
                   f"backward gives {analytic[k][idx]:.8g}, finite differences {numeric[idx]:.8g} "
                   f"({int(bad.sum())} of {bad.size} elements differ)")
            if raise_on_failure:
                raise AssertionError(msg)
            return False
    return True
