"""The Tensor: an array on a backend (NumPy or CuPy) plus what backward needs."""
import numbers

import numpy as np

from . import autograd, backend
from .kernels import buffers

_default_dtype = np.float32


def set_default_dtype(dtype):
    """Set the float dtype new tensors and parameters get (float32 or float64)."""
    global _default_dtype
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"default dtype must be float32 or float64, got {dt}")
    _default_dtype = dt.type


def get_default_dtype():
    """The float dtype new tensors get (float32 unless changed)."""
    return np.dtype(_default_dtype)


def _resolve_dtype(array_dtype, dtype):
    if dtype is not None:
        return np.dtype(dtype)
    if array_dtype.kind in "fc":
        return get_default_dtype()
    return array_dtype


class Tensor:
    """An n-dimensional array that records the ops applied to it for reverse-mode AD.

    Float data becomes the default dtype (float32) unless ``dtype`` is given;
    integer and bool data keep their dtype (labels, indices, masks). The data is
    copied; ``Tensor.wrap(array)`` wraps an array without copying.

    The graph (read by ``autograd``): ``parents``, the tensors an op made this one from;
    ``grad_fn``, the op's backward closure mapping this tensor's adjoint to theirs (None
    for a leaf); ``op_index``, the op's forward order; ``retains_grad``, set by ``retain_grad()``.
    """

    __array_ufunc__ = None  # make NumPy defer to our reflected operators

    __slots__ = ("data", "grad", "requires_grad", "parents", "grad_fn", "retains_grad", "op_index", "name",
                 "__weakref__")

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        if isinstance(data, Tensor):
            data = data.data
        dev = backend.normalize_device(device) if device is not None else (
            backend.device_of(data) if backend.is_cupy_array(data) else backend.default_device())
        xp = backend.xp_for(dev)
        if backend.is_cupy_array(data) and dev == "cpu":
            data = backend.to_numpy(data)
        arr = xp.asarray(data)
        # always a copy (like torch.tensor): later edits of the caller's array never leak in
        arr = arr.astype(_resolve_dtype(arr.dtype, dtype), copy=True)
        self._init(arr, requires_grad)

    def _init(self, data, requires_grad=False):
        if requires_grad and data.dtype.kind not in "fc":
            raise TypeError(f"only float tensors can require grad, got dtype {data.dtype}")
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self.parents = ()
        self.grad_fn = None
        self.retains_grad = False
        self.op_index = 0
        self.name = None

    @classmethod
    def wrap(cls, data, requires_grad=False):
        """Wrap a backend array without copying or converting it."""
        t = object.__new__(Tensor)
        Tensor._init(t, data, requires_grad)
        return t

    # ----------------------------------------------------------------- info
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return int(self.data.size)

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def xp(self):
        """The array module (numpy or cupy) this tensor lives on."""
        return backend.get_array_module(self.data)

    @property
    def is_leaf(self):
        return self.grad_fn is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.numpy(), precision=4, threshold=20, edgeitems=2)
        extra = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        return f"tensor({body}, dtype={self.dtype}{dev}{extra})"

    # ------------------------------------------------------------ conversion
    def numpy(self):
        """A host NumPy array with this tensor's values (a copy for CuPy tensors)."""
        return backend.to_numpy(self.data)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device=None, dtype=None):
        """A tensor on ``device`` and/or of ``dtype``; differentiable (grads flow back)."""
        from .ops.shape import to_device_dtype

        return to_device_dtype(self, device, dtype)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor.wrap(self.data)

    # ------------------------------------------------------------- autograd
    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind not in "fc":
            raise TypeError(f"only float tensors can require grad, got dtype {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self.retains_grad = True
        return self

    def accumulate_grad(self, g):
        """Add adjoint ``g`` into ``.grad`` (the first one kept as an array no one else holds)."""
        if g.shape != self.data.shape:  # defensive: an op returned a wrongly shaped adjoint
            raise RuntimeError(f"internal error: gradient of shape {g.shape} for tensor of shape {self.shape}")
        if g.dtype != self.data.dtype:
            g = g.astype(self.data.dtype)
        self.grad = buffers.leaf_gradient(g) if self.grad is None else self.grad + g

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into ``.grad`` of every leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad "
                               "(no input had requires_grad=True, or it was made under no_grad())")
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar tensor of shape {self.shape} needs a seed gradient: "
                    "call t.backward(grad) with an array of that shape, or reduce to a scalar first (e.g. t.sum())")
            seed = self.xp.ones(self.data.shape, dtype=self.data.dtype)
        else:
            raw = grad.data if isinstance(grad, Tensor) else grad
            # our own copy: the caller's array must never end up as (or inside) a .grad
            seed = backend.to_device(raw, self.device).astype(self.data.dtype, copy=True)
            if seed.shape != self.data.shape:
                raise ValueError(f"seed gradient has shape {tuple(seed.shape)}, expected {self.shape}")
        if self.grad_fn is None:  # a leaf: d(self)/d(self) = seed
            self.accumulate_grad(seed)
            return
        autograd.run_backward(self, seed, retain_graph=retain_graph)

    def zero_grad(self):
        self.grad = None

    # ------------------------------------------------------------ operators
    def __add__(self, other): return _ar.add(self, other)
    def __radd__(self, other): return _ar.add(other, self)
    def __sub__(self, other): return _ar.sub(self, other)
    def __rsub__(self, other): return _ar.sub(other, self)
    def __mul__(self, other): return _ar.mul(self, other)
    def __rmul__(self, other): return _ar.mul(other, self)
    def __truediv__(self, other): return _ar.div(self, other)
    def __rtruediv__(self, other): return _ar.div(other, self)
    def __neg__(self): return _ar.neg(self)
    def __pow__(self, other): return _ar.pow(self, other)
    def __rpow__(self, other): return _ar.pow(other, self)
    def __matmul__(self, other): return _ar.matmul(self, other)
    def __rmatmul__(self, other): return _ar.matmul(other, self)
    def __abs__(self): return _ar.abs(self)
    def __getitem__(self, index): return _sh.getitem(self, index)

    # comparisons give bool tensors outside the graph
    def _compare(self, other, fn):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor.wrap(fn(self.data, other))

    def __lt__(self, other): return self._compare(other, lambda a, b: a < b)
    def __le__(self, other): return self._compare(other, lambda a, b: a <= b)
    def __gt__(self, other): return self._compare(other, lambda a, b: a > b)
    def __ge__(self, other): return self._compare(other, lambda a, b: a >= b)
    def eq(self, other): return self._compare(other, lambda a, b: a == b)

    __hash__ = object.__hash__

    def __bool__(self):
        return bool(self.data)  # like NumPy: only single-element tensors have a truth value

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    # ------------------------------------------------------------- methods
    def matmul(self, other): return _ar.matmul(self, other)
    def pow(self, exponent): return _ar.pow(self, exponent)
    def abs(self): return _ar.abs(self)
    def clip(self, lo=None, hi=None): return _ar.clip(self, lo, hi)
    def exp(self): return _el.exp(self)
    def log(self): return _el.log(self)
    def sqrt(self): return _el.sqrt(self)
    def relu(self): return _el.relu(self)
    def tanh(self): return _el.tanh(self)
    def sigmoid(self): return _el.sigmoid(self)
    def gelu(self): return _el.gelu(self)
    def sum(self, axis=None, keepdims=False): return _rd.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _rd.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _rd.max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return _rd.min(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, ddof=0): return _rd.var(self, axis, keepdims, ddof)
    def softmax(self, axis=-1): return _rd.softmax(self, axis)
    def log_softmax(self, axis=-1): return _rd.log_softmax(self, axis)
    def reshape(self, *shape): return _sh.reshape(self, _one_or_many(shape))
    view = reshape
    def flatten(self, start_axis=0, end_axis=-1): return _sh.flatten(self, start_axis, end_axis)
    def transpose(self, *axes):
        """``transpose(d0, d1)`` swaps two axes, as PyTorch's does, for every ndim; a sequence of
        axes (``transpose((1, 0, 2))``) permutes them and no argument reverses them, as NumPy's."""
        if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
            return _sh.swapaxes(self, *axes)
        if len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
            axes = tuple(axes[0]) if axes[0] is not None else ()
        return _sh.transpose(self, axes or None)

    def permute(self, *axes): return _sh.transpose(self, _one_or_many(axes))
    def swapaxes(self, a, b): return _sh.swapaxes(self, a, b)
    def squeeze(self, axis=None): return _sh.squeeze(self, axis)
    def unsqueeze(self, axis): return _sh.unsqueeze(self, axis)

    @property
    def T(self):
        return _sh.transpose(self, None)


def _one_or_many(args):
    """``f(2, 3)`` and ``f((2, 3))`` alike: the sizes/axes as one sequence."""
    return args[0] if len(args) == 1 and not isinstance(args[0], numbers.Integral) else args


backend.register_tensor_type(Tensor)


class Parameter(Tensor):
    """A trainable leaf tensor held by a Module.

    ``factor_sink``: when set (by ``capture_factors``), ops that multiply this
    weight call ``factor_sink(A, D)`` during backward with the weight's input
    activations A (N, P, fan_in) and adjoints D (N, P, fan_out).
    """

    __slots__ = ("factor_sink",)

    def __init__(self, data, requires_grad=True, dtype=None, device=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype, device=device)
        self.factor_sink = None

    def __repr__(self):
        return "Parameter(" + super().__repr__()[len("tensor("):]


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A tensor holding a copy of array-like ``data`` (NumPy default; ``device="cuda"`` uses CuPy)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def _filled(fill, shape, dtype, device, requires_grad):
    xp = backend.xp_for(device if device is not None else backend.default_device())
    shape = tuple(shape[0]) if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else tuple(shape)
    arr = fill(xp, shape, np.dtype(dtype) if dtype is not None else get_default_dtype())
    t = Tensor.wrap(arr)
    return t.requires_grad_(requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad=False):
    return _filled(lambda xp, s, d: xp.zeros(s, d), shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device=None, requires_grad=False):
    return _filled(lambda xp, s, d: xp.ones(s, d), shape, dtype, device, requires_grad)


def as_tensor(x, like=None):
    """``x`` as a Tensor; plain scalars and arrays follow ``like``'s device and, mostly, its dtype.

    With a float ``like``, numbers and arrays (float, int or bool) take its dtype, so that
    float32 stays float32; with an integer ``like``, a Python float becomes the default
    float dtype and everything else keeps NumPy's promotion.
    """
    if isinstance(x, Tensor):
        return x
    if like is None:
        return Tensor(x)
    xp = like.xp
    if backend.is_cupy_array(x) and like.device != "cuda":
        raise ValueError(f"cannot combine a CuPy array with a tensor on {like.device}: move one with .to()")
    arr = xp.asarray(x)
    kind = like.dtype.kind
    if kind in "fc":
        if arr.dtype != like.dtype and arr.dtype.kind in "biuf":
            arr = arr.astype(like.dtype)
    elif isinstance(x, float):
        arr = arr.astype(get_default_dtype())
    elif isinstance(x, (bool, int)) and arr.dtype != like.dtype:
        arr = arr.astype(like.dtype)
    return Tensor.wrap(arr)


from .ops import arithmetic as _ar  # noqa: E402  (ops need Tensor defined first)
from .ops import elementwise as _el  # noqa: E402
from .ops import reduction as _rd  # noqa: E402
from .ops import shape as _sh  # noqa: E402
