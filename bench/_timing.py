"""Shared timing helpers for the bench scripts: interleaved medians, thread pinning."""
import statistics
import time

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def set_threads(n):
    """The same thread count for NumPy's BLAS/OpenMP pools and PyTorch (when installed)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def interleaved_medians(fns, repeats, warmup=2, clock="wall"):
    """Median time of each zero-argument callable, run in alternating order after a warm-up.

    clock="cpu" counts this process's CPU time (robust on a machine shared with other jobs,
    meaningful with one thread); "wall" counts elapsed time.
    """
    now = CLOCKS[clock]
    for f in fns:
        for _ in range(warmup):
            f()
    times = [[] for _ in fns]
    for r in range(repeats):
        for i in (range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))):
            t0 = now()
            fns[i]()
            times[i].append(now() - t0)
    return [statistics.median(t) for t in times]
