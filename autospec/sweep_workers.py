"""Where a sweep's runs execute: in this process, in spawned local worker processes, or on
dask.distributed. Local workers pin BLAS to one thread, live in a process group of their own
(a terminal's Ctrl-C reaches the sweep, which stops each worker once with SIGTERM) and watch
the sweep's process, so that killing it outright stops them within a second or so, quietly."""
from __future__ import annotations

import _thread
import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager

from .experiments import ExperimentError

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_STOP_GRACE_SECONDS = 20.0  # how long stopped workers get to mark their runs "interrupted"


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


def run_local(jobs, workers, on_outcome):
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


# ----------------------------------------------------------------------------- dask


@contextmanager
def dask_client(address=None, n_local=None):
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


def run_dask(jobs, client, on_outcome):
    from dask.distributed import as_completed

    futures = {client.submit(execute_job, job, pure=False, key=f"autospec-{job.label}-{time.time_ns()}"): job
               for job in jobs}
    try:
        for future in as_completed(futures):
            on_outcome(futures[future], future.result())
    except BaseException:
        client.cancel(list(futures))
        raise
