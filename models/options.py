"""The options every model shares (task, activation, hidden sizes) and their checks.

Hidden sizes are ``(width,) * depth``: the paper's widths 8, 32 (default) and 64 are
``width=8/32/64, depth=1``; its "deep/thin" variant is ``width=8, depth=3``.
"""
from minigrad import nn

TASKS = ("classify", "autoencode")
_TASK_ALIASES = {"classify": "classify", "classification": "classify", "clf": "classify",
                 "autoencode": "autoencode", "auto-encoding": "autoencode", "autoencoding": "autoencode",
                 "reconstruction": "autoencode", "ae": "autoencode"}
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")
ARCHITECTURES = ("mlp", "cnn1d", "cnn2d", "cnn3d", "rnn", "lstm", "bert")


def check_task(task):
    """'classify' or 'autoencode' (aliases such as 'classification', 'ae' accepted)."""
    key = str(task).lower()
    if key not in _TASK_ALIASES:
        raise ValueError(f"unknown task {task!r}: use 'classify' or 'autoencode'")
    return _TASK_ALIASES[key]


def check_activation(name):
    """A supported activation name, lower-cased."""
    key = str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {', '.join(ACTIVATIONS)}")
    return key


def check_hidden(hidden, what="hidden"):
    """Hidden sizes as a tuple of positive ints (an int means one layer of that width)."""
    if isinstance(hidden, bool):
        raise TypeError(f"{what} must be a positive int or a sequence of them, got {hidden!r}")
    if isinstance(hidden, int):
        hidden = (hidden,)
    try:
        sizes = tuple(hidden)
    except TypeError:
        raise TypeError(f"{what} must be a positive int or a sequence of them, got {hidden!r}") from None
    if not sizes or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in sizes):
        raise ValueError(f"{what} must be one or more positive ints, got {hidden!r}")
    return sizes


def check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_classes(task, n_classes):
    """n_classes for a classifier (>= 2), None for an autoencoder."""
    if task == "classify":
        if n_classes is None:
            raise ValueError("a classifier needs n_classes (>= 2)")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        return n_classes
    return None


def hidden_sizes(width=32, depth=1):
    """(width,) * depth: the paper's [8], [32], [64] and 3 x [8] variants."""
    check_positive("width", width)
    check_positive("depth", depth)
    return (width,) * depth


def make_activation(name):
    return nn.activation(check_activation(name))
