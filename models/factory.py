"""Build any of the paper's models by name.

    build_model("mlp", task="autoencode", input_shape=(64,), width=32, depth=1)
    build_model("lstm", task="classify", input_shape=(150, 53), n_classes=2, activation="tanh")

``input_shape`` is one sample's shape without the batch axis, in the layout the model reads:
MLP (features,), CNN1D/2D/3D (channels, *spatial), ElmanRNN/LSTM/BERT (time, features).
"""
from .bert import BERT
from .cnn import CNN1D, CNN2D, CNN3D
from .mlp import MLP
from .options import ARCHITECTURES, check_hidden, hidden_sizes
from .recurrent import LSTM, ElmanRNN


def build_model(arch, task="classify", input_shape=None, n_classes=None, width=32, depth=1,
                activation="relu", hidden=None, **options):
    """A model of architecture ``arch`` (one of ARCHITECTURES) for one sample shape ``input_shape``.

    ``hidden`` (a tuple of sizes) overrides ``width``/``depth``. ``options`` go to the model
    class (e.g. ``kernel_size`` for CNNs, ``nhead``/``ff_mult``/``dropout`` for BERT).
    """
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
