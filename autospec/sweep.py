"""Run a grid of experiments x panels x seeds, locally or on dask.distributed, losing nothing.

    report = run_sweep(["digits-mlp"], panels=["A", "B"], seeds=[0, 1], out="sweep", workers=2)

Layout: OUT/EXPERIMENT/seedS/PANEL/ holds each run (record.h5, status.json, summary.txt,
figures/); OUT/EXPERIMENT/seedS/panels.png|pdf is the paper's panel figure of that experiment and
seed; OUT/sweep.json the state of every run.

Folders are keyed by the settings that change results. A grid with the registered settings
runs in OUT/EXPERIMENT/...; a grid that changes any of them (``--epochs 3``, ``--set data.n=20``,
a config file) runs in OUT/EXPERIMENT-FINGERPRINT/..., FINGERPRINT being 8 hex digits of a hash
of the changed settings (sweep.json lists them as ``changed_settings``). So rerunning a sweep
with another setting never touches finished runs: it gets its own folders. Settings that change
only the summary and figures (figures, figure_formats, compare, description, panels) are not
part of the key. Should a run folder still hold a run with other settings (the registered
defaults changed between versions, or a run was written there by hand), the sweep refuses
before anything runs, naming the folders and the settings that differ; ``force=True``
(``--force``) first moves such folders, and finished runs it is asked to redo, into a backup
beside them (``PANEL.bak-YYYYmmdd-HHMMSS``); nothing is deleted.

Rerunning a sweep skips its finished runs and runs the others again into their folders, where
run_experiment resumes an interrupted run (or starts it over, for versions without resume).
sweep.json is rewritten atomically as each run ends, merged with the previous sweep.json (runs
of earlier grids keep their entries), and states come from each run's status.json, so after
Ctrl-C it says "interrupted at step N". The panel figure is redrawn whenever the finished panel
records of its folder change.

Local workers (``workers`` > 1) are fresh (spawned) processes whose BLAS pools are pinned to one
thread, so N workers use N cores and results do not depend on the thread count. Ctrl-C or
SIGTERM of the sweep stops each worker once: their runs end "interrupted" and sweep.json says
so. Killed outright (SIGKILL), the sweep leaves sweep.json as of its last write (its "sweep"
state still "running"); its workers notice and interrupt their runs within a second or so,
quietly. dask.distributed is imported only for ``dask``/``dask_local``; remote workers must be
able to import autospec and write to OUT (a shared filesystem); a run on a dask worker that is
shut down mid-run shows as interrupted (killed).

Parts: :mod:`autospec.sweep_folders` (settings as folder keys, what a run folder holds) and
:mod:`autospec.sweep_workers` (where runs execute, and how they are stopped).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import write_json_atomically
from .experiments import ExperimentError
from .sweep_folders import folder_state, grid_changes, move_aside, run_state, settings_fingerprint
from .interrupts import sigterm_as_interrupt
from .sweep_workers import dask_client, run_dask, run_local

__all__ = ["Job", "SweepReport", "SweepError", "plan", "run_sweep", "comparable_layers", "folder_state", "run_state",
           "settings_fingerprint", "move_aside"]


class SweepError(ExperimentError):
    """A sweep that cannot go ahead without losing a finished run (e.g. a folder holds other settings)."""


@dataclass
class Job:
    """One run of the grid: its resolved settings (as a dict), output folder and the settings
    (dotted names) it changes from the registered experiment."""

    experiment: str
    panel: str | None
    seed: int
    out_dir: str
    settings: dict
    changes: dict = field(default_factory=dict)

    @property
    def label(self):
        """The run's folder below OUT, e.g. ``digits-mlp/seed0/A``."""
        folder = Path(self.out_dir)
        return f"{folder.parent.parent.name}/{folder.parent.name}/{folder.name}"


@dataclass
class SweepReport:
    """States of this sweep's jobs ("finished", "skipped", "failed", "interrupted") and the panel figures."""

    jobs: list
    outcomes: dict = field(default_factory=dict)
    panel_figures: list = field(default_factory=list)
    wall_seconds: float = 0.0

    @property
    def ok(self):
        return all(o["state"] in ("finished", "skipped") for o in self.outcomes.values())

    def counts(self):
        out = {}
        for o in self.outcomes.values():
            out[o["state"]] = out.get(o["state"], 0) + 1
        return out


# ----------------------------------------------------------------------------- the grid


def plan(experiments=None, panels=None, seeds=(0,), out="sweep", overrides=None, config_file=None):
    """The jobs of a grid (validated up front: a bad name or setting fails before anything runs)."""
    from .experiments import experiment_info, list_experiments, resolve_config

    names = list(experiments) if experiments else list_experiments()
    for name in names:
        experiment_info(name)  # unknown names: a clear error listing the valid ones
    seeds = list(seeds) or [0]
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ExperimentError(f"seeds must be integers >= 0, got {seeds}")
    jobs = []
    for name in names:
        own = experiment_info(name).get("panels", [])
        chosen = [str(p).upper() for p in panels] if panels else list(own)
        changes = grid_changes(name, config_file, overrides)
        variant = f"{name}-{settings_fingerprint(changes)}" if changes else name
        for seed in seeds:
            for panel in chosen:
                cfg = resolve_config(name, panel=panel, config_file=config_file,
                                     overrides={**(overrides or {}), "seed": seed})
                folder = Path(out) / variant / f"seed{seed}" / (panel or "base")
                jobs.append(Job(name, panel, seed, str(folder), cfg.to_dict(), changes))
    return jobs


# ----------------------------------------------------------------------------- sweep.json


def _now():
    return time.strftime("%Y-%m-%d %H:%M:%S")


class _SweepLog:
    """OUT/sweep.json: every run this folder's sweeps have seen. Each write re-reads the file and
    replaces only this sweep's entries (so earlier grids, and a sweep running beside this one,
    keep theirs), atomically, whenever a run ends."""

    def __init__(self, out, report, quiet):
        self.path = Path(out) / "sweep.json"
        self.report = report
        previous = self._load()
        if previous is None:
            backup = move_aside(self.path)
            if not quiet:
                print(f"sweep: {self.path} was not a sweep log; kept it as {backup}", file=sys.stderr)
            previous = {}
        self.runs = self._runs_in(previous)
        self.panel_figures = self._figures_in(previous)  # figure -> fingerprint of the records it shows
        self.drawn = {}  # the panel figures this sweep drew

    def _load(self):
        """The file's content: {} when there is none, None when it is not a sweep log."""
        try:
            previous = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return previous if isinstance(previous, dict) else None

    @staticmethod
    def _runs_in(previous):
        return {entry["label"]: entry for entry in previous.get("runs", [])
                if isinstance(entry, dict) and isinstance(entry.get("label"), str)}

    @staticmethod
    def _figures_in(previous):
        figures = previous.get("panel_figures")
        return dict(figures) if isinstance(figures, dict) else {}

    def entry(self, job):
        """The sweep.json entry of ``job``: this sweep's outcome, the run's status.json, its settings."""
        outcome = self.report.outcomes.get(job.label)
        entry = {"label": job.label, "out_dir": job.out_dir, "experiment": job.experiment,
                 "panel": job.panel, "seed": job.seed, "changed_settings": job.changes}
        status = run_state(job.out_dir)
        if outcome is None:
            entry.update(status)
            return entry
        if outcome["state"] == "skipped":  # keep what the earlier sweep knew about the finished run
            earlier = {k: v for k, v in self.runs.get(job.label, {}).items() if k not in ("state", "message")}
            entry = {**earlier, **entry}
        entry.update({k: v for k, v in status.items() if k != "state"})
        entry.update(outcome)
        if outcome["state"] == "interrupted" and "message" in status:
            entry["message"] = status["message"]
        return entry

    def write(self, wall_seconds, state="running"):
        """Rewrite the file; ``state`` is the sweep's own ("running" while it goes: a sweep killed
        outright leaves that, and its runs' status.json files say where they stopped)."""
        current = self._load()
        if current is None:  # replaced by something else while we ran: keep it
            move_aside(self.path)
            current = {}
        self.runs = {**self.runs, **self._runs_in(current)}
        self.runs.update({job.label: {**self.entry(job), "updated": _now()} for job in self.report.jobs})
        figures = {**self._figures_in(current), **self.drawn}
        payload = {"updated": _now(), "sweep": {"state": state, "pid": os.getpid()},
                   "wall_seconds": round(wall_seconds, 3), "counts": self.report.counts(),
                   "runs": list(self.runs.values()), "panel_figures": figures}
        write_json_atomically(self.path, payload)


# ----------------------------------------------------------------------------- panel figures


def _finished_panels(seed_folder):
    """{panel letter: run folder} of the finished runs in a seed folder (from any sweep)."""
    from .experiments import PANELS, read_status

    found = {}
    for folder in sorted(Path(seed_folder).iterdir()):
        status = read_status(folder) if folder.is_dir() and folder.name in PANELS else None
        if status and status.get("state") == "finished" and (folder / "record.h5").is_file():
            found[folder.name] = folder
    return found


def _panels_fingerprint(members):
    parts = []
    for panel, folder in sorted(members.items()):
        stat = (folder / "record.h5").stat()
        parts.append([panel, stat.st_mtime_ns, stat.st_size])
    return settings_fingerprint(parts)


def _panel_figures(jobs, outcomes, log, quiet):
    """The paper's panel figure of each seed folder whose runs in this sweep all finished, drawn
    from every finished panel run there, and redrawn whenever those records change."""
    from . import plot
    from .experiments import ExperimentConfig
    from .record import load_record

    folders = {}
    for job in jobs:
        if job.panel:
            folders.setdefault(Path(job.out_dir).parent, []).append(job)
    written = []
    for folder, members in folders.items():
        if not all(outcomes[j.label]["state"] in ("finished", "skipped") for j in members):
            continue
        settings = ExperimentConfig(**members[0].settings)
        runs = _finished_panels(folder)
        if len(runs) < 2 or not settings.figures:
            continue
        target = folder / "panels"
        key = str(target.relative_to(log.path.parent))
        fingerprint = _panels_fingerprint(runs)
        drawn = [target.with_suffix(f".{fmt}") for fmt in settings.figure_formats]
        if log.panel_figures.get(key) == fingerprint and all(p.is_file() for p in drawn):
            continue
        records = {panel: load_record(run / "record.h5") for panel, run in runs.items()}
        compare = settings.compare[:2] if len(settings.compare) >= 2 else None
        try:
            fig = plot.plot_panels(records, layers=comparable_layers(records), groups=compare)
            written += plot.save_figure(fig, target, formats=tuple(settings.figure_formats))
            log.drawn[key] = fingerprint
        except ValueError as exc:  # e.g. too few steps for the difference maps: the runs themselves are fine
            if not quiet:
                print(f"panel figure of {folder} skipped: {exc}", file=sys.stderr)
    return written


def comparable_layers(records):
    """Layers to show in the panel figure: a group-difference map needs spectra of two or more
    singular values, so layers with one (e.g. an RNN's 1-feature input weight) are left out when
    panel G or H is there."""
    from .experiments import GROUP_PANELS

    layers = []
    for rec in records.values():
        layers += [name for name in rec.layers if name not in layers]
    diff = [rec for panel, rec in records.items() if panel in GROUP_PANELS]
    return [name for name in layers
            if all(name not in rec.layers or rec.series(name, "G").shape[1] >= 2 for rec in diff)]




# ----------------------------------------------------------------------------- the sweep


def _sort_jobs(jobs, force):
    """(jobs to run, jobs already finished); folders holding other settings are a SweepError
    unless ``force``, which moves them (and finished runs to redo) into a backup first."""
    todo, finished, conflicts = [], [], []
    for job in jobs:
        state, detail = folder_state(job)
        if state == "finished" and not force:
            finished.append(job)
            continue
        if state == "other" and not force:
            conflicts.append(f"{job.out_dir} ({detail})")
            continue
        todo.append(job)
        if force and state in ("finished", "other"):  # force: nothing conflicts, so move them now
            move_aside(job.out_dir)
    if conflicts:
        more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        raise SweepError(f"sweep: {len(conflicts)} run folder(s) hold runs with other settings: "
                         f"{'; '.join(conflicts[:3])}{more}; rerun with --force to move them into a "
                         f"backup, or choose another --out")
    return todo, finished


def _check_out(out_path):
    """--out must be a folder (or not exist yet) and its sweep.json, if any, a file."""
    if out_path.exists() and not out_path.is_dir():
        raise SweepError(f"--out {out_path} is a file, not a folder")
    log = out_path / "sweep.json"
    if log.exists() and not log.is_file():
        raise SweepError(f"{log} is not a file; move it away or choose another --out")


def run_sweep(experiments=None, panels=None, seeds=(0,), out="sweep", overrides=None, config_file=None,
              workers=1, dask=None, dask_local=None, force=False, quiet=False):
    """Run the grid experiments x panels x seeds into ``out`` and return a :class:`SweepReport`.

    ``workers``: local processes (1 = in this process); ``dask``: a scheduler address;
    ``dask_local``: start a local dask cluster with that many single-threaded workers.
    Finished runs with the same settings are skipped; ``force`` moves them into a backup and
    runs them again. Ctrl-C / SIGTERM stop the sweep after sweep.json records where each run
    stopped (KeyboardInterrupt is re-raised).
    """
    from tqdm import tqdm

    for flag, value in (("--workers", workers), ("--dask-local", dask_local)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ExperimentError(f"{flag} needs N >= 1 workers, got {value!r}")
    if dask is not None and dask_local is not None:
        raise ExperimentError("give --dask or --dask-local, not both")
    start = time.perf_counter()
    out_path = Path(out)
    _check_out(out_path)
    jobs = plan(experiments, panels, seeds, out, overrides, config_file)
    todo, finished = _sort_jobs(jobs, force)
    report = SweepReport(jobs)
    for job in finished:
        report.outcomes[job.label] = {"label": job.label, "state": "skipped", "out_dir": job.out_dir}
    on_dask = dask is not None or dask_local is not None
    where = (f"dask scheduler {dask}" if dask is not None else f"local dask cluster of {dask_local}" if on_dask
             else f"{workers} local worker{'s' if workers > 1 else ''}")
    if not quiet:
        print(f"sweep: {len(jobs)} runs ({len(finished)} already finished) on {where} -> {out}")
    try:
        out_path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SweepError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    log = _SweepLog(out_path, report, quiet)
    log.write(0.0)
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=True if quiet or not todo else None,
               file=sys.stderr)  # None: only on a terminal

    def on_outcome(job, outcome):
        report.outcomes[job.label] = outcome
        log.write(time.perf_counter() - start)
        bar.update(1)
        if not quiet and outcome["state"] != "finished":
            bar.write(f"{job.label}: {outcome['state']} ({outcome.get('message', '')})", file=sys.stderr)

    ending = "interrupted"
    try:
        with sigterm_as_interrupt():
            if todo and on_dask:
                with dask_client(dask, dask_local) as client:
                    run_dask(todo, client, on_outcome)
            elif todo:
                run_local(todo, workers, on_outcome)
        ending = "finished"
    finally:
        bar.close()
        report.wall_seconds = time.perf_counter() - start
        log.write(report.wall_seconds, ending)
    report.panel_figures = _panel_figures(jobs, report.outcomes, log, quiet)
    if report.panel_figures:
        log.write(report.wall_seconds, ending)
    if not quiet:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts().items()))
        print(f"sweep done in {report.wall_seconds:.1f} s: {counts}; states in {log.path}")
        for o in report.outcomes.values():
            if o["state"] == "failed":
                print(f"  FAILED {o['label']}: {o.get('message')}", file=sys.stderr)
    return report
