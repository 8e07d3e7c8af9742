"""Step-time benchmark, minigrad against PyTorch CPU, timed as users run them.

Every library runs in a fresh process of its own, one per round (the order alternating from
round to round), with nothing in its environment that a user would not have: no
OPENBLAS_THREAD_TIMEOUT, no OMP_* / *_NUM_THREADS (``--env NAME=VALUE`` passes one on when you
want it). A minigrad process never imports torch and a PyTorch process never imports minigrad.
Threads are set as a user sets them, in the child: ``mg.set_num_threads(n)`` or
``torch.set_num_threads(n)``; both libraries' defaults are the machine's cores, and the bench
always sets n explicitly (``--threads``, default 1 and 2). minigrad runs twice, on its two kernel
paths, chosen as a user chooses them: ``MINIGRAD_KERNELS=fast`` and ``MINIGRAD_KERNELS=reference``
in the child's environment.

Cases come from every ``bench/engine_<part>.py``: ``minigrad_cases()`` and
``torch_cases()`` each yield ``(name, step)`` with the same names, a step being one full
training step (forward, loss, backward, SGD update) on weights and data both sides draw from
NumPy seeds alike; the first losses of the two sides are compared as a sanity check.
Each child times ``--steps`` consecutive steps per case after ``--warmup`` untimed ones and
reports their median; a ratio (minigrad / PyTorch, < 1: minigrad faster) is formed per round
and reported as the median (min-max) over ``--rounds`` rounds.

    python bench/engine.py                          # every case, 1 and 2 threads (about 10 minutes)
    python bench/engine.py --only cnn --threads 2 --rounds 3
    python bench/engine.py --markdown speed.md --json speed.json
    python bench/engine.py --profile --only bert --threads 2   # cProfile of minigrad's step, in-process
"""
import argparse
import glob
import importlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from _processes import (child_environment, emit, format_range, median_range, parse_env_settings,  # noqa: E402
                        round_order, run_child, step_times, wait_for_quiet)

# targets on the fast path (minigrad / PyTorch), by the case name's first word, in the order of
# the speed table
TARGETS = {"mlp": 1.0, "cnn": 1.5, "bert": 1.5, "lstm": 2.0}
# the processes of a round: (label, child arguments, environment)
SIDES = (("torch", ["--side", "torch"], {}),
         ("fast", ["--side", "minigrad"], {"MINIGRAD_KERNELS": "fast"}),
         ("reference", ["--side", "minigrad"], {"MINIGRAD_KERNELS": "reference"}))

# the order of the parts: the speed table's, then parts without a target, sorted
PART_ORDER = tuple(TARGETS)


def case_parts():
    """The parts of every bench/engine_<part>.py, in :data:`PART_ORDER`."""
    parts = [os.path.basename(p)[len("engine_"):-len(".py")] for p in glob.glob(os.path.join(HERE, "engine_*.py"))]
    return sorted(parts, key=lambda part: (PART_ORDER.index(part) if part in PART_ORDER else len(PART_ORDER), part))


def selected_parts(only):
    """Parts to load: those whose name contains ``only`` if any does, else all (then filtered by case name)."""
    parts = case_parts()
    matching = [p for p in parts if only is not None and only in p]
    return matching or parts


def target_of(case):
    """The fast path's target ratio for a case (None: for information only)."""
    return TARGETS.get(case.split("-")[0])


# ------------------------------------------------------------------------------------------ child
def selected_cases(side, only):
    """(name, step) of each case of ``side`` ("torch" or "minigrad") whose module part or name
    contains ``only`` (every case when None)."""
    for part in selected_parts(only):
        module = importlib.import_module(f"engine_{part}")
        for name, step in module.torch_cases() if side == "torch" else module.minigrad_cases():
            if only is None or only in part or only in name:
                yield name, step


def _set_threads(side, threads):
    """Set the threads as a user does, in this (child) process; returns a one-line description."""
    if side == "torch":
        import torch

        torch.set_num_threads(threads)
        return f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    sys.path.insert(0, ROOT)
    import minigrad as mg

    mg.set_num_threads(threads)
    return (f"minigrad kernels {mg.active_kernels()}, {mg.get_num_threads()} threads "
            f"(its own pool {mg.kernels.threads.pool_threads()})")


def _thread_pools():
    from threadpoolctl import threadpool_info

    return ", ".join(f"{i['internal_api']}:{i['num_threads']}" for i in threadpool_info())


def run_side(side, threads, only, steps, warmup):
    """Time every selected case of one side in this process: the child's JSON answer."""
    start = time.perf_counter()
    setup = _set_threads(side, threads)
    cases, timed = {}, 0.0
    for name, step in selected_cases(side, only):
        times, first, other = step_times(step, steps, warmup)
        timed += sum(times)
        cases[name] = {"ms": median_range(times)[0] * 1e3, "first_loss": first, "other_cores": other}
    return {"setup": setup, "pools": _thread_pools(), "cases": cases, "timed_seconds": timed,
            "child_seconds": time.perf_counter() - start}


def profile_minigrad(threads, only, steps):
    """cProfile of ``steps`` minigrad steps per selected case in this process, sorted by own time."""
    import cProfile
    import pstats

    print(_set_threads("minigrad", threads))
    for name, step in selected_cases("minigrad", only):
        for _ in range(3):  # warm-up
            step()
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(steps):
            step()
        profile.disable()
        print(f"\n{name}: {steps} steps, {threads} threads, sorted by own time")
        pstats.Stats(profile).sort_stats("tottime").print_stats(22)


# ----------------------------------------------------------------------------------------- parent
def _check_first_losses(case, losses):
    """Warn when the sides' first losses disagree (different weights or data)."""
    reference = losses.get("torch")
    for label, value in losses.items():
        if reference is not None and abs(value - reference) > 1e-3 * max(1.0, abs(reference)):
            print(f"warning: {case}: first loss {label} {value:.6g} != torch {reference:.6g}", file=sys.stderr)


def measure(args, env_settings):
    """{threads: {case: {label: [median ms per round]}}}, per label [seconds of its processes, of
    which inside the child, of which timed steps] (where the time went), and seconds spent waiting."""
    results, spent, waited = {}, {label: [0.0, 0.0, 0.0] for label, _, _ in SIDES}, 0.0
    sides = [s for s in SIDES if s[0] in args.sides]
    for threads in args.threads:
        per_case = results.setdefault(threads, {})
        for r in range(args.rounds):
            answers = {}
            for label, side_args, env in round_order(sides, r):
                child_args = side_args + ["--threads", threads, "--steps", args.steps, "--warmup", args.warmup]
                if args.only is not None:
                    child_args += ["--only", args.only]
                if args.quiet is not None:
                    waited += wait_for_quiet(args.quiet)
                answer, wall = run_child(__file__, child_args, child_environment({**env_settings, **env}))
                answers[label] = answer
                spent[label][0] += wall
                spent[label][1] += answer["child_seconds"]
                spent[label][2] += answer["timed_seconds"]
                if r == 0 and threads == args.threads[0]:
                    print(f"  {label:<9} {answer['setup']}; pools {answer['pools']}")
            for case in answers[sides[0][0]]["cases"]:
                times = {label: a["cases"][case]["ms"] for label, a in answers.items() if case in a["cases"]}
                for label, ms in times.items():
                    per_case.setdefault(case, {}).setdefault(label, []).append(ms)
                if r == 0:
                    _check_first_losses(case, {label: a["cases"][case]["first_loss"]
                                               for label, a in answers.items() if case in a["cases"]})
            loads = [c["other_cores"] for a in answers.values() for c in a["cases"].values()
                     if c["other_cores"] is not None]
            load = f"; other processes kept up to {max(loads):.1f} cores busy" if loads else ""
            print(f"  {threads} thread(s), round {r + 1}/{args.rounds}, fast / torch: " + ", ".join(
                f"{case} {per_case[case]['fast'][-1] / per_case[case]['torch'][-1]:.2f}"
                for case in per_case if "torch" in per_case[case] and "fast" in per_case[case]) + load, flush=True)
    return results, spent, waited


def ratios(times, label):
    """Per-round ratios label / torch, or None when either side is missing."""
    if label not in times or "torch" not in times:
        return None
    return [a / b for a, b in zip(times[label], times["torch"])]


def table_rows(results):
    """One row per (case, threads): the cells of the printed and the Markdown table."""
    rows = []
    cases = list(dict.fromkeys(case for per_case in results.values() for case in per_case))
    for case in cases:
        for threads, per_case in results.items():
            times = per_case.get(case)
            if times is None:
                continue
            fast, reference = ratios(times, "fast"), ratios(times, "reference")
            target = target_of(case)
            verdict = ""
            if target is not None and fast:
                verdict = "met" if median_range(fast)[0] <= target else "not met"
            rows.append({"case": case, "threads": threads,
                         "torch_ms": median_range(times["torch"])[0] if "torch" in times else None,
                         "fast_ms": median_range(times["fast"])[0] if "fast" in times else None,
                         "fast": format_range(fast) if fast else "-",
                         "reference": format_range(reference) if reference else "-",
                         "target": f"<= {target:.1f}x" if target else "(none)", "verdict": verdict})
    return rows


def print_table(rows):
    print(f"\n{'case':<16} {'thr':>3} {'torch ms':>9} {'fast ms':>8}  {'fast / torch':<19} "
          f"{'reference / torch':<19} target")
    for row in rows:
        torch_ms = f"{row['torch_ms']:.1f}" if row["torch_ms"] is not None else "-"
        fast_ms = f"{row['fast_ms']:.1f}" if row["fast_ms"] is not None else "-"
        print(f"{row['case']:<16} {row['threads']:>3} {torch_ms:>9} {fast_ms:>8}  {row['fast']:<19} "
              f"{row['reference']:<19} {row['target']} {row['verdict']}")


def write_markdown(path, rows, args):
    command = (f"python bench/engine.py --threads {' '.join(map(str, args.threads))} --rounds {args.rounds} "
               f"--steps {args.steps}" + (f" --only {args.only}" if args.only else ""))
    lines = [f"Timed as users run it, one library per process (`{command}`): minigrad / PyTorch CPU "
             f"step time, median (min-max) over {args.rounds} rounds; lower is better.", "",
             "| case | threads | fast kernels / PyTorch | reference kernels / PyTorch | target (fast) |",
             "|---|---|---|---|---|"]
    for row in rows:
        target = f"{row['target']} {row['verdict']}".strip()
        lines.append(f"| {row['case']} | {row['threads']} | {row['fast']} | {row['reference']} | {target} |")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def print_time_spent(spent, waited, total):
    print(f"\nwhere the time went ({total:.0f} s in all):")
    if waited:
        print(f"  waiting for a quiet machine (--quiet) {waited:.1f} s")
    for label, (wall, child, timed) in spent.items():
        if wall:
            print(f"  {label:<9} processes {wall:6.1f} s: start-up and imports {wall - child:5.1f} s, "
                  f"building cases and warm-up {child - timed:5.1f} s, timed steps {timed:5.1f} s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    parser.add_argument("--rounds", type=int, default=7, help="fresh processes per library and thread count")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case in each process")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per case first")
    parser.add_argument("--only", default=None, help="only cases whose module part or name contains this")
    parser.add_argument("--sides", nargs="+", default=[s[0] for s in SIDES], choices=[s[0] for s in SIDES],
                        help="which processes to run (default: torch fast reference)")
    parser.add_argument("--quiet", type=float, default=None, metavar="CORES",
                        help="start each process once other processes keep fewer than CORES cores busy "
                             "(waiting at most a minute; for a shared machine)")
    parser.add_argument("--env", action="append", metavar="NAME=VALUE", help="set in every child (repeatable)")
    parser.add_argument("--json", default=None, help="also write every round's times to this JSON file")
    parser.add_argument("--markdown", default=None, help="write the ratio table (README's) to this file")
    parser.add_argument("--profile", action="store_true", help="profile minigrad's steps in this process instead")
    parser.add_argument("--side", choices=("torch", "minigrad"), help=argparse.SUPPRESS)  # a child's role
    args = parser.parse_args(argv)
    if min(args.threads + [args.rounds, args.steps, args.warmup]) < 1:
        parser.error("--threads, --rounds, --steps and --warmup must be positive")
    if args.side:
        emit(run_side(args.side, args.threads[0], args.only, args.steps, args.warmup))
        return 0
    if args.profile:
        profile_minigrad(args.threads[0], args.only, args.steps)
        return 0
    if "torch" not in args.sides:
        parser.error("--sides must include torch (the baseline of every ratio)")
    try:
        env_settings = parse_env_settings(args.env)
    except ValueError as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    print(f"one library per process, threads {args.threads}, {args.rounds} rounds of {args.steps} timed steps "
          f"per case after {args.warmup} warm-up steps")
    results, spent, waited = measure(args, env_settings)
    rows = table_rows(results)
    if not rows:
        print(f"no case matched --only {args.only!r}")
        return 1
    print_table(rows)
    print_time_spent(spent, waited, time.perf_counter() - start)
    if args.markdown:
        write_markdown(args.markdown, rows, args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rounds": args.rounds, "steps": args.steps, "results": results, "table": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
