"""Shared timing helpers for the bench scripts: medians of blocked repeats, thread pinning."""
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


def blocked_times(fns, repeats, block=5, warmup=2, clock="wall"):
    """Per-call times (one list per callable) of ``repeats`` timed calls each, run in blocks.

    Each round runs every callable for one untimed call and then ``block`` timed calls,
    in alternating order from round to round. Blocks rather than strict alternation: a
    library's worker threads keep spinning for a while after its call returns (OpenMP's
    and OpenBLAS's wait policies), and with strict alternation they steal the cores the
    other side's next call needs, which measures the interference, not the libraries.
    The untimed call lets the previous side's threads settle; alternating rounds and
    medians keep slow drift of a shared machine out of the ratio.
    clock="cpu" counts this process's CPU time (meaningful with one thread); "wall" elapsed time.
    """
    now = CLOCKS[clock]
    for f in fns:
        for _ in range(warmup):
            f()
    times = [[] for _ in fns]
    rounds = -(-repeats // block)
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            fns[i]()
            for _ in range(min(block, repeats - r * block)):
                t0 = now()
                fns[i]()
                times[i].append(now() - t0)
    return times


def medians(fns, repeats, block=5, warmup=2, clock="wall"):
    """Median time of each zero-argument callable, timed by :func:`blocked_times`."""
    return [statistics.median(t) for t in blocked_times(fns, repeats, block=block, warmup=warmup, clock=clock)]
