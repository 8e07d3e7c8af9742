"""The paper's experiment battery: a registry of experiments (Table 2) x panels (Table 1), their
configuration, and one function that runs one of them end to end.

    cfg = resolve_config("digits-mlp", panel="G", overrides={"epochs": 300})
    result = run_experiment(cfg, "runs/digits-mlp-G")
    result.record_path, result.summary_path, result.figure_paths

Every experiment is one TOML file in ``autospec/configs`` (the single source of its defaults).
A run's settings are resolved in this order, later winning: the experiment's TOML file, the
panel (Table 1), a user TOML file (``config_file``), explicit overrides (CLI flags).

How we read the paper where it is ambiguous or silent:

* Panels follow Table 1: A AE [32] ReLU, B classifier [32] ReLU, C AE tanh, D AE sigmoid,
  E AE [8], F AE [64], G AE with group differences, H classifier with group differences. The
  Results text's "C tanh vs D relu" contradicts Table 1 (D = sigmoid); Table 1 wins.
* The Methods text calls the variants "wide/shallow (1 layer with 128 neurons)" and "deep/thin
  (3 layers with 8 neurons)", while Table 1 lists [8] and [64]. Panels E/F use Table 1 (one
  hidden layer of 8 / 64); ``depth=3`` (``--depth 3``) gives the text's deep/thin 3 x 8 and
  ``width=128`` its wide/shallow variant.
* "Group differences" panels G/H train exactly as A/B (same seed, so the same trajectory) but
  also record per-sample values, so that sound per-sample tests (not only the paper's t-tests
  over singular values / steps) can be run; their figures are group-difference maps.
* The learning rate is missing from the paper's text ("a learning rate of ,"): we use Adam with
  lr = 1e-3. Training is full batch (``batch_size = 0``), 1000 epochs, ReLU, seed 0, mean loss
  reduction (MSE for auto-encoding, cross entropy for classification), as the paper says.
* The seed drives model initialization (and mini-batch order); the data generator has its own
  ``data.seed`` so that runs with different seeds see the same subjects.
* For the LSTM (whose gates fix their own nonlinearities) the panel's activation is applied to
  each layer's output sequence; for BERT it is the feed-forward activation; for the Elman RNN
  it is the cell's nonlinearity.
* Groups: SZ/HC for the neuroimaging data, class labels for digits and sinusoids. Group tests
  compare every pair of groups unless ``compare`` names the groups to compare.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import AutoSpecError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = [
    "PANELS", "ExperimentConfig", "ExperimentError", "RunInterrupted", "RunResult",
    "list_experiments", "experiment_info", "resolve_config", "load_config_file", "parse_assignment",
    "config_to_toml", "load_experiment_data", "load_npz_dataset", "run_experiment", "read_status",
    "describe_stale", "write_figures", "write_summary",
]

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


class ExperimentError(AutoSpecError, ValueError):
    """A bad experiment name, panel, setting, config file or data path."""


class RunInterrupted(Exception):
    """A run stopped by Ctrl-C / SIGTERM; ``status`` says where (the record keeps every step)."""

    def __init__(self, status):
        super().__init__(f"interrupted at epoch {status.get('epoch')} of {status.get('epochs')} "
                         f"(step {status.get('step')})")
        self.status = status


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
        from models._factory import check_activation, check_task

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
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def label(self):
        return self.experiment + (f" panel {self.panel}" if self.panel else "")


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


def _merge(base, update):
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
        settings = _merge(settings, PANELS[panel][0])
    settings = _merge(settings, user)
    settings = _merge(settings, overrides)
    settings["experiment"], settings["panel"] = name, panel
    try:
        config = ExperimentConfig(**settings)
    except TypeError as exc:  # a key the dataclass does not know (cannot happen after _read_toml, but overrides)
        raise ExperimentError(f"bad settings: {exc}") from None
    _check_data_settings(config)
    return config


def _check_data_settings(config):
    """The data table must fit the generator (checked before any work; --data loaders take only n)."""
    from .datasets import _registry

    if config.data_path:
        return
    if config.dataset not in _registry._DATASETS:
        raise ExperimentError(f"unknown dataset {config.dataset!r}; data sets are "
                              f"{', '.join(_registry.list_datasets())}")
    factory = _registry._DATASETS[config.dataset][0]
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


# ----------------------------------------------------------------------------- data


def _participants_for(config, folder):
    if config.participants:
        return Path(config.participants)
    for name in ("participants.csv", "participants.tsv"):
        if (folder / name).is_file():
            return folder / name
    raise ExperimentError(f"{config.experiment}: --data {folder} needs a participants table with subject and "
                          f"group columns: put participants.csv (or .tsv) in that folder or pass --participants FILE")


def _find_one(folder, patterns, what):
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    raise ExperimentError(f"no {what} in {folder} (looked for {', '.join(patterns)})")


def _call_loader(fn, *args, **kwargs):
    """Call a loader with the keyword arguments it accepts."""
    accepted = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in kwargs.items() if k in accepted})


def load_npz_dataset(path, name="npz"):
    """A Dataset from an .npz file with arrays X (N, ...), y (N,) and optionally groups (N,)."""
    from .datasets import Dataset

    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise ExperimentError(f"{path}: cannot read as .npz ({exc})") from None
    missing = [key for key in ("X", "y") if key not in arrays]
    if missing:
        raise ExperimentError(f"{path}: the .npz needs arrays X and y (and optionally groups); "
                              f"missing {missing}, found {sorted(arrays)}")
    groups = arrays.get("groups", arrays["y"])
    return Dataset(arrays["X"], arrays["y"], np.asarray(groups).astype(str), name, {"source": str(path)})


def _load_real(config):
    from . import datasets as ds

    path = Path(config.data_path).expanduser()
    if not path.exists():
        raise ExperimentError(f"--data {path}: no such file or folder")
    if path.is_file() and path.suffix == ".npz":
        return load_npz_dataset(path, config.dataset)
    loader, opts = config.loader, config.data
    if loader is None:
        raise ExperimentError(f"experiment {config.experiment!r} has no real-data loader; --data takes an .npz "
                              f"file with arrays X, y (and groups)")
    if loader == "mnist":
        if path.is_file():
            raise ExperimentError(f"--data {path}: give the folder holding the MNIST IDX files "
                                  f"(train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])")
        images = _find_one(path, ("train-images*idx3*", "*images*idx3*"), "MNIST images file (*-images-idx3-ubyte)")
        labels = _find_one(path, ("train-labels*idx1*", "*labels*idx1*"), "MNIST labels file (*-labels-idx1-ubyte)")
        return _call_loader(ds.load_mnist_idx, images, labels, **opts)
    if loader == "freesurfer":
        if path.is_file() and path.suffix.lower() in (".csv", ".tsv", ".txt"):
            return ds.load_volume_csv(path)
        folder = path if path.is_dir() else path.parent
        return ds.load_aseg_stats(path, _participants_for(config, folder))
    if loader == "gift_timecourses":
        if not path.is_dir():
            raise ExperimentError(f"--data {path}: give the folder of GIFT *timecourses* files")
        return ds.load_gift_timecourses(path, _participants_for(config, path))
    if loader == "gift_spatial_maps":
        folder = path if path.is_dir() else path.parent
        return ds.load_spatial_maps(path, _participants_for(config, folder))
    raise ExperimentError(f"unknown loader {loader!r}; loaders are mnist, freesurfer, gift_timecourses, "
                          f"gift_spatial_maps (or give an .npz file)")


def _model_layout(X, arch):
    """Samples of the dataset's layout -> the layout the model reads (see models.build_model)."""
    n = X.shape[0]
    if arch == "mlp":
        return X.reshape(n, -1)
    if arch in ("rnn", "lstm", "bert"):
        if X.ndim == 2:
            return X[:, :, None]
        if X.ndim == 3:
            return X
    if arch == "cnn1d":
        if X.ndim == 2:
            return X[:, None, :]
        if X.ndim == 3:
            return np.ascontiguousarray(X.transpose(0, 2, 1))  # (N, T, C) -> (N, C, T): components as channels
    if arch == "cnn2d":
        if X.ndim == 2:
            side = math.isqrt(X.shape[1])
            if side * side == X.shape[1]:
                return X.reshape(n, 1, side, side)
        if X.ndim == 3:
            return X[:, None]
        if X.ndim == 4:
            return X
    if arch == "cnn3d":
        if X.ndim == 4:
            return X[:, None]
        if X.ndim == 5:
            return X
    raise ExperimentError(f"model {arch!r} cannot read samples of shape {X.shape[1:]}")


def load_experiment_data(config):
    """(Dataset, model-ready X (numpy), group labels or None, description dict) of a config."""
    from . import datasets as ds

    if config.data_path:
        data = _load_real(config)
        source = str(config.data_path)
    else:
        try:
            data = ds.get_dataset(config.dataset, **config.data)
        except TypeError as exc:
            raise ExperimentError(str(exc)) from None
        source = "generated"
    if config.standardize == "feature":
        data = data.standardize(axis=0)
    elif config.standardize == "channel":
        data = data.standardize(axis=tuple(range(data.X.ndim - 1)))
    X = _model_layout(data.X, config.model)
    if config.group_by == "none":
        groups = None
    elif config.group_by == "group+sex":
        sex = data.meta.get("sex")
        if sex is None:
            raise ExperimentError(f"group_by = 'group+sex' needs per-subject sex labels, which data set "
                                  f"{data.name!r} does not have")
        groups = np.char.add(np.char.add(data.groups.astype(str), "-"), np.asarray(sex).astype(str))
    else:
        groups = data.groups
    names, counts = np.unique(groups if groups is not None else np.array([]), return_counts=True)
    description = {
        "name": data.name, "source": source, "loader": config.loader if config.data_path else None,
        "generator_kwargs": config.data if not config.data_path else None,
        "shape": list(data.X.shape), "model_input_shape": list(X.shape), "n_samples": int(X.shape[0]),
        "n_classes": int(data.y.max()) + 1 if len(data.y) else 0,
        "group_by": config.group_by, "group_counts": {str(g): int(c) for g, c in zip(names, counts)},
        "standardize": config.standardize, "params": data.meta.get("params"),
    }
    return data, X, groups, description


# ----------------------------------------------------------------------------- status


def _write_json(path, payload):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)


def read_status(out_dir):
    """The run's status.json as a dict (state: running/finished/interrupted/failed), or None."""
    path = Path(out_dir) / "status.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def describe_stale(status):
    """A sentence about a previous run that did not finish, or None."""
    if not status or status.get("state") == "finished":
        return None
    state = status.get("state")
    if state in ("running", "writing"):
        state = "stopped without finishing (killed?)"
    return (f"previous run {state} at epoch {status.get('epoch')} of {status.get('epochs')} "
            f"(step {status.get('step')}, {status.get('steps_recorded', '?')} steps recorded)")


# ----------------------------------------------------------------------------- running


@dataclass
class RunResult:
    """What one run produced."""

    config: ExperimentConfig
    out_dir: Path
    record_path: Path
    status: dict
    final_loss: float
    accuracy: float | None
    wall_seconds: float
    summary_path: Path | None = None
    summary_text: str | None = None
    summary: object = None
    figure_paths: list = field(default_factory=list)


def _say(quiet, *args):
    if not quiet:
        from tqdm import tqdm

        tqdm.write(" ".join(str(a) for a in args), file=sys.stdout)


def _build(config, X, data):
    import minigrad as mg
    from minigrad import nn, optim
    from models import build_model

    mg.manual_seed(config.seed)
    n_classes = int(data.y.max()) + 1 if config.task == "classify" else None
    if config.task == "classify" and n_classes < 2:
        raise ExperimentError(f"classification needs at least 2 classes; the data has labels {np.unique(data.y)}")
    try:
        model = build_model(config.model, config.task, X.shape[1:], n_classes=n_classes, width=config.width,
                            depth=config.depth, activation=config.activation, **config.model_options)
    except TypeError as exc:
        raise ExperimentError(f"model_options {config.model_options}: {exc}") from None
    model.to(config.device)
    opt_cls = optim.Adam if config.optimizer == "adam" else optim.SGD
    optimizer = opt_cls(model.parameters(), lr=config.lr)
    loss_fn = nn.MSELoss() if config.task == "autoencode" else nn.CrossEntropyLoss()
    return model, optimizer, loss_fn


def _introspector(config, model, path, metadata):
    from .introspect import Introspector

    kwargs = {"preset": config.preset, "path": path, "metadata": metadata}
    if config.quantities:
        kwargs["quantities"] = tuple(config.quantities)
    if config.k:
        kwargs["k"] = config.k
    if config.every:
        kwargs["every"] = config.every
    if config.per_sample:
        kwargs["per_sample"] = True
    if config.positions:
        kwargs["positions"] = True
    return Introspector(model, **kwargs)


def _batches(n, batch_size, rng):
    if not batch_size or batch_size >= n:
        return [slice(None)]
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def run_experiment(config, out_dir, quiet=False, progress=None):
    """Train ``config``'s model on its data with the Introspector on every step, then write
    OUT/record.h5 (file-backed, so an interrupted run keeps its steps), OUT/summary.txt (group
    findings), OUT/figures/*.png|pdf and OUT/config.toml; OUT/status.json says how far it got.

    ``quiet`` silences log lines and the progress bar (``progress`` overrides the bar alone).
    Ctrl-C raises :class:`RunInterrupted` after marking the status "interrupted".
    Returns a :class:`RunResult`.
    """
    import minigrad as mg
    from minigrad.backend import DeviceError, xp_for
    from tqdm import tqdm

    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig (see resolve_config), got {type(config).__name__}")
    try:
        xp_for(config.device)  # a clear error before any work when cuda is asked for without a GPU
    except DeviceError as exc:
        raise ExperimentError(str(exc)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous = read_status(out)
    if (previous and previous.get("state") in ("running", "writing") and previous.get("pid") != os.getpid()
            and _pid_alive(previous.get("pid"))):
        raise ExperimentError(f"{out} is in use by another run (process {previous.get('pid')}, epoch "
                              f"{previous.get('epoch')} of {previous.get('epochs')}); wait for it or choose "
                              f"another --out")
    stale = describe_stale(previous)
    if stale:
        _say(quiet, f"{out}: {stale}; starting over")
    status_path, record_path = out / "status.json", out / "record.h5"
    status = {"state": "running", "experiment": config.experiment, "panel": config.panel, "seed": config.seed,
              "config_digest": config.digest(), "epoch": 0, "epochs": config.epochs, "step": 0,
              "steps_recorded": 0, "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "wall_seconds": 0.0, "record": record_path.name}
    _write_json(status_path, status)
    (out / "config.toml").write_text(config_to_toml(config, header=f"autospec run {config.label}: resolved settings"))
    start = time.perf_counter()

    def update(**changes):
        status.update(changes, wall_seconds=round(time.perf_counter() - start, 3))
        _write_json(status_path, status)

    try:
        data, X, groups, description = load_experiment_data(config)
        model, optimizer, loss_fn = _build(config, X, data)
    except Exception as exc:
        update(state="failed", message=str(exc))
        raise
    target = data.y if config.task == "classify" else None
    metadata = {
        "experiment": config.label, "experiment_name": config.experiment, "panel": config.panel,
        "panel_description": PANELS[config.panel][1] if config.panel else None,
        "config": config.to_dict(), "data": description, "seed": config.seed,
        "loss": type(loss_fn).__name__, "loss_reduction": loss_fn.reduction,
        "optimizer": {"name": config.optimizer, "lr": config.lr}, "batch_size": config.batch_size or None,
        "n_parameters": int(sum(math.prod(p.shape) for p in model.parameters())),
    }
    spec = _introspector(config, model, record_path, metadata)
    xs = mg.tensor(X, device=config.device)
    targets = mg.tensor(target, device=config.device) if target is not None else xs
    rng = np.random.default_rng(config.seed)
    show_bar = (not quiet) if progress is None else bool(progress)
    log_every = max(1, config.epochs // 10)
    step, loss_value, epoch = 0, float("nan"), 0
    _say(quiet, f"{config.label}: {config.model} {config.task} width {config.width} depth {config.depth} "
                f"{config.activation}; data {description['name']} {tuple(X.shape)}, groups "
                f"{description['group_counts'] or 'none'}; {config.epochs} epochs on {config.device}")
    try:
        bar = tqdm(range(config.epochs), desc=config.label, unit="epoch", disable=not show_bar,
                   file=sys.stderr, mininterval=0.5, leave=False)
        for epoch in bar:
            for idx in _batches(X.shape[0], config.batch_size, rng):
                full = isinstance(idx, slice)
                x = xs if full else xs[idx]
                t = targets if full else targets[idx]
                labels = groups if full or groups is None else groups[idx]
                loss = loss_fn(model(x), t)
                loss_value = float(loss.item())
                if not math.isfinite(loss_value):
                    raise ExperimentError(f"training diverged: the loss is {loss_value} at epoch {epoch + 1} "
                                          f"(step {step + 1}); try a smaller learning rate (--lr)")
                optimizer.zero_grad()
                with spec.step(groups=labels, loss=loss):
                    loss.backward()
                optimizer.step()
                step += 1
            update(epoch=epoch + 1, step=step, steps_recorded=len(spec.record), loss=loss_value)
            bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
            if epoch == 0 or (epoch + 1) % log_every == 0 or epoch + 1 == config.epochs:
                _say(quiet, f"  epoch {epoch + 1:>5}/{config.epochs}  loss {loss_value:.6g}")
        bar.close()
    except KeyboardInterrupt:
        spec.close()
        update(state="interrupted", steps_recorded=_steps_in(record_path))
        raise RunInterrupted(status) from None
    except BaseException as exc:
        spec.close()
        update(state="failed", message=str(exc))
        raise
    accuracy = None
    if config.task == "classify":
        with mg.no_grad():
            logits = model(xs).numpy()
        accuracy = float(np.mean(np.argmax(logits, axis=1) == data.y))
    spec.close()
    train_seconds = time.perf_counter() - start
    update(state="writing", train_seconds=round(train_seconds, 3), loss=loss_value, accuracy=accuracy)
    result = RunResult(config, out, record_path, status, loss_value, accuracy, 0.0)
    try:
        from .record import load_record

        rec = load_record(record_path)
        result.summary_path, result.summary_text, result.summary = write_summary(rec, out / "summary.txt", config,
                                                                                 result)
        if config.figures:
            result.figure_paths = write_figures(rec, out / "figures", panel=config.panel, compare=config.compare,
                                                formats=config.figure_formats)
    except KeyboardInterrupt:
        update(state="interrupted")
        raise RunInterrupted(status) from None
    except BaseException as exc:
        update(state="failed", message=f"writing results: {exc}")
        raise
    result.wall_seconds = time.perf_counter() - start
    update(state="finished", wall_seconds=round(result.wall_seconds, 3))
    _say(quiet, f"wrote {record_path} ({len(rec)} steps), {result.summary_path}, "
                f"{len(result.figure_paths)} figure files in {out / 'figures'}; {result.wall_seconds:.1f} s")
    return result


def _steps_in(record_path):
    try:
        from .record import load_record

        return len(load_record(record_path))
    except Exception:  # an unreadable partial file: the status still says where training stopped
        return None


# ----------------------------------------------------------------------------- summary and figures


def _summary(rec, compare):
    """stats.summarize over every (layer, quantity) that can be tested; untestable ones (e.g. a
    spectrum of one singular value) are listed in ``skipped``. Returns (Summary or None, skipped)."""
    from . import stats

    if len(rec.groups) < 2 and rec.sample_groups is None:
        return None, []
    groups = list(compare) if compare else None
    rows, results, skipped = [], [], []

    def add(mode, layers, quantities):
        try:
            part = stats.summarize(rec, groups=groups, fdr=True, layers=layers, quantities=quantities, mode=mode)
        except ValueError as exc:
            skipped.append(f"{layers} {quantities or ''} ({mode}): {exc}")
            return
        rows.extend(part.rows)
        results.extend(part.results)

    if len(rec.groups) >= 2:
        for layer in rec.layers:
            for quantity in rec.quantities:
                add("paper", layer, quantity)
    if rec.sample_groups is not None:
        for layer in rec.per_sample_layers:
            add("per_sample", layer, None)
    return stats.Summary(rows, results, 0.05, True, "bh"), skipped


def write_summary(rec, path, config=None, result=None):
    """Write the group findings of a record (stats.summarize) to ``path``; returns (path, text, Summary or None)."""
    meta = rec.metadata or {}
    lines = [f"AutoSpec run: {meta.get('experiment', '?')}"]
    if meta.get("panel_description"):
        lines.append(f"panel: {meta['panel_description']}")
    data = meta.get("data") or {}
    if data:
        lines.append(f"data: {data.get('name')} ({data.get('source')}), input {data.get('model_input_shape')}, "
                     f"groups {data.get('group_counts')}")
    lines.append(f"steps recorded: {len(rec)}; loss reduction: {meta.get('loss_reduction', '?')}")
    if result is not None:
        lines.append(f"final loss: {result.final_loss:.6g}"
                     + (f"; training accuracy: {result.accuracy:.3f}" if result.accuracy is not None else ""))
    compare = config.compare if config is not None else (meta.get("config") or {}).get("compare")
    summary, skipped = _summary(rec, compare)
    lines.append("")
    if summary is None:
        lines.append("no group comparison: the record holds fewer than two groups")
    else:
        lines.append(summary.to_text())
        if skipped:
            lines += ["", "not tested:"] + [f"  {item}" for item in skipped]
    text = "\n".join(lines) + "\n"
    Path(path).write_text(text)
    return Path(path), text, summary


def _figure_pair(rec, compare):
    groups = [str(g) for g in rec.groups]
    chosen = [g for g in (compare or []) if g in groups] or groups
    return tuple(chosen[:2]) if len(chosen) >= 2 else None


def write_figures(rec, folder, panel=None, compare=None, group_differences=None, quantities=("G",),
                  formats=("png", "pdf")):
    """Figures of one record in ``folder`` (each as PNG and PDF by default): a dashboard, the
    trajectories of each of ``quantities`` (whole batch; None = every recorded quantity) and, for
    group panels (G, H; or ``group_differences=True``), per-layer group-difference maps of G
    (per-sample tests where the record has per-sample values). Returns the paths written."""
    from . import plot

    folder = Path(folder)
    written = []

    def save(fig, name):
        written.extend(plot.save_figure(fig, folder / name, formats=tuple(formats)))
        fig.clear()

    save(plot.plot_dashboard(rec, quantity="G"), "dashboard")
    for quantity in (rec.quantities if quantities is None else [q for q in quantities if q in rec.quantities]):
        save(plot.plot_trajectories(rec, quantity=quantity), f"trajectories_{quantity}")
    if group_differences is None:
        group_differences = panel in GROUP_PANELS
    pair = _figure_pair(rec, compare)
    if group_differences and pair is not None:
        per_sample = rec.sample_groups is not None and len(rec.per_sample_layers) > 0
        for layer in rec.layers:
            mode = "per_sample" if per_sample and layer in rec.per_sample_layers else "paper"
            fig = plot.plot_group_differences(rec, layer, "G", groups=pair, mode=mode)
            save(fig, f"group_differences_{layer.replace('/', '_')}")
    return written
