"""Running one experiment end to end, so that nothing is lost: ``run_experiment``.

    result = run_experiment(resolve_config("digits-mlp", "G"), "runs/digits-mlp-G")

The run trains the config's model with the Introspector on every step and writes its record,
summary, figures, resolved config.toml and status.json into the output folder (see
:mod:`autospec.outputs` for which names it owns and how it treats files already there). It
keeps a checkpoint of the training state (:mod:`autospec.checkpoint`) beside the record,
written at least every ``checkpoint_seconds`` of training and when it stops on Ctrl-C/SIGTERM,
so that running the same settings into the same folder again continues where it stopped: the
record is cut back to the checkpoint's step and training goes on from there, and the finished
record equals an uninterrupted run's.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import outputs
from .atomic import write_json_atomically, write_text_atomically
from .checkpoint import CheckpointError, TrainingState, apply_checkpoint, load_checkpoint, save_checkpoint
from .config import (PANELS, ExperimentConfig, ExperimentError, config_to_toml, describe_differences, differing_settings,
                     load_config_file)
from .experiment_data import load_experiment_data
from .reports import write_figures, write_summary
from .resources import ResourceError, check_data_memory, check_model_memory, format_bytes, record_estimate

#: At most this much training time is lost when a run is killed without warning (SIGKILL, power).
DEFAULT_CHECKPOINT_SECONDS = 60.0


class RunInterrupted(Exception):
    """A run stopped by Ctrl-C / SIGTERM; ``status`` says where (the record keeps every step, the
    checkpoint lets the same command continue)."""

    def __init__(self, status):
        super().__init__(f"interrupted at epoch {status.get('epoch')} of {status.get('epochs')} "
                         f"(step {status.get('step')})")
        self.status = status


@dataclass
class RunResult:
    """What one run produced."""

    config: ExperimentConfig
    out_dir: Path
    record_path: Path
    status: dict
    final_loss: float
    accuracy: float | None
    wall_seconds: float
    summary_path: Path | None = None
    summary_text: str | None = None
    summary: object = None  # the calibrated group tests (stats.Summary), or None: see findings_note
    findings_note: str | None = None
    figure_paths: list = field(default_factory=list)
    resumed_from_step: int | None = None  # the checkpoint's step when the run continued an earlier one
    backup_dir: Path | None = None  # where files already in the folder were moved, if any


def _say(quiet, *args):
    if not quiet:
        from tqdm import tqdm

        tqdm.write(" ".join(str(a) for a in args), file=sys.stdout)


def _notice(text):
    """Lines about the user's files (resumed, moved aside): printed even when quiet."""
    print(f"autospec: {text}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- building blocks


def _build(config, X, data):
    import minigrad as mg
    from minigrad import nn, optim
    from models import build_model

    mg.manual_seed(config.seed)
    n_classes = int(data.y.max()) + 1 if config.task == "classify" else None
    if config.task == "classify" and n_classes < 2:
        raise ExperimentError(f"classification needs at least 2 classes; the data has labels {np.unique(data.y)}")
    try:
        model = build_model(config.model, config.task, X.shape[1:], n_classes=n_classes, width=config.width,
                            depth=config.depth, activation=config.activation, **config.model_options)
    except (TypeError, ValueError) as exc:
        raise ExperimentError(f"model_options {config.model_options}: {exc}") from None
    model.to(config.device)
    opt_cls = optim.Adam if config.optimizer == "adam" else optim.SGD
    optimizer = opt_cls(model.parameters(), lr=config.lr)
    loss_fn = nn.MSELoss() if config.task == "autoencode" else nn.CrossEntropyLoss()
    return model, optimizer, loss_fn


def _introspector(config, model, path, metadata, record=None):
    from .introspect import Introspector

    kwargs = {"preset": config.preset, "metadata": metadata}
    kwargs.update({"record": record} if record is not None else {"path": path})
    if config.quantities:
        kwargs["quantities"] = tuple(config.quantities)
    if config.k:
        kwargs["k"] = config.k
    if config.every:
        kwargs["every"] = config.every
    if config.per_sample:
        kwargs["per_sample"] = True
    if config.positions:
        kwargs["positions"] = True
    return Introspector(model, **kwargs)


def _batch_count(n, batch_size):
    """Steps per epoch: one full batch when ``batch_size`` is 0 or at least ``n``."""
    return 1 if not batch_size or batch_size >= n else math.ceil(n / batch_size)


def _batches(n, batch_size, rng):
    if _batch_count(n, batch_size) == 1:
        return [slice(None)]
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


class _StopAtStepEnd:
    """While active (main thread only), Ctrl-C and SIGTERM ask the training loop to stop after
    the step in progress, so that the checkpoint written on the way out is consistent; a second
    signal stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        _notice("stopping after this step to save a checkpoint (press Ctrl-C again to stop at once)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


# ----------------------------------------------------------------------------- the folder


def _previous_settings(out, status):
    if isinstance(status.get("settings"), dict):
        return status["settings"]
    try:
        return load_config_file(out / outputs.CONFIG_NAME)
    except ExperimentError:
        return {}


def _prepare_folder(out, config, restart, force):
    """Decide how the run starts in ``out`` (locked by the caller): returns (TrainingState to
    resume from or None, backup folder or None). Raises OutputFolderError for a folder that
    holds other files, unless ``force``/``restart`` allow moving them aside."""
    found = outputs.survey(out)
    move = []
    if found.foreign:
        if not force:
            raise outputs.OutputFolderError(
                f"{out} holds {outputs.format_names(found.foreign)}, not written by an autospec run (your own "
                f"files?); choose another --out, or pass --force to move them into {out}/backup-<date-time>/")
        move += found.foreign
    previous, state = found.previous, None
    if not found.results:  # an earlier run that stopped before recording anything: nothing to keep
        previous = None
    if previous is not None:
        same = previous.get("run_digest") == config.run_digest()
        if not same and not (restart or force):
            changes = describe_differences(differing_settings(_previous_settings(out, previous), config.run_settings()))
            raise outputs.OutputFolderError(
                f"{out} holds a run with other settings ({changes or 'an older autospec version'}); "
                f"pass --restart to move its files into a backup folder and start over, or choose another --out")
        if same and not restart:
            state = _usable_checkpoint(out, config)
        if state is None:
            move += found.ours
    backup = outputs.move_into_backup(out, move)
    if backup is not None:
        _notice(f"moved {outputs.format_names(move)} from {out} into {backup} (nothing was deleted)")
    return state, backup


def _usable_checkpoint(out, config):
    """The checkpoint of the earlier run in ``out`` when it can be continued, else None (its files
    are then moved aside and the run starts over)."""
    path = out / outputs.CHECKPOINT_NAME
    if not path.is_file() or not (out / outputs.RECORD_NAME).is_file():
        _notice(f"{out}: the earlier run left no checkpoint to continue from; starting over")
        return None
    try:
        state = load_checkpoint(path)
    except CheckpointError as exc:
        _notice(f"{exc}; starting over")
        return None
    if state.config_digest != config.run_digest():
        _notice(f"{path} belongs to other settings; starting over")
        return None
    return state


# ----------------------------------------------------------------------------- running


def run_experiment(config, out_dir, quiet=False, progress=None, *, restart=False, force=False,
                   checkpoint_seconds=DEFAULT_CHECKPOINT_SECONDS):
    """Train ``config``'s model on its data with the Introspector on every step and write into
    ``out_dir``: record.h5 (file-backed, so an interrupted run keeps its steps), checkpoint.npz,
    summary.txt (group findings), figures/*.png|pdf, config.toml and status.json (how far it got).

    The same settings into a folder holding an unfinished run continue it from its checkpoint;
    ``restart=True`` starts over after moving the old files into ``OUT/backup-<date-time>/``.
    A folder holding a run with other settings, or files under our names that autospec did not
    write, is an error unless ``force=True`` (which moves them into the backup folder first).
    Nothing is ever deleted. ``checkpoint_seconds``: the most training time a SIGKILL can cost.

    ``quiet`` silences log lines and the progress bar (shown only when stderr is a terminal;
    ``progress=True`` or ``False`` overrides the bar alone).
    Ctrl-C / SIGTERM stop after the current step, save a checkpoint and raise
    :class:`RunInterrupted`. Returns a :class:`RunResult`.
    """
    from minigrad.backend import DeviceError, xp_for

    if not isinstance(config, ExperimentConfig):
        raise TypeError(f"config must be an ExperimentConfig (see resolve_config), got {type(config).__name__}")
    if not checkpoint_seconds >= 0:
        raise ExperimentError(f"checkpoint_seconds must be >= 0, got {checkpoint_seconds}")
    try:
        xp_for(config.device)  # a clear error before any work when cuda is asked for without a GPU
    except DeviceError as exc:
        raise ExperimentError(str(exc)) from None
    out = outputs.make_out_dir(out_dir)
    lock = outputs.RunLock(out).acquire()
    try:
        try:
            resume, backup = _prepare_folder(out, config, restart, force)
        except BaseException:
            lock.release(remove=True)
            raise
        run = _Run(config, out, quiet, progress, checkpoint_seconds, resume)
        result = run.go()
        result.backup_dir = backup
        return result
    finally:
        lock.release()


class _Run:
    """One run's state while it trains (used by run_experiment only)."""

    def __init__(self, config, out, quiet, progress, checkpoint_seconds, resume):
        self.config, self.out, self.quiet = config, out, quiet
        # the bar: on a terminal unless quiet (tqdm's disable=None: off when stderr is no terminal, e.g. a log
        # file); progress=True/False forces it on/off
        self.bar_off = (True if quiet else None) if progress is None else not progress
        self.checkpoint_seconds = checkpoint_seconds
        self.resume = resume
        self.record_path = out / outputs.RECORD_NAME
        self.status_path = out / outputs.STATUS_NAME
        self.start = time.perf_counter()
        self.status = {
            "state": "running", "experiment": config.experiment, "panel": config.panel, "seed": config.seed,
            "config_digest": config.digest(), "run_digest": config.run_digest(), "epoch": 0,
            "epochs": config.epochs, "step": 0, "steps_recorded": 0, "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_seconds": 0.0, "record": outputs.RECORD_NAME,
            "checkpoint": outputs.CHECKPOINT_NAME, "checkpoint_step": None, "settings": config.run_settings(),
        }
        if resume is not None:
            self.status.update(epoch=resume.epoch, step=resume.step, checkpoint_step=resume.step,
                               resumed_from_step=resume.step)

    def update(self, **changes):
        self.status.update(changes, wall_seconds=round(time.perf_counter() - self.start, 3))
        write_json_atomically(self.status_path, self.status)

    def go(self):
        config, out = self.config, self.out
        self.update()
        write_text_atomically(out / outputs.CONFIG_NAME,
                                      config_to_toml(config, header=outputs.config_header(config.label)))
        try:
            self._prepare()
        except KeyboardInterrupt:
            self.update(state="interrupted")
            raise RunInterrupted(self.status) from None
        except BaseException as exc:
            self.update(state="failed", message=str(exc))
            raise
        self._train()
        return self._finish()

    # -- before training ----------------------------------------------------------------------

    def _prepare(self):
        import minigrad as mg

        config = self.config
        check_data_memory(config)
        self.data, X, self.groups, self.description = load_experiment_data(config)
        n_outputs = int(self.data.y.max()) + 1 if config.task == "classify" else None
        check_model_memory(config, X.shape[0], X.shape[1:], n_outputs, data_bytes=X.nbytes)
        self.model, self.optimizer, self.loss_fn = _build(config, X, self.data)
        self.n = X.shape[0]
        target = self.data.y if config.task == "classify" else None
        self.xs = mg.tensor(X, device=config.device)
        self.targets = mg.tensor(target, device=config.device) if target is not None else self.xs
        self.data_rng = np.random.default_rng(config.seed)
        self.step, self.loss_value, self.first_epoch, self.first_batch = 0, float("nan"), 0, 0
        self.train_seconds_before = 0.0
        if self.resume is not None:
            state = self.resume
            apply_checkpoint(state, self.model, self.optimizer)
            mg.random.default_generator().bit_generator.state = state.model_rng
            self.data_rng.bit_generator.state = state.data_rng
            self.step, self.loss_value = state.step, state.loss
            self.first_epoch, self.first_batch = state.epoch, state.batch
            self.train_seconds_before = state.wall_seconds
        self._check_record_size(X)
        self.spec = self._open_record()

    def _metadata(self):
        config, loss_fn = self.config, self.loss_fn
        return {
            "experiment": config.label, "experiment_name": config.experiment, "panel": config.panel,
            "panel_description": PANELS[config.panel][1] if config.panel else None,
            "config": config.to_dict(), "data": self.description, "seed": config.seed,
            "loss": type(loss_fn).__name__, "loss_reduction": loss_fn.reduction,
            "optimizer": {"name": config.optimizer, "lr": config.lr}, "batch_size": config.batch_size or None,
            "n_parameters": int(sum(math.prod(p.shape) for p in self.model.parameters())),
        }

    def _open_record(self):
        if self.resume is None:
            return _introspector(self.config, self.model, self.record_path, self._metadata())
        from .record import Record, RecordError

        step = self.resume.step
        try:
            record = Record.resume(self.record_path, step - 1)
        except RecordError as exc:
            raise ExperimentError(f"{exc}; this run cannot be continued: pass --restart to move its files into a "
                                  f"backup folder and start over") from None
        if record.resumed_backup:
            _notice(f"{self.record_path}: steps after the checkpoint were cut; the file as it was is kept "
                    f"in {record.resumed_backup}")
        spec = _introspector(self.config, self.model, None, self._metadata(), record=record)
        spec.steps_seen = step
        missing = len(range(0, step, spec.every)) - len(record)
        if missing > 0:
            _notice(f"{self.record_path} lacks {missing} of the steps before the checkpoint (a damaged record?); "
                    f"they stay missing, the run goes on from step {step}")
        if self.resume.epoch >= self.config.epochs:
            _notice(f"{self.out} holds this run, finished ({step} steps); writing its summary and figures again "
                    f"(use --restart to train again)")
        else:
            _notice(f"{self.out}: continuing {self.config.label} from its checkpoint at step {step} (epoch "
                    f"{self.resume.epoch} of {self.config.epochs}); use --restart to start over")
        return spec

    def _check_record_size(self, X):
        """Print the expected record size; refuse a record larger than the free disk space."""
        config, desc = self.config, self.description
        steps_per_epoch = _batch_count(self.n, config.batch_size)
        positions = math.prod(X.shape[2:]) if config.model != "mlp" and X.ndim > 2 else 1
        if config.model in ("rnn", "lstm", "bert"):
            positions = X.shape[1]
        per_step, steps, fixed = record_estimate(self.model, config, min(self.n, config.batch_size or self.n),
                                                 positions, len(desc["group_counts"]), steps_per_epoch)
        _say(self.quiet, f"{config.label}: {config.model} {config.task} width {config.width} depth {config.depth} "
                         f"{config.activation}; data {desc['name']} {tuple(X.shape)}, groups "
                         f"{desc['group_counts'] or 'none'}; {config.epochs} epochs on {config.device}")
        free = shutil.disk_usage(self.out).free
        if fixed + per_step * steps > free:
            raise ResourceError(f"the record of this run would take about {format_bytes(fixed + per_step * steps)}, "
                                f"but {self.out} has {format_bytes(free)} free; record fewer steps (--every, "
                                f"--epochs), values (--set k=8) or layers")
        _say(self.quiet, f"  expected record size: about {format_bytes(fixed + per_step * steps)} "
                         f"({format_bytes(per_step)} per recorded step x {steps} steps + {format_bytes(fixed)} of layout)")

    # -- training -----------------------------------------------------------------------------

    def _save_checkpoint(self, epoch, batch, epoch_rng_state):
        import minigrad as mg

        save_checkpoint(self.out / outputs.CHECKPOINT_NAME, TrainingState(
            epoch=epoch, batch=batch, step=self.step, loss=self.loss_value, data_rng=epoch_rng_state,
            model_rng=mg.random.default_generator().bit_generator.state,
            optimizer=self.optimizer.state_dict(), model=self.model.state_dict(),
            config_digest=self.config.run_digest(),
            wall_seconds=round(self.train_seconds_before + time.perf_counter() - self.start, 3)))
        self.last_checkpoint = time.perf_counter()
        self.status["checkpoint_step"] = self.step

    def _one_step(self, idx, epoch):
        full = isinstance(idx, slice)
        x = self.xs if full else self.xs[idx]
        t = self.targets if full else self.targets[idx]
        labels = self.groups if full or self.groups is None else self.groups[idx]
        loss = self.loss_fn(self.model(x), t)
        self.loss_value = float(loss.item())
        if not math.isfinite(self.loss_value):
            raise ExperimentError(f"training diverged: the loss is {self.loss_value} at epoch {epoch + 1} "
                                  f"(step {self.step + 1}); try a smaller learning rate (--lr)")
        self.optimizer.zero_grad()
        with self.spec.step(groups=labels, loss=self.loss_value, samples=None if full else idx):
            loss.backward()
        self.optimizer.step()
        self.step += 1

    def _train(self):
        from tqdm import tqdm

        config, spec = self.config, self.spec
        log_every = max(1, config.epochs // 10)
        if self.resume is None:
            self._save_checkpoint(0, 0, self.data_rng.bit_generator.state)
        self.last_checkpoint = time.perf_counter()
        epoch = self.first_epoch
        try:
            with _StopAtStepEnd() as stop:
                bar = tqdm(range(self.first_epoch, config.epochs), desc=config.label, unit="epoch",
                           disable=self.bar_off, file=sys.stderr, mininterval=0.5, leave=False)
                for epoch in bar:
                    epoch_rng_state = self.data_rng.bit_generator.state
                    batches = _batches(self.n, config.batch_size, self.data_rng)
                    skip = self.first_batch if epoch == self.first_epoch else 0
                    for b in range(skip, len(batches)):
                        self._one_step(batches[b], epoch)
                        # where training stands now: the end of an epoch is the start of the next
                        done = b + 1 == len(batches)
                        position = ((epoch + 1, 0, self.data_rng.bit_generator.state) if done
                                    else (epoch, b + 1, epoch_rng_state))
                        if stop.requested:
                            self._save_checkpoint(*position)
                            raise KeyboardInterrupt
                        if time.perf_counter() - self.last_checkpoint >= self.checkpoint_seconds:
                            self._save_checkpoint(*position)
                    self.update(epoch=epoch + 1, step=self.step, steps_recorded=len(spec.record),
                                loss=self.loss_value)
                    if not bar.disable:  # the postfix reads the last step's spectra: only for a bar shown
                        bar.set_postfix_str(_bar_text(self.loss_value, spec), refresh=False)
                    if epoch == 0 or (epoch + 1) % log_every == 0 or epoch + 1 == config.epochs:
                        _say(self.quiet, f"  epoch {epoch + 1:>5}/{config.epochs}  loss {self.loss_value:.6g}")
                bar.close()
                if self.status.get("checkpoint_step") != self.step:
                    self._save_checkpoint(config.epochs, 0, self.data_rng.bit_generator.state)
        except KeyboardInterrupt:
            spec.close()
            self.update(state="interrupted", step=self.step, steps_recorded=_steps_in(self.record_path))
            raise RunInterrupted(self.status) from None
        except BaseException as exc:
            spec.close()
            self.update(state="failed", message=str(exc))
            raise

    # -- after training -----------------------------------------------------------------------

    def _finish(self):
        import minigrad as mg

        config, out = self.config, self.out
        accuracy = None
        if config.task == "classify":
            with mg.no_grad():
                logits = self.model(self.xs).numpy()
            accuracy = float(np.mean(np.argmax(logits, axis=1) == self.data.y))
        self.spec.close()
        train_seconds = self.train_seconds_before + time.perf_counter() - self.start
        self.update(state="writing", train_seconds=round(train_seconds, 3), loss=self.loss_value,
                    accuracy=accuracy)
        result = RunResult(config, out, self.record_path, self.status, self.loss_value, accuracy, 0.0,
                           resumed_from_step=self.resume.step if self.resume is not None else None)
        try:
            from .record import load_record

            rec = load_record(self.record_path)
            result.summary_path, result.summary_text, result.summary = write_summary(
                rec, out / outputs.SUMMARY_NAME, config, result)
            if config.figures:
                result.figure_paths = write_figures(rec, out / outputs.FIGURES_NAME, panel=config.panel,
                                                    compare=config.compare, formats=config.figure_formats)
        except KeyboardInterrupt:
            self.update(state="interrupted")
            raise RunInterrupted(self.status) from None
        except BaseException as exc:
            self.update(state="failed", message=f"writing results: {exc}")
            raise
        result.wall_seconds = time.perf_counter() - self.start
        self.update(state="finished", wall_seconds=round(result.wall_seconds, 3), steps_recorded=len(rec))
        _say(self.quiet, f"wrote {self.record_path} ({len(rec)} steps), {result.summary_path}, "
                         f"{len(result.figure_paths)} figure files in {out / outputs.FIGURES_NAME}; "
                         f"{result.wall_seconds:.1f} s")
        return result


def _bar_text(loss, spec):
    """The progress bar's postfix: the loss, and sigma_1 and the effective rank (above the noise
    floor) of the last layer's batch spectrum (G when recorded) at the last recorded step, read
    from that step's spectra in memory (a few numbers; nothing is read from the file)."""
    from .live import step_summary

    text = f"loss={loss:.4g}"
    summary = step_summary(spec.last_step) if spec.last_step is not None else None
    if summary is not None:
        layer, quantity, top, rank = summary
        text += f", {layer}: sigma1({quantity})={top:.3g}, erank={rank:.3g}"
    return text


def _steps_in(record_path):
    from .record import RecordError, load_record

    try:
        return len(load_record(record_path))
    except (OSError, RecordError):  # an unreadable partial file: the status still says where training stopped
        return None
