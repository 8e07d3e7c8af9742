"""Build any of the paper's models by name, and the checks every model shares.

    build_model("mlp", task="autoencode", input_shape=(64,), width=32, depth=1)
    build_model("lstm", task="classify", input_shape=(150, 53), n_classes=2, activation="tanh")

``input_shape`` is one sample's shape without the batch axis, in the layout the model reads:
MLP (features,), CNN1D/2D/3D (channels, *spatial), ElmanRNN/LSTM/BERT (time, features).
Hidden sizes are ``(width,) * depth``: the paper's widths 8, 32 (default) and 64 are
``width=8/32/64, depth=1``; its "deep/thin" variant is ``width=8, depth=3``.
"""
import math

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


def build_model(arch, task="classify", input_shape=None, n_classes=None, width=32, depth=1,
                activation="relu", hidden=None, **options):
    """A model of architecture ``arch`` (one of ARCHITECTURES) for one sample shape ``input_shape``.

    ``hidden`` (a tuple of sizes) overrides ``width``/``depth``. ``options`` go to the model
    class (e.g. ``kernel_size`` for CNNs, ``nhead``/``ff_mult``/``dropout`` for BERT).
    """
    from .bert import BERT
    from .cnn import CNN1D, CNN2D, CNN3D
    from .mlp import MLP
    from .recurrent import LSTM, ElmanRNN

    key = str(arch).lower()
    if key not in ARCHITECTURES:
        raise ValueError(f"unknown model {arch!r}: use one of {', '.join(ARCHITECTURES)}")
    if input_shape is None:
        raise ValueError(f"build_model({arch!r}) needs input_shape (one sample's shape, no batch axis)")
    shape = tuple(int(s) for s in input_shape)
    hidden = check_hidden(hidden) if hidden is not None else hidden_sizes(width, depth)
    common = dict(hidden=hidden, n_classes=n_classes, activation=activation, task=task)
    expected = {"mlp": 1, "cnn1d": 2, "cnn2d": 3, "cnn3d": 4, "rnn": 2, "lstm": 2, "bert": 2}[key]
    if len(shape) != expected:
        layouts = {1: "(features,)", 2: "(time, features)" if key in ("rnn", "lstm", "bert") else "(channels, length)",
                   3: "(channels, height, width)", 4: "(channels, depth, height, width)"}
        raise ValueError(f"model {key!r} reads samples of shape {layouts[expected]}, got input_shape {shape}")
    if key == "mlp":
        return MLP(shape[0], **common, **options)
    if key.startswith("cnn"):
        cls = {"cnn1d": CNN1D, "cnn2d": CNN2D, "cnn3d": CNN3D}[key]
        return cls(shape[0], shape[1:], **common, **options)
    if key == "rnn":
        return ElmanRNN(shape[1], **common, **options)
    if key == "lstm":
        return LSTM(shape[1], **common, **options)
    return BERT(shape[1], shape[0], **common, **options)


def count_parameters(model):
    """Number of scalar parameters of a model."""
    return sum(math.prod(p.shape) for p in model.parameters())
