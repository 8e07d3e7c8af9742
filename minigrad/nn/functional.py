"""Functional forms of every op (like torch.nn.functional)."""
from ..ops.arithmetic import clip, matmul, maximum, minimum, where  # noqa: F401
from ..ops.elementwise import exp, gelu, log, relu, sigmoid, sqrt, tanh  # noqa: F401
from ..ops.linear import linear  # noqa: F401
from ..ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss  # noqa: F401
from ..ops.norm import dropout, embedding, layer_norm  # noqa: F401
from ..ops.reduction import log_softmax, logsumexp, softmax  # noqa: F401
from ..ops.shape import concatenate, flatten, stack  # noqa: F401
