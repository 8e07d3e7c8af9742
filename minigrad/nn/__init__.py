"""Layers and models: minigrad.nn."""
from . import functional, init  # noqa: F401
from .activation import GELU, Identity, ReLU, Sigmoid, Softmax, Tanh, activation  # noqa: F401
from .attention import MultiheadAttention  # noqa: F401
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d  # noqa: F401
from .layers import Dropout, Embedding, Flatten, LayerNorm  # noqa: F401
from .linear import Linear  # noqa: F401
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss  # noqa: F401
from .module import Module, ModuleList, Sequential  # noqa: F401
from .pool import AvgPool1d, AvgPool2d, AvgPool3d, MaxPool1d, MaxPool2d, MaxPool3d, Upsample  # noqa: F401
from .recurrent import LSTM, RNN  # noqa: F401
from .transformer import TransformerEncoder, TransformerEncoderLayer  # noqa: F401
from ..tensor import Parameter  # noqa: F401
