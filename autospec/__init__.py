"""autospec: singular-value spectra of every layer's gradient G and its factors
A and D during training, per group of samples, with statistics and figures.

Everything loads on first use, so ``import autospec`` is cheap and pulls in
neither matplotlib nor h5py until they are needed.
"""
import importlib

__version__ = "0.1.0"

_LAZY = {
    "svdvals": ("linalg", "svdvals"),
    "gradient_svdvals": ("linalg", "gradient_svdvals"),
    "topk_svdvals": ("linalg", "topk_svdvals"),
    "TopKTracker": ("linalg", "TopKTracker"),
    "NonFiniteError": ("linalg", "NonFiniteError"),
    "noise_floor": ("linalg", "noise_floor"),
    "gradient_noise_floor": ("linalg", "gradient_noise_floor"),
    "AutoSpecError": ("errors", "AutoSpecError"),
    "GroupError": ("groups", "GroupError"),
    "Record": ("record", "Record"),
    "RecordError": ("record", "RecordError"),
    "load_record": ("record", "load_record"),
    "from_npz": ("record", "from_npz"),
    "Introspector": ("introspect", "Introspector"),
    "PRESETS": ("introspect", "PRESETS"),
    "IntrospectorError": ("introspect", "IntrospectorError"),
    "LiveError": ("live", "LiveError"),
}
_SUBMODULES = ("plot", "stats", "calibration", "datasets", "experiments", "introspect", "linalg", "record", "errors",
               "sweep", "live", "cli")

__all__ = sorted(_LAZY) + list(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'autospec' has no attribute {name!r}")


def __dir__():
    return __all__
