"""The seedable generator behind parameter inits and dropout."""
import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed):
    """Reseed minigrad's default generator (inits, dropout); returns it."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    """The generator used when none is passed."""
    return _generator
