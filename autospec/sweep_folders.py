"""Run folders of a sweep keyed by settings: which settings change results, the fingerprint
that names a changed grid's folders, and what a run folder already holds (a finished run, an
unfinished one, or a run with other settings)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from .config import describe_differences, differing_settings, merge_settings, result_settings, settings_hash

#: Settings that name a run in the grid rather than change it.
_GRID_KEYS = frozenset({"experiment", "panel", "seed"})


# ----------------------------------------------------------------------------- settings as keys


def settings_fingerprint(changes):
    """8 hex digits naming a set of changed settings (the folder suffix of a changed grid)."""
    return settings_hash(changes)[:8]


def grid_changes(name, config_file, overrides):
    """The result settings a grid's request (config file + overrides) changes for experiment
    ``name``: entries equal to the registered value for every one of its panels are dropped."""
    from .experiments import experiment_info, load_config_file, resolve_config

    request = merge_settings(dict(load_config_file(config_file)) if config_file is not None else {}, overrides or {})
    asked = {k: v for k, v in result_settings(request).items() if k.split(".")[0] not in _GRID_KEYS}
    if not asked:
        return {}
    panels = [str(p).upper() for p in experiment_info(name).get("panels", [])] or [None]
    defaults = [result_settings(resolve_config(name, panel=p).to_dict()) for p in panels]
    changed = [key for key, value in asked.items() if any(d.get(key) != value for d in defaults)]
    # the values as the settings hold them (so --lr 1 and --set lr=1.0 name the same folder)
    resolved = result_settings(resolve_config(name, panel=panels[0], config_file=config_file,
                                              overrides=overrides).to_dict())
    return {key: resolved.get(key) for key in sorted(changed)}


# ----------------------------------------------------------------------------- what a run folder holds


def stored_settings(out_dir):
    """The settings a run folder's record was made with (its metadata), or None when the
    folder holds no readable record."""
    from .errors import AutoSpecError
    from .record import load_record

    path = Path(out_dir) / "record.h5"
    if not path.is_file():
        return None
    try:
        config = (load_record(path).metadata or {}).get("config")
    except (AutoSpecError, OSError):
        return None
    return config if isinstance(config, dict) else None


def folder_state(job):
    """What ``job``'s folder holds: ("empty", None), ("finished", None), ("unfinished", None) for a
    run of these settings that did not finish, or ("other", text) for a run with other settings
    (text names the differences) or one whose settings cannot be read."""
    from .experiments import ExperimentConfig, read_status

    folder = Path(job.out_dir)
    status = read_status(folder)
    has_record = (folder / "record.h5").is_file()
    if status is None and not has_record:
        return "empty", None
    finished = bool(status) and status.get("state") == "finished" and has_record
    if status and status.get("run_digest") == ExperimentConfig(**job.settings).run_digest():
        return ("finished" if finished else "unfinished"), None
    if not has_record:  # a run that failed before training: nothing of value to keep
        return "unfinished", None
    stored = stored_settings(folder)
    if stored is None:
        return "other", "its record's settings cannot be read"
    differences = differing_settings(stored, job.settings)
    if differences:
        return "other", describe_differences(differences)
    return ("finished" if finished else "unfinished"), None


def is_finished(job):
    """True when the job's folder holds a finished run with these settings (up to figure settings)."""
    return folder_state(job)[0] == "finished"


def move_aside(folder):
    """Rename ``folder`` to ``<folder>.bak-YYYYmmdd-HHMMSS[-n]`` beside it (never over anything);
    returns the new path."""
    folder = Path(folder)
    stem = f"{folder.name}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
    target, n = folder.with_name(stem), 1
    while target.exists():
        target, n = folder.with_name(f"{stem}-{n}"), n + 1
    folder.rename(target)
    return target


def run_state(out_dir):
    """A run's state from its status.json: {"state": "finished" | "interrupted" | "failed" |
    "running" | "not started", plus "step", "epoch", "epochs", "steps_recorded", "message"}."""
    from .experiments import read_status

    status = read_status(out_dir)
    if not status:
        return {"state": "not started"}
    info = {k: status[k] for k in ("step", "epoch", "epochs", "steps_recorded") if k in status}
    state = status.get("state")
    if state in ("running", "writing"):
        if _alive(status.get("pid")) and status.get("pid") != os.getpid():
            return {"state": "running", **info}
        state, how = "interrupted", " (stopped without finishing: killed?)"
    else:
        how = ""
    if state == "interrupted":
        info["message"] = (f"interrupted at step {status.get('step')} (epoch {status.get('epoch')} of "
                           f"{status.get('epochs')}, {status.get('steps_recorded', '?')} steps recorded){how}")
    elif state == "failed":
        info["message"] = status.get("message", "")
    return {"state": state or "unknown", **info}


def _alive(pid):
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True
