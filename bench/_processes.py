"""Timing as users run it: every library in a fresh process of its own, nothing set that a user
would not set. Shared by bench/engine.py and bench/overhead_processes.py.

A *child* is this interpreter running a bench script with a ``--side`` argument; it prints one
JSON line (its last line of output) that the parent reads back. Between rounds the order of the
children alternates, and a ratio is reported as the median and range over rounds, never a
single run.
"""
import json
import os
import statistics
import subprocess
import sys
import time

# settings that change how BLAS / OpenMP threads wait or how many there are: a user's process
# does not have them unless the user sets them, so children run without them (--env puts one back)
BENCH_ONLY_VARIABLES = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
                        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def child_environment(extra=None):
    """This process's environment without :data:`BENCH_ONLY_VARIABLES`, plus ``extra`` {name: value}."""
    env = {k: v for k, v in os.environ.items() if k not in BENCH_ONLY_VARIABLES}
    env.update(extra or {})
    return env


def parse_env_settings(pairs):
    """{name: value} from ``NAME=VALUE`` strings (the --env option); ValueError on a malformed one."""
    settings = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--env expects NAME=VALUE, got {pair!r}")
        settings[name] = value
    return settings


def run_child(script, args, env):
    """Run ``python script *args`` with ``env``; returns (its last stdout line as JSON, wall seconds)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, script, *map(str, args)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{os.path.basename(script)} {' '.join(map(str, args))} failed "
                           f"(exit {done.returncode}):\n{tail}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{os.path.basename(script)} {' '.join(map(str, args))} printed nothing")
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr)
    return json.loads(lines[-1]), seconds


def round_order(sides, round_index):
    """``sides`` in their order on even rounds, reversed on odd ones."""
    return list(sides) if round_index % 2 == 0 else list(reversed(sides))


def _busy_cpu_seconds():
    """CPU seconds all processes of the machine have run since boot (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """Context: how many cores other processes kept busy while it was open (``.cores``; None off
    Linux), i.e. the machine's busy CPU time minus this process's, over the elapsed time. A
    shared machine's noise: rounds with a high value say the timing was disturbed."""

    def __enter__(self):
        self.cores = None
        self._start = (_busy_cpu_seconds(), time.process_time(), time.perf_counter())
        return self

    def __exit__(self, *exc):
        busy, own, wall = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        if busy is not None and self._start[0] is not None and wall > self._start[2]:
            other = (busy - self._start[0]) - (own - self._start[1])
            self.cores = max(0.0, other / (wall - self._start[2]))
        return False


def wait_for_quiet(cores, patience=60.0, probe=0.5):
    """Wait until other processes keep fewer than ``cores`` cores busy over ``probe`` seconds, for at
    most ``patience`` seconds; returns the seconds waited (a shared machine's rounds then start
    when it is quiet). Returns at once where the load cannot be read."""
    start = time.perf_counter()
    while time.perf_counter() - start < patience:
        with OtherLoad() as load:
            time.sleep(probe)
        if load.cores is None or load.cores < cores:
            break
    return time.perf_counter() - start


def step_times(step, steps, warmup):
    """Wall seconds of ``steps`` consecutive calls of ``step`` after ``warmup`` untimed ones, the
    first call's return value (a step returns its loss) and the cores other processes kept busy
    meanwhile (:class:`OtherLoad`)."""
    first = step()
    for _ in range(warmup - 1):
        step()
    times = []
    with OtherLoad() as load:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    return times, first, load.cores


def median_range(values):
    """(median, min, max) of a non-empty list."""
    return statistics.median(values), min(values), max(values)


def format_range(values, digits=2):
    """``median (min-max)``, or just the value for a single one."""
    med, lo, hi = median_range(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def emit(result):
    """A child's answer: one JSON line on stdout (the parent reads the last line)."""
    sys.stdout.flush()
    print(json.dumps(result))
