"""Layers and models: minigrad.nn."""
from . import functional, init  # noqa: F401
from .activation import GELU, Identity, ReLU, Sigmoid, Softmax, Tanh, activation  # noqa: F401
from .layers import Dropout, Embedding, Flatten, LayerNorm  # noqa: F401
from .linear import Linear  # noqa: F401
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss  # noqa: F401
from .module import Module, ModuleList, Sequential  # noqa: F401
from ..tensor import Parameter  # noqa: F401
