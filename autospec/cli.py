"""The ``autospec`` command line: list, run, demo, sweep, stats, plot.

    autospec demo                                   # a small real run, the README's first command
    autospec list                                   # experiments, their data, models and panels
    autospec run digits-mlp --panel G --epochs 300  # one experiment panel -> record, figures, summary
    autospec sweep --experiments digits-mlp --panels A B --seeds 0 1 --workers 2
    autospec stats runs/digits-mlp/G/seed0 --groups 0 1
    autospec plot runs/digits-mlp/G/seed0 --out figures/

Bad input (unknown experiment or panel, a wrong --data path, a malformed config file, cuda
without a GPU, an --out folder holding other files) ends with a one-line message and exit code
2; Ctrl-C ends a run with code 130 after saying where it stopped (its record keeps every
finished step, its checkpoint lets the same command continue). Any other error is a bug of
ours: its traceback is printed with a request to report it, exit code 70.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

EXIT_USAGE = 2
EXIT_BUG = 70  # EX_SOFTWARE: an internal error
EXIT_INTERRUPTED = 130
BUG_REPORT = ("autospec: this is a bug in autospec, not a problem with your input; please report it "
              "with the traceback above")
DEMO_EPOCHS = 300


from .errors import UsageError  # re-exported as cli.UsageError
from .interrupts import sigterm_as_interrupt


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _count(text):
    """A whole number, also written as 1e3 (range checks are the settings' own)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid whole number: {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"invalid whole number: {text!r}")
    return int(value)


def _positive(text):
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _add_run_folder_options(p):
    """How a run treats its --out folder (run and demo)."""
    from .training import DEFAULT_CHECKPOINT_SECONDS

    g = p.add_argument_group("the output folder (nothing in it is ever deleted)")
    g.add_argument("--restart", action="store_true",
                   help="start over: move the earlier run's files into OUT/backup-<date-time>/ (default: continue "
                        "an unfinished run with the same settings from its checkpoint)")
    g.add_argument("--force", action="store_true",
                   help="move files in the way (a run with other settings, your own files under the names a run "
                        "writes) into OUT/backup-<date-time>/ instead of stopping")
    g.add_argument("--checkpoint-seconds", type=_seconds, default=DEFAULT_CHECKPOINT_SECONDS, metavar="S",
                   help=f"save the training state at least every S seconds (default {DEFAULT_CHECKPOINT_SECONDS:g}): "
                        f"the most work a kill can cost")


# ----------------------------------------------------------------------------- arguments


def _add_settings(p, sweep=False):
    """Flags that override experiment settings (shared by run, demo and sweep)."""
    g = p.add_argument_group("settings (override the experiment's TOML file and panel)")
    if not sweep:
        g.add_argument("--seed", type=_count, help="random seed of the model initialization (default 0)")
    g.add_argument("--epochs", type=_count, help="training epochs (paper: 1000)")
    g.add_argument("--device", choices=["cpu", "cuda"], help="where to train (cuda needs CuPy and a GPU)")
    g.add_argument("--data", metavar="PATH", help="real data for the experiment's loader (folder or file)")
    g.add_argument("--participants", metavar="CSV", help="participants table (subject, group columns) for --data")
    g.add_argument("--config", metavar="FILE", help="TOML file with settings (same keys as autospec/configs/*.toml)")
    g.add_argument("--width", type=_count, help="hidden width (Table 1: 8, 32, 64; text: 128 wide/shallow)")
    g.add_argument("--depth", type=_count, help="number of hidden layers (3 with --width 8: the text's deep/thin)")
    g.add_argument("--activation", choices=["relu", "tanh", "sigmoid", "gelu"])
    g.add_argument("--task", choices=["autoencode", "classify"])
    g.add_argument("--lr", type=float, help="learning rate (default 1e-3; the paper's value is not given)")
    g.add_argument("--optimizer", choices=["adam", "sgd"])
    g.add_argument("--batch-size", type=_count, help="0 = full batch (default)")
    g.add_argument("--preset", choices=["economy", "business", "full"], help="Introspector preset")
    g.add_argument("--every", type=_count, help="record every k-th step")
    g.add_argument("--no-figures", action="store_true", help="skip the figures")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other setting, TOML-valued, e.g. --set data.n=100 --set 'compare=[\"SZ\",\"HC\"]'")


def build_parser():
    parser = _Parser(prog="autospec", description="Gradient spectra of every layer during training, per group "
                                                  "of samples: the paper's experiments from the command line.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("list", help="list the experiments and panels")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one experiment (one panel)")
    p.add_argument("experiment", nargs="?", help="experiment name (see `autospec list`); optional with --config")
    p.add_argument("--panel", help="panel A-H of Table 1 (default: the experiment's own settings, as panel A)")
    p.add_argument("--out", metavar="DIR", help="output folder (default runs/EXPERIMENT/PANEL/seedS)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    _add_run_folder_options(p)
    _add_settings(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help=f"a small real run (digits MLP auto-encoder with groups, {DEMO_EPOCHS} epochs)")
    p.add_argument("--out", metavar="DIR", default="autospec-demo", help="output folder (default ./autospec-demo)")
    p.add_argument("--epochs", type=_count, default=DEMO_EPOCHS)
    p.add_argument("--quiet", action="store_true")
    _add_run_folder_options(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("sweep", help="run experiments x panels x seeds (skips finished runs)")
    p.add_argument("--experiments", nargs="+", metavar="NAME", help="default: all")
    p.add_argument("--panels", nargs="+", metavar="P", help="default: each experiment's panels (A-H)")
    p.add_argument("--seeds", nargs="+", type=_count, default=[0], metavar="S")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive, default=1, metavar="N", help="local worker processes (default 1)")
    where.add_argument("--dask", metavar="ADDRESS", help="a dask.distributed scheduler (workers share OUT)")
    where.add_argument("--dask-local", type=_positive, metavar="N", help="start a local dask cluster of N workers")
    p.add_argument("--out", metavar="DIR", default="sweep", help="output folder (default ./sweep)")
    p.add_argument("--force", action="store_true", help="rerun finished runs too")
    p.add_argument("--quiet", action="store_true")
    _add_settings(p, sweep=True)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("stats", help="group statistics of a record (calibrated tests by default)",
                       description="Group tests of a record. By default only calibrated tests run: Welch tests "
                                   "(log10 values) over per-sample values with BH-FDR within each map. The paper's "
                                   "t-tests (--tests paper) are labelled 'paper (uncalibrated)'.")
    p.add_argument("records", nargs="+", metavar="RECORD",
                   help="record.h5 (or a run folder holding one); several records of one setting, one per seed, "
                        "are compared with the seeds as replicates")
    p.add_argument("--groups", nargs="+", metavar="G", help="groups to compare (default: every pair)")
    p.add_argument("--tests", choices=["calibrated", "paper"],
                   help="calibrated (default): per-sample tests, or per-seed tests for several records; "
                        "paper: the paper's uncalibrated t-tests (one record)")
    p.add_argument("--mode", choices=["auto", "paper", "per_sample"],
                   help="older spelling of --tests (auto and per_sample = calibrated)")
    p.add_argument("--fdr", action=argparse.BooleanOptionalAction, default=True,
                   help="Benjamini-Hochberg FDR within each map (default on)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--permutations", type=int, default=0, metavar="N",
                   help="also run permutation tests with N relabellings (default 0: Welch only)")
    p.add_argument("--raw", action="store_true", help="test raw values instead of log10 (calibrated tests)")
    p.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    p.add_argument("--layers", nargs="+", metavar="L")
    p.add_argument("--quantities", nargs="+", choices=["G", "A", "D"])
    p.add_argument("--significant", action="store_true", help="only rows with significant cells")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table",
                   help="table (default), or one JSON/CSV row per map for scripts")
    p.add_argument("--null", type=int, metavar="N",
                   help="rerun the tests on N label permutations: the rate of maps with any finding under no "
                        "effect (per row: null_rate) and a p-value histogram figure")
    p.add_argument("--out", metavar="DIR", help="folder of the --null figure (default: beside the record)")
    p.add_argument("--baseline", metavar="DATA.npz",
                   help="also test per-sample input features (norms, top singular values): arrays X (N, ...) "
                        "and labels (N,) in an .npz file")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("plot", help="figures of a record, or the panel figure of several panel records")
    p.add_argument("records", nargs="+", metavar="RECORD",
                   help="record.h5 files or run folders; records of different panels (A-H) give the paper's "
                        "panel figure (add --each for every record's own figures too)")
    p.add_argument("--out", metavar="DIR", help="where the figure folders go (default: figures/ beside the first "
                                                "record); each run gets its own folder, e.g. digits-mlp_G_seed0")
    p.add_argument("--groups", nargs="+", metavar="G",
                   help="groups of the difference figures (default: all; more than two: a grid of every pair)")
    p.add_argument("--tests", choices=["calibrated", "paper"], default="calibrated",
                   help="calibrated: per-sample / per-seed tests (default); paper: the paper's uncalibrated tests")
    p.add_argument("--quantities", nargs="+", choices=["G", "A", "D"], help="trajectories of these (default: all)")
    p.add_argument("--each", action="store_true", help="with several panel records: each record's figures too")
    p.add_argument("--formats", nargs="+", default=["png", "pdf"], choices=["png", "pdf", "svg"])
    p.add_argument("--dpi", type=int, default=150, help="resolution of PNG figures (default 150)")
    p.add_argument("--force", action="store_true",
                   help="write into figure folders that hold files, moving those files into a backup folder there")
    p.set_defaults(func=cmd_plot)
    return parser


def _overrides(args, sweep=False):
    from .experiments import parse_assignment

    out = {}
    for flag, key in (("epochs", "epochs"), ("device", "device"), ("data", "data_path"),
                      ("participants", "participants"), ("width", "width"), ("depth", "depth"),
                      ("activation", "activation"), ("task", "task"), ("lr", "lr"), ("optimizer", "optimizer"),
                      ("batch_size", "batch_size"), ("preset", "preset"), ("every", "every"), ("seed", "seed")):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    if getattr(args, "no_figures", False):
        out["figures"] = False
    for text in args.set:
        path, value = parse_assignment(text)
        if len(path) == 1:
            out[path[0]] = value
        else:
            out.setdefault(path[0], {})[path[1]] = value
    return out


# ----------------------------------------------------------------------------- commands


def cmd_list(args):
    from .experiments import PANELS, experiment_info, list_experiments

    rows = []
    for name in list_experiments():
        info = experiment_info(name)
        data = info.get("dataset", "?") + (f" (real: --data via {info['loader']})" if info.get("loader") else "")
        rows.append((name, data, info.get("model", "?"), "".join(info.get("panels", PANELS)),
                     info.get("description", "")))
    head = ("experiment", "data", "model", "panels", "description")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(4)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[4]
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)) + "  " + r[4])
    print("\npanels (Table 1):")
    for key, (_, text) in PANELS.items():
        print(f"  {key}  {text}")
    return 0


def _print_findings(result, limit=12):
    summary = result.summary
    if summary is None:
        print(f"group findings: {result.findings_note}")
        return
    rows = summary.significant_rows()
    print(f"group findings: {len(rows)} of {len(summary.rows)} tested maps have significant cells "
          f"(BH-FDR q <= {summary.alpha:g})")
    if rows:
        from .stats import Summary

        shown = Summary(rows[:limit], [], summary.alpha, summary.fdr, summary.method)
        print(shown.to_text(only_significant=True))
        if len(rows) > limit:
            print(f"... {len(rows) - limit} more in summary.txt")


def _run_one(config, out, args):
    from .experiments import run_experiment

    quiet = args.quiet
    result = run_experiment(config, out, quiet=quiet, restart=args.restart, force=args.force,
                            checkpoint_seconds=args.checkpoint_seconds)
    if not quiet:
        _print_findings(result)
    return result


def cmd_run(args):
    from .experiments import resolve_config

    config = resolve_config(args.experiment, panel=args.panel, config_file=args.config, overrides=_overrides(args))
    out = Path(args.out) if args.out else Path("runs") / config.experiment / (config.panel or "base") / \
        f"seed{config.seed}"
    with sigterm_as_interrupt():
        _run_one(config, out, args)
    return 0


def cmd_demo(args):
    from .experiments import resolve_config

    start = time.perf_counter()
    # The digits MLP auto-encoder with group differences (panel G), classes 0-9 as groups; the
    # text summary compares digits 0 and 1 (every pair is in the record for `autospec stats`).
    config = resolve_config("digits-mlp", panel="G", overrides={
        "epochs": args.epochs, "data": {"n": 300}, "compare": ["0", "1"]})
    if not args.quiet:
        print(f"autospec demo: {config.label} -- MLP auto-encoder [32] ReLU on 300 handwritten digits, "
              f"groups = digit classes, spectra of G, A, D every step for {config.epochs} epochs\n")
    with sigterm_as_interrupt():
        result = _run_one(config, Path(args.out), args)
    if not args.quiet:
        print(f"\ndone in {time.perf_counter() - start:.1f} s. Next: `autospec stats {result.record_path} "
              f"--groups 3 8`, `autospec plot {result.record_path}`, `autospec list`")
    return 0


def cmd_sweep(args):
    from .outputs import check_not_a_file
    from .sweep import run_sweep

    check_not_a_file(args.out)
    report = run_sweep(experiments=args.experiments, panels=args.panels, seeds=args.seeds, out=args.out,
                       overrides=_overrides(args, sweep=True), config_file=args.config, workers=args.workers,
                       dask=args.dask, dask_local=args.dask_local, force=args.force, quiet=args.quiet)
    return 0 if report.ok else 1


def _record_path(text):
    path = Path(text)
    if path.is_dir():
        path = path / "record.h5"
    if not path.is_file():
        raise FileNotFoundError(f"no record at {text} (give a record.h5 file or a run folder holding one)")
    return path


def cmd_stats(args):
    from . import calibration, stats
    from .record import load_record

    paths = [_record_path(text) for text in args.records]
    path = paths[0]
    if len(paths) > 1 and (args.tests == "paper" or args.mode == "paper"):
        raise UsageError("the paper's tests compare the groups of one record; give one record, or several (one per "
                         "seed) with the default calibrated tests")
    records = [load_record(p) for p in paths]
    rec = records[0] if len(records) == 1 else records  # several records: one per seed, the seeds as replicates
    log = False if args.raw else None
    summary = stats.summarize(rec, groups=args.groups, fdr=args.fdr, alpha=args.alpha, tests=args.tests,
                              mode=args.mode, layers=args.layers, quantities=args.quantities,
                              n_permutations=args.permutations, seed=args.seed, log=log)
    paper = any(not r["calibrated"] for r in summary.rows)
    messages, extra = [], []
    if args.null is not None:
        if paper:
            raise UsageError("--null reruns tests on permuted sample labels; the paper's tests compare group spectra "
                             "computed during training, which a relabelling cannot recompute (use the default tests)")
        layers = sorted({r["layer"] for r in summary.rows}, key=[r["layer"] for r in summary.rows].index)
        kind = "samples" if len(records) == 1 else "seeds"
        runs = [(f"welch-{kind}", 0)] + ([(f"perm-{kind}", args.permutations)] if args.permutations else [])
        for test, n_perm in runs:
            null = calibration.null_calibration(rec, args.null, layers=layers, groups=args.groups, alpha=args.alpha,
                                                n_permutations=n_perm, log=log, seed=args.seed)
            _attach_null(summary.rows, test, null)
            folder = Path(args.out) if args.out else path.parent
            figure = calibration.plot_null_pvalues(
                null, folder / f"{path.stem}-null-pvalues{'' if not n_perm else '-permutation'}.png")
            messages += [null.to_text(), f"null p-value histogram: {figure}"]
    if args.baseline:
        extra = stats.summary_of(calibration.data_baseline(*_baseline_arrays(args.baseline), groups=args.groups,
                                                           n_permutations=args.permutations, seed=args.seed,
                                                           fdr=args.fdr, log=log), args.alpha, args.fdr)
    if args.format == "table":
        first = records[0]
        meta = first.metadata or {}
        what = f"record: {args.records[0]}" if len(records) == 1 else f"{len(records)} records (seeds as replicates)"
        print(f"{what} ({meta.get('experiment', 'run')}, {len(first)} steps, groups {', '.join(first.groups) or 'none'})")
        print(summary.to_text(only_significant=args.significant))
        if extra:
            print(f"\ndata-only baseline ({args.baseline}): the same tests on per-sample input features")
            print(extra.to_text())
        for message in messages:
            print("\n" + message)
        return 0
    if extra:
        summary.rows += extra.rows
    if args.format == "json":
        print(summary.to_json())
    else:
        print(summary.to_csv(), end="")
    for message in messages:  # the rows go to stdout; the readable calibration report to stderr
        print(message, file=sys.stderr)
    return 0


def _attach_null(rows, test, null):
    """Copy the per-map null rate of a calibration onto the summary rows of ``test``."""
    rates = {(m["layer"], m["quantity"], m["groups"]): m for m in null.maps}
    for row in rows:
        m = rates.get((row["layer"], row["quantity"], row["groups"]))
        if row["test"] == test and m is not None:
            row["null_rate"], row["null_interval"], row["null_n"] = m["rate"], list(m["interval"]), null.n_null


def _baseline_arrays(file):
    """(X, labels) from an .npz file (never unpickled)."""
    import numpy as np

    from .stats import StatsError

    try:
        with np.load(file, allow_pickle=False) as data:
            missing = [k for k in ("X", "labels") if k not in data.files]
            if missing:
                raise StatsError(f"{file} lacks array(s) {missing}: the baseline needs X (N, ...) and labels (N,), "
                                 f"the file has {data.files}")
            return data["X"], data["labels"]
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        if isinstance(exc, StatsError):
            raise
        raise StatsError(f"cannot read {file} as an .npz file of plain arrays: {exc}") from exc


def cmd_plot(args):
    """Figures of each record into its own folder under --out (named after its run), or the panel
    figure of several panel records; never overwrites a file (--force moves old ones aside)."""
    from . import plot
    from .plot_files import FigureFolder, check_output_root, run_label, run_labels
    from .plot_groups import choose_groups, record_groups
    from .record import load_record

    paths = [_record_path(r) for r in args.records]
    records = [load_record(p) for p in paths]
    root = Path(args.out) if args.out else paths[0].parent / "figures"
    check_output_root(root)
    if args.groups and len(args.groups) < 2:
        raise UsageError(f"--groups needs at least two groups, got {args.groups}")
    for rec in records:  # unknown groups fail before anything is drawn
        if args.groups and record_groups(rec):
            choose_groups(rec, args.groups)
    panels = {(r.metadata or {}).get("panel"): r for r in records}
    panel_figure = len(records) > 1 and None not in panels and len(panels) == len(records)
    each = not panel_figure or args.each
    labels = run_labels(records, paths)
    # every folder is checked before the first figure is drawn
    if not 10 <= args.dpi <= 1200:
        raise UsageError(f"--dpi must be between 10 and 1200, got {args.dpi}")
    opts = dict(formats=args.formats, dpi=args.dpi, force=args.force)
    folders = [FigureFolder(root / label, **opts) for label in labels] if each else []
    written, notes = [], []
    if panel_figure:
        name = "panels_" + run_label(records[0], paths[0], with_panel=False) + "_" + "".join(sorted(panels))
        panel_folder = FigureFolder(root / name, **opts)
        fig = plot.plot_panels(panels, groups=args.groups, tests=args.tests)
        written += panel_folder.save(fig, "panels")
    for rec, folder in zip(records, folders):
        report = plot.write_record_figures(rec, folder, quantities=args.quantities, groups=args.groups,
                                           tests=args.tests)
        written += report.written
        notes += report.notes
    for p in written:
        print(p)
    for note in notes:
        print(f"autospec plot: {note}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- entry point


def main(argv=None):
    """Run the command line; returns the exit code (0 ok, 1 failed runs in a sweep, 2 bad input,
    70 a bug of ours, 130 interrupted). Set AUTOSPEC_DEBUG=1 to see tracebacks of input errors."""
    from minigrad.backend import DeviceError

    from .errors import AutoSpecError
    from .experiments import RunInterrupted

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except RunInterrupted as exc:
        s = exc.status
        again = ("starts it again" if s.get("checkpoint_step") is None
                 else f"continues from the checkpoint at step {s.get('checkpoint_step')}")
        print(f"\nautospec: interrupted at epoch {s.get('epoch')} of {s.get('epochs')} (step {s.get('step')}); "
              f"{s.get('record')} keeps {s.get('steps_recorded')} steps; status.json says 'interrupted'; the same "
              f"command {again}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("\nautospec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (AutoSpecError, DeviceError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
            PermissionError) as exc:
        # our bad-input errors, and the user's paths that do not exist or cannot be read
        if os.environ.get("AUTOSPEC_DEBUG"):
            raise
        message = str(exc) if not isinstance(exc, KeyError) else str(exc.args[0] if exc.args else exc)
        print(f"autospec: error: {' '.join(message.split())}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        traceback.print_exc()
        print(BUG_REPORT, file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
