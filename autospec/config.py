"""The settings of one experiment run: the registry of experiments (``autospec/configs/*.toml``),
the panels of Table 1, :class:`ExperimentConfig` with its validation, ``--set`` assignments and
TOML input/output.

A run's settings are resolved in this order, later winning: the experiment's TOML file, the
panel (Table 1), a user TOML file (``config_file``), explicit overrides (CLI flags).
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AutoSpecError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CONFIG_DIR = Path(__file__).with_name("configs")

#: Table 1 of the paper: the settings each panel letter changes, and what it shows.
PANELS = {
    "A": ({"task": "autoencode", "width": 32, "activation": "relu"}, "auto-encoding, [32], ReLU"),
    "B": ({"task": "classify", "width": 32, "activation": "relu"}, "classification, [32], ReLU"),
    "C": ({"task": "autoencode", "width": 32, "activation": "tanh"}, "auto-encoding, [32], Tanh"),
    "D": ({"task": "autoencode", "width": 32, "activation": "sigmoid"}, "auto-encoding, [32], Sigmoid"),
    "E": ({"task": "autoencode", "width": 8, "activation": "relu"}, "auto-encoding, [8], ReLU"),
    "F": ({"task": "autoencode", "width": 64, "activation": "relu"}, "auto-encoding, [64], ReLU"),
    "G": ({"task": "autoencode", "width": 32, "activation": "relu", "per_sample": True},
          "auto-encoding, group differences"),
    "H": ({"task": "classify", "width": 32, "activation": "relu", "per_sample": True},
          "classification, group differences"),
}
GROUP_PANELS = ("G", "H")
GROUP_BY = ("group", "group+sex", "none")
STANDARDIZE = ("none", "feature", "channel")
OPTIMIZERS = ("adam", "sgd")
#: Settings that change only what is written after training (the summary and the figures), not
#: the record: a run may be continued with other values of these.
PRESENTATION_SETTINGS = ("description", "figures", "figure_formats", "panels", "compare")
#: Bounds that keep one run within reach of one machine (the paper's models have 1-3 layers).
MAX_DEPTH = 64
MAX_EPOCHS = 10_000_000


class ExperimentError(AutoSpecError, ValueError):
    """A bad experiment name, panel, setting, config file or data path."""



# ----------------------------------------------------------------------------- configuration


@dataclass
class ExperimentConfig:
    """Every setting of one run. ``data`` holds the data generator's keyword arguments,
    ``model_options`` extra model arguments (e.g. kernel_size, nhead, ff_mult, dropout)."""

    experiment: str
    panel: str | None = None
    description: str = ""
    dataset: str = "digits"
    data: dict = field(default_factory=dict)
    loader: str | None = None
    data_path: str | None = None
    participants: str | None = None
    standardize: str = "none"
    model: str = "mlp"
    task: str = "autoencode"
    width: int = 32
    depth: int = 1
    activation: str = "relu"
    model_options: dict = field(default_factory=dict)
    epochs: int = 1000
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 0
    seed: int = 0
    device: str = "cpu"
    group_by: str = "group"
    compare: list = field(default_factory=list)
    preset: str = "business"
    quantities: list = field(default_factory=list)
    k: int = 0
    every: int = 0
    per_sample: bool = False
    positions: bool = False
    figures: bool = True
    figure_formats: list = field(default_factory=lambda: ["png", "pdf"])
    panels: list = field(default_factory=lambda: list(PANELS))

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _check_field(f.name, value))
        if self.panel is not None and self.panel not in PANELS:
            raise ExperimentError(f"unknown panel {self.panel!r}; panels are {', '.join(PANELS)} (Table 1)")
        bad = [p for p in self.panels if p not in PANELS]
        if bad:
            raise ExperimentError(f"panels lists unknown panel(s) {bad}; panels are {', '.join(PANELS)}")
        for name, allowed in (("group_by", GROUP_BY), ("standardize", STANDARDIZE), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise ExperimentError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        from models import ARCHITECTURES
        from models.options import check_activation, check_task

        if self.model not in ARCHITECTURES:
            raise ExperimentError(f"model must be one of {', '.join(ARCHITECTURES)}, got {self.model!r}")
        try:
            self.task = check_task(self.task)
            self.activation = check_activation(self.activation)
        except ValueError as exc:
            raise ExperimentError(str(exc)) from None
        from .introspect import PRESETS

        if self.preset not in PRESETS:
            raise ExperimentError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        bad = [q for q in self.quantities if q not in ("G", "A", "D")]
        if bad:
            raise ExperimentError(f"quantities must be chosen from G, A, D, got {bad}")
        for name in ("width", "depth", "epochs"):
            if getattr(self, name) < 1:
                raise ExperimentError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, most in (("depth", MAX_DEPTH), ("epochs", MAX_EPOCHS)):
            if getattr(self, name) > most:
                raise ExperimentError(f"{name} must be <= {most}, got {getattr(self, name)}")
        for name in ("batch_size", "k", "every", "seed"):
            if getattr(self, name) < 0:
                raise ExperimentError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ExperimentError(f"lr must be a positive number, got {self.lr}")
        bad = [f for f in self.figure_formats if f not in ("png", "pdf", "svg")]
        if bad or not self.figure_formats:
            raise ExperimentError(f"figure_formats must list some of png, pdf, svg, got {self.figure_formats}")
        if self.device not in ("cpu", "cuda"):
            raise ExperimentError(f"device must be 'cpu' or 'cuda', got {self.device!r}")

    def to_dict(self):
        """Plain dict of every setting (None kept)."""
        return dataclasses.asdict(self)

    def digest(self):
        """Short hash of the settings: a finished run is reused only when they match exactly."""
        return settings_hash(self.to_dict())

    def run_settings(self):
        """The settings that decide the record (every setting but PRESENTATION_SETTINGS)."""
        return {k: v for k, v in self.to_dict().items() if k not in PRESENTATION_SETTINGS}

    def run_digest(self):
        """Short hash of run_settings(): a run is continued only into a folder whose run matches."""
        return settings_hash(self.run_settings())

    @property
    def label(self):
        return self.experiment + (f" panel {self.panel}" if self.panel else "")


def settings_hash(settings):
    """A short stable hash of a settings dict (hex)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


_FIELD_KIND = {
    "experiment": str, "panel": (str, type(None)), "description": str, "dataset": str, "data": dict,
    "loader": (str, type(None)), "data_path": (str, type(None)), "participants": (str, type(None)),
    "standardize": str, "model": str, "task": str, "width": int, "depth": int, "activation": str,
    "model_options": dict, "epochs": int, "lr": float, "optimizer": str, "batch_size": int, "seed": int,
    "device": str, "group_by": str, "compare": list, "preset": str, "quantities": list, "k": int,
    "every": int, "per_sample": bool, "positions": bool, "figures": bool, "figure_formats": list,
    "panels": list,
}
FIELDS = tuple(_FIELD_KIND)


def _kind_name(kind):
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false", dict: "a table",
             list: "a list", type(None): "absent"}
    return " or ".join(names[k] for k in kinds)


def _check_field(name, value):
    kind = _FIELD_KIND[name]
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, tuple):
        value = list(value)
    if name in ("panel",) and isinstance(value, str):
        value = value.upper()
    if name in ("panels",) and isinstance(value, str):
        value = list(value.upper())
    if name == "device" and isinstance(value, str):
        from minigrad.backend import DeviceError, normalize_device

        try:
            value = normalize_device(value)
        except DeviceError as exc:
            raise ExperimentError(str(exc)) from None
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, kind)
    if ok and isinstance(value, bool) and kind in (int, float):
        ok = False
    if kind is int and isinstance(value, float) and value.is_integer():
        value, ok = int(value), True
    if not ok:
        raise ExperimentError(f"setting {name!r} must be {_kind_name(kind)}, got {value!r}")
    if name in ("compare", "quantities", "panels", "figure_formats"):
        value = [str(v) for v in value]
    if isinstance(value, dict):
        value = dict(value)
    return value


def list_experiments():
    """Names of the registered experiments, sorted."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def experiment_info(name):
    """The registered settings of experiment ``name`` (a dict), or an ExperimentError listing the valid names."""
    path = CONFIG_DIR / f"{name}.toml"
    if not isinstance(name, str) or not name or "/" in name or not path.is_file():
        raise ExperimentError(f"unknown experiment {name!r}; valid experiments are: {', '.join(list_experiments())}")
    settings = _read_toml(path)
    settings["experiment"] = name
    return settings


def _read_toml(path):
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"config file not found: {path}")
    try:
        with open(path, "rb") as fh:
            settings = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ExperimentError(f"config file {path} is not UTF-8 text: {exc}") from None
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise ExperimentError(f"config file {path}: unknown setting(s) {unknown}; valid settings are "
                              f"{', '.join(FIELDS)}")
    return settings


def load_config_file(path):
    """The settings of a user TOML file (same keys as the registry's files; any subset)."""
    return _read_toml(path)


def parse_assignment(text):
    """``"KEY=VALUE"`` -> (key path list, value); VALUE is read as TOML (``3``, ``1e-3``, ``true``,
    ``[16, 16, 16]``, ``"text"``), or taken as a plain string when it is not TOML."""
    if "=" not in text:
        raise ExperimentError(f"--set expects KEY=VALUE (e.g. data.n=100 or lr=0.01), got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    path = key.split(".")
    if not key or any(not part for part in path) or len(path) > 2:
        raise ExperimentError(f"--set: bad key {key!r}; use a setting name or table.name (e.g. data.n)")
    if path[0] not in FIELDS:
        raise ExperimentError(f"--set: unknown setting {path[0]!r}; valid settings are {', '.join(FIELDS)}")
    if len(path) == 2 and _FIELD_KIND[path[0]] is not dict:
        raise ExperimentError(f"--set: {path[0]!r} is not a table, so {key!r} has no meaning")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def merge_settings(base, update):
    """``base`` updated by ``update``; tables (e.g. ``data``) are merged key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def resolve_config(experiment=None, panel=None, config_file=None, overrides=None):
    """The ExperimentConfig of one run: the registered experiment, then the panel's Table 1
    settings, then a user TOML file, then ``overrides`` (a dict; nested dicts merge into tables).

    ``experiment`` may be omitted when the config file names it (``experiment = "..."``).
    """
    user = load_config_file(config_file) if config_file is not None else {}
    overrides = dict(overrides or {})
    name = experiment or overrides.get("experiment") or user.get("experiment")
    if not name:
        raise ExperimentError(f"name an experiment (one of {', '.join(list_experiments())}) or give a config "
                              f"file with experiment = \"...\"")
    settings = experiment_info(name)
    panel = panel or overrides.get("panel") or user.get("panel")
    if panel is not None:
        panel = str(panel).upper()
        available = [str(p).upper() for p in settings.get("panels", list(PANELS))]
        if panel not in PANELS:
            raise ExperimentError(f"unknown panel {panel!r}; panels are {', '.join(PANELS)} (Table 1: "
                                  + "; ".join(f"{k} {v[1]}" for k, v in PANELS.items()) + ")")
        if panel not in available:
            raise ExperimentError(f"experiment {name!r} has no panel {panel}; its panels are {', '.join(available)}")
        settings = merge_settings(settings, PANELS[panel][0])
    settings = merge_settings(settings, user)
    settings = merge_settings(settings, overrides)
    if settings.get("data_path") and all(isinstance(t.get("data", {}), dict) for t in (user, overrides)):
        # the registry's [data] table configures the generator; with --data only the options the
        # user gave apply (to the loader)
        settings["data"] = {**user.get("data", {}), **overrides.get("data", {})}
    settings["experiment"], settings["panel"] = name, panel
    try:
        config = ExperimentConfig(**settings)
    except TypeError as exc:  # a key the dataclass does not know (cannot happen after _read_toml, but overrides)
        raise ExperimentError(f"bad settings: {exc}") from None
    _check_data_settings(config)
    return config


def _check_data_settings(config):
    """The data table must fit the generator (checked before any work; --data loaders take only n)."""
    from .datasets import dataset_function, list_datasets

    if config.data_path:
        return
    if config.dataset not in list_datasets():
        raise ExperimentError(f"unknown dataset {config.dataset!r}; data sets are {', '.join(list_datasets())}")
    factory = dataset_function(config.dataset)
    accepted = inspect.signature(factory).parameters
    unknown = sorted(set(config.data) - set(accepted))
    if unknown:
        raise ExperimentError(f"{config.experiment}: data setting(s) {unknown} do not apply to data set "
                              f"{config.dataset!r}, whose generator {factory.__name__} takes {', '.join(accepted)}")


# ----------------------------------------------------------------------------- TOML output


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")


def _toml_key(key):
    key = str(key)
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def config_to_toml(config, header=None):
    """TOML text of a config (an ExperimentConfig or a dict); None values are left out."""
    data = config.to_dict() if isinstance(config, ExperimentConfig) else dict(config)
    lines = [f"# {line}" for line in (header or "").splitlines()]
    tables = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, table in tables:
        lines += ["", f"[{_toml_key(key)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- comparing settings


def result_settings(settings):
    """The settings that change results, flat: tables become dotted names (``data.n``)."""
    flat = {}
    for key, value in settings.items():
        if key in PRESENTATION_SETTINGS:
            continue
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": _canonical(v) for k, v in value.items()})
        else:
            flat[key] = _canonical(value)
    return flat


def _canonical(value):
    return json.loads(json.dumps(value, default=str))


def differing_settings(old, new):
    """{dotted name: (old value, new value)} of the result settings that differ (None = unset)."""
    a, b = result_settings(old), result_settings(new)
    return {key: (a.get(key), b.get(key)) for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)}


def describe_differences(differences):
    """``"epochs 2 -> 3, data.n unset -> 20"`` for the output of :func:`differing_settings`."""
    def show(value):
        return "unset" if value is None else json.dumps(value)

    return ", ".join(f"{key} {show(old)} -> {show(new)}" for key, (old, new) in differences.items())
