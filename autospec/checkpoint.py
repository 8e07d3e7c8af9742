"""Checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one ``.npz`` file (read with ``allow_pickle=False``; never pickle) holding

* ``model/<parameter name>``: the model's weights (``model.state_dict()``),
* ``optimizer/<index>/<name>``: the optimizer's per-parameter arrays (e.g. Adam's moments),
* ``state``: JSON text with the position in training (epoch, batch within it, step), the
  optimizer's counters, the random generators' states (data order and minigrad's generator,
  both NumPy ``bit_generator.state`` dicts) and the settings digest of the run.

It is written atomically (a temporary file beside it, flushed to disk, then renamed), so a run
killed at any moment leaves the previous complete checkpoint or the new one.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .config import ExperimentError

FORMAT_VERSION = 1


class CheckpointError(ExperimentError):
    """A checkpoint file that cannot be read or does not fit the run."""


@dataclass
class TrainingState:
    """Where training stands after ``step`` optimizer steps."""

    epoch: int  # epochs finished
    batch: int  # batches of epoch ``epoch`` finished (0 at an epoch boundary)
    step: int  # optimizer steps taken (= the Introspector's steps seen)
    loss: float  # the loss of the last step (NaN before the first)
    data_rng: dict  # bit_generator.state of the data-order generator at the start of epoch ``epoch``
    model_rng: dict  # bit_generator.state of minigrad's generator (initialisation, dropout) now
    optimizer: dict  # optimizer.state_dict()
    model: dict  # model.state_dict(): {name: array}
    config_digest: str
    wall_seconds: float = 0.0  # training time spent before this checkpoint


def save_checkpoint(path, state):
    """Write ``state`` (a TrainingState) to ``path`` atomically."""
    path = Path(path)
    arrays = {f"model/{name}": np.asarray(value) for name, value in state.model.items()}
    counters = {}
    for key, value in state.optimizer.items():
        if key == "state":
            for index, named in value.items():
                for name, arr in named.items():
                    arrays[f"optimizer/{int(index)}/{name}"] = np.asarray(arr)
        else:
            counters[key] = value
    info = {k: v for k, v in asdict(state).items() if k not in ("model", "optimizer")}
    info.update(format_version=FORMAT_VERSION, optimizer_counters=counters)
    arrays["state"] = np.array(json.dumps(info))
    def write(tmp):
        with open(tmp, "wb") as fh:  # a file object: np.savez would add ".npz" to a path
            np.savez(fh, **arrays)

    atomic_write(path, write)


def load_checkpoint(path):
    """The TrainingState saved at ``path``; CheckpointError when it is damaged or not ours."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        info = json.loads(str(arrays.pop("state")))
        if info.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format version {info.get('format_version')!r}")
        model, optimizer_state = {}, {}
        for key, value in arrays.items():
            kind, _, rest = key.partition("/")
            if kind == "model":
                model[rest] = value
            elif kind == "optimizer":
                index, _, name = rest.partition("/")
                optimizer_state.setdefault(int(index), {})[name] = value
            else:
                raise ValueError(f"unexpected entry {key!r}")
        optimizer = dict(info.pop("optimizer_counters"), state=optimizer_state)
        info.pop("format_version")
        return TrainingState(model=model, optimizer=optimizer, **info)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:  # damaged or foreign
        raise CheckpointError(f"{path}: damaged or foreign checkpoint ({type(exc).__name__}: {exc})") from None


def apply_checkpoint(state, model, optimizer):
    """Load the weights and optimizer state of ``state`` into ``model`` and ``optimizer``."""
    try:
        model.load_state_dict(state.model)
        optimizer.load_state_dict(state.optimizer)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"the checkpoint does not fit this run's model: {exc}") from None
