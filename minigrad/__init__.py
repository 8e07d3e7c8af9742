"""minigrad: a small reverse-mode autodiff engine on NumPy (CuPy on GPUs) whose
layers hand out the factors (A, D) of every weight gradient."""
from .tensor import Parameter, Tensor, get_default_dtype, ones, set_default_dtype, tensor, zeros  # noqa: F401,I001
from . import backend, nn, optim  # noqa: F401
from .autograd import enable_grad, is_grad_enabled, no_grad  # noqa: F401
from .backend import DeviceError, get_array_module  # noqa: F401
from .factors import Factors, capture_factors, factor_hooks  # noqa: F401
from .gradcheck import gradcheck  # noqa: F401
from .ops.arithmetic import clip, matmul, maximum, minimum, where  # noqa: F401
from .ops.elementwise import exp, gelu, log, relu, sigmoid, sqrt, tanh  # noqa: F401
from .ops.reduction import log_softmax, logsumexp, softmax  # noqa: F401
from .ops.shape import concatenate, stack  # noqa: F401
from .kernels import active_kernels, get_num_threads, set_num_threads, use_kernels  # noqa: F401
from .random import manual_seed  # noqa: F401

__version__ = "0.1.0"


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors numpy/torch naming
    return x.sum(axis, keepdims)


def mean(x, axis=None, keepdims=False):
    return x.mean(axis, keepdims)
