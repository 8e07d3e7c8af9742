"""Functional forms of every op (like torch.nn.functional)."""
from ..ops.arithmetic import clip, matmul, maximum, minimum, where  # noqa: F401
from ..ops.attention import scaled_dot_product_attention  # noqa: F401
from ..ops.conv import (conv1d, conv2d, conv3d, conv_transpose1d, conv_transpose2d,  # noqa: F401
                        conv_transpose3d)
from ..ops.elementwise import exp, gelu, log, relu, sigmoid, sqrt, tanh  # noqa: F401
from ..ops.linear import linear  # noqa: F401
from ..ops.loss import binary_cross_entropy_with_logits, cross_entropy, mse_loss  # noqa: F401
from ..ops.norm import dropout, embedding, layer_norm  # noqa: F401
from ..ops.pool import (avg_pool1d, avg_pool2d, avg_pool3d, max_pool1d, max_pool2d,  # noqa: F401
                        max_pool3d, upsample_nearest)
from ..ops.recurrent import lstm, rnn  # noqa: F401
from ..ops.reduction import log_softmax, logsumexp, softmax  # noqa: F401
from ..ops.shape import concatenate, flatten, stack  # noqa: F401
