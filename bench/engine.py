"""Step-time benchmark: minigrad against PyTorch CPU, side by side in one process.

Cases come from every ``bench/engine_<part>.py`` module present; each defines
``cases(threads)`` yielding ``(name, minigrad_step, torch_step)``, two zero-argument
callables that each run ONE full training step (forward, loss, backward, SGD
update) on identical weights and data. A step may return its loss as a float:
the first losses of both sides are then compared as a sanity check.

Both sides get the same thread count: ``torch.set_num_threads`` and, through
threadpoolctl, the BLAS (and OpenMP) pools NumPy uses. After a warm-up the two
sides run in alternating blocks (one untimed step, then ``--block`` timed steps;
see ``_timing.blocked_times`` for why not strict alternation) and the medians are
compared: ratio = minigrad / PyTorch (< 1 means minigrad is faster).
The interquartile range (as % of the median) says how noisy each side was.

    python bench/engine.py                  # every case
    python bench/engine.py --only mlp       # cases whose module or name contains "mlp"
    python bench/engine.py --threads 1 --repeats 50 --json out.json
"""
import os

# OpenBLAS workers otherwise spin long after each GEMM and steal the core PyTorch needs:
# without this the 2-thread comparison is unfair (to PyTorch).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse
import glob
import importlib.util
import json
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import blocked_times  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def case_files():
    """{part: path} for every bench/engine_<part>.py, sorted by part."""
    paths = sorted(glob.glob(os.path.join(HERE, "engine_*.py")))
    return {os.path.basename(p)[len("engine_"):-len(".py")]: p for p in paths}


def load(part, path):
    """The case module at ``path``, or None (with a message) when it cannot be imported."""
    spec = importlib.util.spec_from_file_location(f"bench_engine_{part}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        print(f"error: cannot import {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    if not hasattr(module, "cases"):
        print(f"warning: {path} defines no cases(threads); skipped", file=sys.stderr)
        return None
    return module


def select(only):
    """Case files to run: those whose part contains ``only`` if any does, else all (filtered by case name)."""
    files = case_files()
    if only is not None:
        matching = {part: path for part, path in files.items() if only in part}
        if matching:
            return matching
    return files


def _matches(only, part, name):
    return only is None or only in part or only in name


def _check_losses(name, mg_value, torch_value):
    """Warn when both steps return losses that disagree (different weights or data)."""
    if not (isinstance(mg_value, (int, float)) and isinstance(torch_value, (int, float))):
        return
    if abs(mg_value - torch_value) > 1e-3 * max(1.0, abs(torch_value)):
        print(f"warning: {name}: first losses differ (minigrad {mg_value:.6g}, torch {torch_value:.6g})",
              file=sys.stderr)


def time_case(name, mg_step, torch_step, repeats, warmup, block=5):
    """Seconds per step of both sides (two lists), timed in alternating blocks after a warm-up."""
    mg_first, torch_first = mg_step(), torch_step()
    _check_losses(name, mg_first, torch_first)
    return blocked_times([mg_step, torch_step], repeats, block=block, warmup=max(warmup - 1, 0))


def _summary(times):
    """(median ms, interquartile range as % of the median)."""
    ms = [t * 1e3 for t in times]
    median = statistics.median(ms)
    if len(ms) < 4:
        return median, 0.0
    q1, _, q3 = statistics.quantiles(ms, n=4)
    return median, 100 * (q3 - q1) / median


def _blas_summary():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed"
    parts = [f"{i.get('internal_api')}:{i.get('num_threads')}({os.path.basename(i.get('filepath', ''))})"
             for i in threadpool_info()]
    return ", ".join(parts)


def configure(threads):
    """Give both sides ``threads`` threads and minigrad its benchmark settings; returns the
    threadpoolctl context that holds NumPy's BLAS/OpenMP pools at that count."""
    sys.path.insert(0, ROOT)
    import minigrad
    import torch
    from threadpoolctl import threadpool_limits

    minigrad.set_num_threads(threads)
    minigrad.kernels.threads.keep_freed_memory()
    torch.set_num_threads(threads)
    return threadpool_limits(limits=threads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=_default_threads(),
                        help="threads for both sides (default: the cores this process may use)")
    parser.add_argument("--repeats", type=int, default=40, help="timed steps per side (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side first (default 3)")
    parser.add_argument("--block", type=int, default=5, help="timed steps per block of one side (default 5)")
    parser.add_argument("--only", default=None, help="run only cases whose module part or name contains this")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if min(args.threads, args.repeats, args.warmup, args.block) < 1:
        parser.error("--threads, --repeats, --warmup and --block must be positive")

    import numpy as np
    import torch

    results = []
    with configure(args.threads):
        print(f"numpy {np.__version__}, torch {torch.__version__}, threads {args.threads}, "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
        print(f"thread pools: {_blas_summary()}")
        for part, path in select(args.only).items():
            module = load(part, path)
            if module is None:
                continue
            try:
                for name, mg_step, torch_step in module.cases(args.threads):
                    if not _matches(args.only, part, name):
                        continue
                    mg_times, torch_times = time_case(name, mg_step, torch_step, args.repeats, args.warmup, args.block)
                    (mg, mg_iqr), (tc, tc_iqr) = _summary(mg_times), _summary(torch_times)
                    results.append({"case": name, "minigrad_ms": mg, "torch_ms": tc, "ratio": mg / tc,
                                    "minigrad_iqr_pct": mg_iqr, "torch_iqr_pct": tc_iqr})
            except Exception as exc:  # one broken case module must not hide the others' numbers
                print(f"error: {os.path.relpath(path, ROOT)} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not results:
        print(f"no case matched --only {args.only!r}" if args.only else "no cases found (bench/engine_*.py)")
        return 1
    width = max(len(r["case"]) for r in results)
    print(f"\n{'case':<{width}}  {'minigrad (IQR)':>19}  {'torch (IQR)':>19}  {'ratio':>6}")
    for r in results:
        print(f"{r['case']:<{width}}  {r['minigrad_ms']:8.2f} ms ({r['minigrad_iqr_pct']:4.1f}%)  "
              f"{r['torch_ms']:8.2f} ms ({r['torch_iqr_pct']:4.1f}%)  {r['ratio']:6.2f}")
    print()
    for r in results:
        print(f"{r['case']:<{width}}  minigrad {r['minigrad_ms']:.1f} ms  torch {r['torch_ms']:.1f} ms  "
              f"ratio {r['ratio']:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"threads": args.threads, "repeats": args.repeats, "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
