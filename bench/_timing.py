"""Timing several steps of ONE library side by side in one process: medians of blocked repeats.

Two libraries are never timed in one process (bench/_processes.py runs each in its own).
"""
import statistics
import time

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def blocked_times(fns, repeats, block=5, warmup=2, clock="wall"):
    """Per-call times (one list per callable) of ``repeats`` timed calls each, run in blocks.

    Each round runs every callable for one untimed call and then ``block`` timed calls,
    in alternating order from round to round. Blocks rather than strict alternation: each
    step's first call after another one's pays for the other's leftovers (caches, freed
    memory), which the untimed call absorbs; alternating rounds and medians keep slow drift
    of a shared machine out of the ratio.
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
