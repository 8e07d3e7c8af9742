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
part of the key. Should a
run folder still hold a run with other settings (the registered defaults changed between
versions, or a run was written there by hand), the sweep refuses before anything runs, naming
the folders and the settings that differ; ``force=True`` (``--force``) first moves such folders,
and finished runs it is asked to redo, into a backup beside them (``PANEL.bak-YYYYmmdd-HHMMSS``).

Rerunning a sweep skips its finished runs and runs the others again into their folders, where
run_experiment resumes an interrupted run (or starts it over, for versions without resume).
sweep.json is rewritten atomically as each run ends, merged with the previous sweep.json (runs
of earlier grids keep their entries), and states come from each run's status.json, so after
Ctrl-C it says "interrupted at step N". The panel figure is redrawn whenever the finished panel
records of its folder change.

Local workers (``workers`` > 1) are fresh (spawned) processes whose BLAS pools are pinned to one
thread (the environment variables are set before the worker imports NumPy, and threadpoolctl
enforces it), so N workers use N cores and results do not depend on the thread count. Workers
run in a process group of their own, so a terminal's Ctrl-C reaches only the sweep, which then
stops each worker with one SIGTERM (as does SIGTERM of the sweep): their runs end "interrupted"
and sweep.json says so. Workers also watch the sweep's process: if it is killed outright
(SIGKILL), they interrupt their runs and exit quietly within a second or so. dask.distributed is imported only for
``dask``/``dask_local``; remote workers must be able to import autospec and write to OUT (a shared
filesystem); runs on a dask worker that is shut down mid-run show as interrupted (killed).
"""
from __future__ import annotations

import _thread
import hashlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .experiments import ExperimentError

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

#: Settings that change only what is drawn or said about a run (summary, figures), not its record.
RESULT_NEUTRAL = frozenset({"description", "figures", "figure_formats", "panels", "compare"})
#: Settings that name a run in the grid rather than change it.
_GRID_KEYS = frozenset({"experiment", "panel", "seed"})
_STOP_GRACE_SECONDS = 20.0  # how long stopped workers get to mark their runs "interrupted"


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


# ----------------------------------------------------------------------------- settings as keys


def result_settings(settings):
    """The settings that change results, flat: tables become dotted names (``data.n``)."""
    flat = {}
    for key, value in settings.items():
        if key in RESULT_NEUTRAL:
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


def settings_fingerprint(changes):
    """8 hex digits naming a set of changed settings (the folder suffix of a changed grid)."""
    text = json.dumps(changes, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def _grid_changes(name, config_file, overrides):
    """The result settings a grid's request (config file + overrides) changes for experiment
    ``name``: entries equal to the registered value for every one of its panels are dropped."""
    from .experiments import experiment_info, load_config_file, resolve_config

    request = dict(load_config_file(config_file)) if config_file is not None else {}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
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
        changes = _grid_changes(name, config_file, overrides)
        variant = f"{name}-{settings_fingerprint(changes)}" if changes else name
        for seed in seeds:
            for panel in chosen:
                cfg = resolve_config(name, panel=panel, config_file=config_file,
                                     overrides={**(overrides or {}), "seed": seed})
                folder = Path(out) / variant / f"seed{seed}" / (panel or "base")
                jobs.append(Job(name, panel, seed, str(folder), cfg.to_dict(), changes))
    return jobs


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
    if status and status.get("config_digest") == ExperimentConfig(**job.settings).digest():
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


# ----------------------------------------------------------------------------- running one job


@contextmanager
def _single_thread_env():
    """Set the BLAS thread variables to 1 while worker processes are started (they inherit them)."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_job(job):
    """Run one job in this process with BLAS pinned to one thread; returns an outcome dict
    (never raises for a failed or interrupted run: the state is in the outcome)."""
    for k in _THREAD_VARS:
        os.environ.setdefault(k, "1")
    from threadpoolctl import threadpool_limits

    from .experiments import ExperimentConfig, RunInterrupted, run_experiment

    start = time.perf_counter()
    outcome = {"label": job.label, "out_dir": job.out_dir}
    try:
        with threadpool_limits(limits=1):
            result = run_experiment(ExperimentConfig(**job.settings), job.out_dir, quiet=True)
        outcome.update(state="finished", final_loss=result.final_loss, accuracy=result.accuracy,
                       record=str(result.record_path))
    except (RunInterrupted, KeyboardInterrupt) as exc:
        outcome.update(state="interrupted", message=str(exc) or "interrupted")
    except Exception as exc:  # reported in the sweep summary; the other jobs go on
        outcome.update(state="failed", message=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(limit=6))
    outcome["wall_seconds"] = round(time.perf_counter() - start, 3)
    return outcome


# ----------------------------------------------------------------------------- local workers


_stop_requested = False


def _stop_once(signum, frame):
    """A worker's SIGINT/SIGTERM handler: interrupt once; repeats do nothing while it stops."""
    global _stop_requested
    if not _stop_requested:
        _stop_requested = True
        raise KeyboardInterrupt


def _watch_parent(parent_pid):
    """Interrupt this worker's main thread as soon as the sweep's process is gone."""
    while os.getppid() == parent_pid:
        time.sleep(0.2)
    _thread.interrupt_main(signal.SIGTERM)


def worker_main(conn, parent_pid):
    """Body of a local worker process: run the jobs sent over ``conn`` and send back their
    outcomes until told to stop (None), interrupted, or the sweep's process is gone -- then exit
    quietly (an interrupted run has marked itself "interrupted" in its status.json)."""
    global _stop_requested
    if hasattr(os, "setpgid"):  # POSIX
        try:  # a process group of its own: a terminal's Ctrl-C reaches the sweep, which stops us once
            os.setpgid(0, 0)
        except OSError:
            pass
    signal.signal(signal.SIGINT, _stop_once)
    signal.signal(signal.SIGTERM, _stop_once)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    try:
        while True:
            _stop_requested = False
            job = conn.recv()
            if job is None:
                return
            outcome = execute_job(job)
            if os.getppid() != parent_pid:
                return
            conn.send(outcome)
    except (KeyboardInterrupt, EOFError, OSError):  # stopped, or the sweep's process is gone
        return


class _LocalWorkers:
    """A few spawned worker processes, each with its own pipe (so a dead sweep is noticed as a
    closed pipe, never as a traceback in some feeder thread)."""

    def __init__(self, n):
        import multiprocessing

        self._ctx = multiprocessing.get_context("spawn")
        self.size = n
        self.idle, self.busy = [], {}  # busy: conn -> (process, job)
        for _ in range(n):
            self.idle.append(self._start())

    def _start(self):
        mine, theirs = self._ctx.Pipe(duplex=True)
        with _single_thread_env():
            process = self._ctx.Process(target=worker_main, args=(theirs, os.getpid()), daemon=True,
                                        name="autospec-sweep-worker")
            process.start()
        theirs.close()
        return process, mine

    @property
    def free(self):
        """True when a job can be submitted (a worker is idle, or one that died can be replaced)."""
        return bool(self.idle) or len(self.busy) < self.size

    def submit(self, job):
        process, conn = self.idle.pop() if self.idle else self._start()
        conn.send(job)
        self.busy[conn] = (process, job)

    def results(self, timeout):
        """(job, outcome) of every busy worker that answered within ``timeout`` seconds; a worker
        that died gives a "failed" outcome (the next submit starts a new one)."""
        from multiprocessing.connection import wait

        done = []
        for conn in wait(list(self.busy), timeout=timeout):
            process, job = self.busy.pop(conn)
            try:
                outcome = conn.recv()
                self.idle.append((process, conn))
            except (EOFError, OSError):
                process.join(timeout=5)
                conn.close()
                outcome = {"label": job.label, "out_dir": job.out_dir, "state": "failed",
                           "message": f"worker process died (exit code {process.exitcode})"}
            done.append((job, outcome))
        return done

    def interrupt(self):
        """Ask every busy worker to stop its run (SIGTERM -> the run ends "interrupted")."""
        for process, _ in self.busy.values():
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def close(self):
        """Stop idle workers (None) and wait for every worker; kill any that hang."""
        for process, conn in self.idle:
            try:
                conn.send(None)
            except OSError:
                pass
        everyone = self.idle + list(self.busy.values())
        deadline = time.monotonic() + 10
        for process, _ in everyone:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        for _, conn in everyone:
            conn.close()
        self.idle, self.busy = [], {}


def _run_local(jobs, workers, on_outcome):
    """Run ``jobs`` here (workers=1) or on spawned workers, calling ``on_outcome(job, outcome)`` as
    each ends. Ctrl-C / SIGTERM: the workers' runs are stopped and reported, then it re-raises."""
    if workers <= 1:
        for job in jobs:
            outcome = execute_job(job)
            on_outcome(job, outcome)
            if outcome["state"] == "interrupted":  # Ctrl-C reached the run: the sweep stops too
                raise KeyboardInterrupt
        return
    pool = _LocalWorkers(min(workers, len(jobs)))
    queue = list(reversed(jobs))
    try:
        while queue or pool.busy:
            while queue and pool.free:
                pool.submit(queue.pop())
            for job, outcome in pool.results(timeout=1.0):
                on_outcome(job, outcome)
    except BaseException:
        pool.interrupt()
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        while pool.busy and time.monotonic() < deadline:
            for job, outcome in pool.results(timeout=0.5):
                on_outcome(job, outcome)
        raise
    finally:
        pool.close()


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM of the sweep raises KeyboardInterrupt (so the workers are stopped and sweep.json
    written); outside the main thread signals are left alone."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ----------------------------------------------------------------------------- dask


@contextmanager
def _dask_client(address=None, n_local=None):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ExperimentError("--dask/--dask-local need dask.distributed: pip install 'autospec[dask]'") from None
    if n_local is not None:
        with _single_thread_env():
            cluster = LocalCluster(n_workers=n_local, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=40)
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    else:
        try:
            client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise ExperimentError(f"cannot reach the dask scheduler at {address!r}: {exc}") from None
        try:
            yield client
        finally:
            client.close()


def _run_dask(jobs, client, on_outcome):
    from dask.distributed import as_completed

    futures = {client.submit(execute_job, job, pure=False, key=f"autospec-{job.label}-{time.time_ns()}"): job
               for job in jobs}
    try:
        for future in as_completed(futures):
            on_outcome(futures[future], future.result())
    except BaseException:
        client.cancel(list(futures))
        raise


# ----------------------------------------------------------------------------- sweep.json


def _now():
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _write_json_atomically(path, payload):
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)


class _SweepLog:
    """OUT/sweep.json: every run this folder's sweeps have seen, this sweep's merged over the
    previous file's entries, rewritten atomically whenever a run ends."""

    def __init__(self, out, report, quiet):
        self.path = Path(out) / "sweep.json"
        self.report = report
        self.runs, self.panel_figures = {}, {}
        previous = self._read_previous(quiet)
        for entry in previous.get("runs", []):
            if isinstance(entry, dict) and isinstance(entry.get("label"), str):
                self.runs[entry["label"]] = entry
        if isinstance(previous.get("panel_figures"), dict):
            self.panel_figures = dict(previous["panel_figures"])

    def _read_previous(self, quiet):
        if not self.path.is_file():
            return {}
        try:
            previous = json.loads(self.path.read_text())
            if isinstance(previous, dict):
                return previous
        except (OSError, ValueError):
            pass
        backup = move_aside(self.path)
        if not quiet:
            print(f"sweep: {self.path} was not a sweep log; kept it as {backup}", file=sys.stderr)
        return {}

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
        for job in self.report.jobs:
            self.runs[job.label] = {**self.entry(job), "updated": _now()}
        payload = {"updated": _now(), "sweep": {"state": state, "pid": os.getpid()},
                   "wall_seconds": round(wall_seconds, 3), "counts": self.report.counts(),
                   "runs": list(self.runs.values()), "panel_figures": self.panel_figures}
        _write_json_atomically(self.path, payload)


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
            log.panel_figures[key] = fingerprint
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


_comparable_layers = comparable_layers  # the name cli.py used before it was public


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
    if conflicts:
        more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
        raise SweepError(f"sweep: {len(conflicts)} run folder(s) hold runs with other settings: "
                         f"{'; '.join(conflicts[:3])}{more}; rerun with --force to move them into a "
                         f"backup, or choose another --out")
    if force:
        for job in todo:
            if folder_state(job)[0] in ("finished", "other"):
                move_aside(job.out_dir)
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
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=quiet or not todo, file=sys.stderr)

    def on_outcome(job, outcome):
        report.outcomes[job.label] = outcome
        log.write(time.perf_counter() - start)
        bar.update(1)
        if not quiet and outcome["state"] != "finished":
            bar.write(f"{job.label}: {outcome['state']} ({outcome.get('message', '')})", file=sys.stderr)

    ending = "interrupted"
    try:
        with _sigterm_as_interrupt():
            if todo and on_dask:
                with _dask_client(dask, dask_local) as client:
                    _run_dask(todo, client, on_outcome)
            elif todo:
                _run_local(todo, workers, on_outcome)
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
