"""Run a grid of experiments x panels x seeds, locally or on dask.distributed.

    report = run_sweep(["digits-mlp"], panels=["A", "B"], seeds=[0, 1], out="sweep", workers=2)

Layout: OUT/EXPERIMENT/seedS/PANEL/ holds each run (record.h5, status.json, summary.txt,
figures/); OUT/EXPERIMENT/seedS/panels.png|pdf the paper's panel figure once every panel of
that experiment and seed is done; OUT/sweep.json the state of every run. A run whose
status.json says "finished" with the same settings is skipped, so rerunning a sweep resumes it.

Local workers are fresh (spawned) processes whose BLAS pools are pinned to one thread (the
environment variables are set before the worker imports NumPy, and threadpoolctl enforces
it), so N workers use N cores and results do not depend on the thread count. dask.distributed
is imported only for ``dask``/``dask_local``; remote workers must be able to import autospec
and write to OUT (a shared filesystem).
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class Job:
    """One run of the grid: its resolved settings (as a dict) and output folder."""

    experiment: str
    panel: str | None
    seed: int
    out_dir: str
    settings: dict

    @property
    def label(self):
        return f"{self.experiment}/seed{self.seed}/{self.panel or '-'}"


@dataclass
class SweepReport:
    """States of every job ("finished", "skipped", "failed", "interrupted") and the panel figures."""

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


def plan(experiments=None, panels=None, seeds=(0,), out="sweep", overrides=None, config_file=None):
    """The jobs of a grid (validated up front: a bad name or setting fails before anything runs)."""
    from .experiments import ExperimentError, experiment_info, list_experiments, resolve_config

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
        for seed in seeds:
            for panel in chosen:
                cfg = resolve_config(name, panel=panel, config_file=config_file,
                                     overrides={**(overrides or {}), "seed": seed})
                folder = Path(out) / name / f"seed{seed}" / (panel or "base")
                jobs.append(Job(name, panel, seed, str(folder), cfg.to_dict()))
    return jobs


def is_finished(job):
    """True when the job's folder holds a finished run with exactly these settings."""
    from .experiments import ExperimentConfig, read_status

    status = read_status(job.out_dir)
    if not status or status.get("state") != "finished":
        return False
    if not (Path(job.out_dir) / "record.h5").is_file():
        return False
    return status.get("config_digest") == ExperimentConfig(**job.settings).digest()


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
    (never raises for a failed run: the error is in the outcome)."""
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
    except RunInterrupted as exc:
        outcome.update(state="interrupted", message=str(exc))
    except Exception as exc:  # reported in the sweep summary; the other jobs go on
        outcome.update(state="failed", message=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(limit=6))
    outcome["wall_seconds"] = round(time.perf_counter() - start, 3)
    return outcome


def _local(jobs, workers):
    """Yield outcomes as jobs finish: in this process (workers=1) or in a spawned pool."""
    if workers <= 1:
        for job in jobs:
            yield job, execute_job(job)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with _single_thread_env():
        pool = ctx.Pool(processes=min(workers, len(jobs)))
    try:
        pending = {pool.apply_async(execute_job, (job,)): job for job in jobs}
        while pending:
            done = [r for r in pending if r.ready()]
            for r in done:
                yield pending.pop(r), r.get()
            if not done:
                time.sleep(0.05)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


@contextmanager
def _dask_client(address=None, n_local=None):
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        from .experiments import ExperimentError

        raise ExperimentError("--dask/--dask-local need dask.distributed: pip install 'autospec[dask]'") from None
    if n_local is not None:
        if n_local < 1:
            from .experiments import ExperimentError

            raise ExperimentError(f"--dask-local needs N >= 1 workers, got {n_local}")
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
            from .experiments import ExperimentError

            raise ExperimentError(f"cannot reach the dask scheduler at {address!r}: {exc}") from None
        try:
            yield client
        finally:
            client.close()


def _dask(jobs, client):
    from dask.distributed import as_completed

    futures = {client.submit(execute_job, job, pure=False, key=f"autospec-{job.label}-{time.time_ns()}"): job
               for job in jobs}
    for future in as_completed(futures):
        yield futures[future], future.result()


def _panel_figures(jobs, outcomes, quiet):
    """The paper's panel figure per (experiment, seed) whose panels all finished."""
    from . import plot
    from .experiments import ExperimentConfig
    from .record import load_record

    groups = {}
    for job in jobs:
        groups.setdefault((job.experiment, job.seed), []).append(job)
    written = []
    for (name, seed), members in groups.items():
        panels = [j for j in members if j.panel]
        if len(panels) < 2 or not all(outcomes[j.label]["state"] in ("finished", "skipped") for j in panels):
            continue
        settings = ExperimentConfig(**panels[0].settings)
        target = Path(panels[0].out_dir).parent / "panels"
        fresh = any(outcomes[j.label]["state"] == "finished" for j in panels)
        if not settings.figures or (not fresh and target.with_suffix(f".{settings.figure_formats[0]}").exists()):
            continue
        records = {j.panel: load_record(Path(j.out_dir) / "record.h5") for j in panels}
        compare = settings.compare[:2] if len(settings.compare) >= 2 else None
        try:
            fig = plot.plot_panels(records, layers=_comparable_layers(records), groups=compare)
            written += plot.save_figure(fig, target, formats=tuple(settings.figure_formats))
        except ValueError as exc:  # e.g. too few steps for the difference maps: the runs themselves are fine
            if not quiet:
                print(f"panel figure of {name} seed {seed} skipped: {exc}", file=sys.stderr)
    return written


def _comparable_layers(records):
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


def run_sweep(experiments=None, panels=None, seeds=(0,), out="sweep", overrides=None, config_file=None,
              workers=1, dask=None, dask_local=None, force=False, quiet=False):
    """Run the grid experiments x panels x seeds into ``out`` and return a :class:`SweepReport`.

    ``workers``: local processes (1 = in this process); ``dask``: a scheduler address;
    ``dask_local``: start a local dask cluster with that many single-threaded workers.
    Finished runs with the same settings are skipped unless ``force``.
    """
    from tqdm import tqdm

    from .experiments import ExperimentError

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ExperimentError(f"--workers needs N >= 1, got {workers!r}")
    start = time.perf_counter()
    jobs = plan(experiments, panels, seeds, out, overrides, config_file)
    report = SweepReport(jobs)
    todo = []
    for job in jobs:
        if not force and is_finished(job):
            report.outcomes[job.label] = {"label": job.label, "state": "skipped", "out_dir": job.out_dir}
        else:
            todo.append(job)
    where = (f"dask scheduler {dask}" if dask else f"local dask cluster of {dask_local}" if dask_local
             else f"{workers} local worker{'s' if workers > 1 else ''}")
    if not quiet:
        print(f"sweep: {len(jobs)} runs ({len(jobs) - len(todo)} already finished) on {where} -> {out}")
    Path(out).mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=quiet or not todo, file=sys.stderr)
    try:
        if todo:
            if dask or dask_local:
                with _dask_client(dask, dask_local) as client:
                    for job, outcome in _dask(todo, client):
                        _finish(report, job, outcome, bar, quiet)
            else:
                for job, outcome in _local(todo, workers):
                    _finish(report, job, outcome, bar, quiet)
    finally:
        bar.close()
        report.wall_seconds = time.perf_counter() - start
        _write_report(report, out)
    report.panel_figures = _panel_figures(jobs, report.outcomes, quiet)
    if not quiet:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(report.counts().items()))
        print(f"sweep done in {report.wall_seconds:.1f} s: {counts}; states in {Path(out) / 'sweep.json'}")
        for o in report.outcomes.values():
            if o["state"] == "failed":
                print(f"  FAILED {o['label']}: {o.get('message')}", file=sys.stderr)
    return report


def _finish(report, job, outcome, bar, quiet):
    report.outcomes[job.label] = outcome
    bar.update(1)
    if not quiet and outcome["state"] != "finished":
        bar.write(f"{job.label}: {outcome['state']} ({outcome.get('message', '')})", file=sys.stderr)


def _write_report(report, out):
    payload = {"wall_seconds": round(report.wall_seconds, 3), "counts": report.counts(),
               "runs": [report.outcomes.get(j.label, {"label": j.label, "state": "not started",
                                                      "out_dir": j.out_dir}) for j in report.jobs]}
    (Path(out) / "sweep.json").write_text(json.dumps(payload, indent=1, default=str))
