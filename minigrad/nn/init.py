"""PyTorch-like default initializations, drawn on the host from a seedable generator."""
import math

import numpy as np

from ..random import default_generator


def fan_in_and_out(shape):
    """(fan_in, fan_out) of a weight shape (out, in, *kernel), as PyTorch computes them."""
    if len(shape) < 2:
        raise ValueError(f"fan in/out need a weight with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def uniform(shape, bound, generator=None):
    """Host array of U(-bound, bound) values."""
    gen = generator or default_generator()
    return gen.uniform(-bound, bound, size=shape)


def kaiming_uniform(shape, a=math.sqrt(5), generator=None):
    """PyTorch's default weight init for Linear/Conv (kaiming_uniform_ with a=sqrt(5))."""
    fan_in, _ = fan_in_and_out(shape)
    gain = math.sqrt(2.0 / (1 + a * a))
    bound = gain * math.sqrt(3.0 / fan_in)
    return uniform(shape, bound, generator)


def bias_uniform(shape, fan_in, generator=None):
    """PyTorch's default bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(shape, bound, generator)


def xavier_uniform(shape, gain=1.0, generator=None):
    fan_in, fan_out = fan_in_and_out(shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, bound, generator)


def normal(shape, std=1.0, generator=None):
    gen = generator or default_generator()
    return gen.standard_normal(size=shape) * std
