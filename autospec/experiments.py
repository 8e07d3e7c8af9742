"""The paper's experiment battery: a registry of experiments (Table 2) x panels (Table 1), their
configuration, and one function that runs one of them end to end.

    cfg = resolve_config("digits-mlp", panel="G", overrides={"epochs": 300})
    result = run_experiment(cfg, "runs/digits-mlp-G")
    result.record_path, result.summary_path, result.figure_paths

The work is split by job: :mod:`autospec.config` (settings, registry, TOML),
:mod:`autospec.experiment_data` (generated or real data), :mod:`autospec.training` (the run, with
resume), :mod:`autospec.checkpoint`, :mod:`autospec.outputs` (the output folder: ownership, lock,
backups, status), :mod:`autospec.resources` (estimates before allocating) and
:mod:`autospec.reports` (summary and figures). This module gathers their public names.

Every experiment is one TOML file in ``autospec/configs`` (the single source of its defaults).
A run's settings are resolved in this order, later winning: the experiment's TOML file, the
panel (Table 1), a user TOML file (``config_file``), explicit overrides (CLI flags).

How we read the paper where it is ambiguous or silent:

* Panels follow Table 1: A AE [32] ReLU, B classifier [32] ReLU, C AE tanh, D AE sigmoid,
  E AE [8], F AE [64], G AE with group differences, H classifier with group differences. The
  Results text's "C tanh vs D relu" contradicts Table 1 (D = sigmoid); Table 1 wins.
* The Methods text calls the variants "wide/shallow (1 layer with 128 neurons)" and "deep/thin
  (3 layers with 8 neurons)", while Table 1 lists [8] and [64]. Panels E/F use Table 1 (one
  hidden layer of 8 / 64); ``depth=3`` (``--depth 3``) gives the text's deep/thin 3 x 8 and
  ``width=128`` its wide/shallow variant.
* "Group differences" panels G/H train exactly as A/B (same seed, so the same trajectory) but
  also record per-sample values, so that sound per-sample tests (not only the paper's t-tests
  over singular values / steps) can be run; their figures are group-difference maps.
* The learning rate is missing from the paper's text ("a learning rate of ,"): we use Adam with
  lr = 1e-3. Training is full batch (``batch_size = 0``), 1000 epochs, ReLU, seed 0, mean loss
  reduction (MSE for auto-encoding, cross entropy for classification), as the paper says.
* The seed drives model initialization (and mini-batch order); the data generator has its own
  ``data.seed`` so that runs with different seeds see the same subjects.
* For the LSTM (whose gates fix their own nonlinearities) the panel's activation is applied to
  each layer's output sequence; for BERT it is the feed-forward activation; for the Elman RNN
  it is the cell's nonlinearity.
* Groups: SZ/HC for the neuroimaging data, class labels for digits and sinusoids. Group tests
  compare every pair of groups unless ``compare`` names the groups to compare.
"""

from .checkpoint import CheckpointError, TrainingState, load_checkpoint, save_checkpoint
from .config import (CONFIG_DIR, FIELDS, GROUP_BY, GROUP_PANELS, MAX_DEPTH, MAX_EPOCHS, OPTIMIZERS, PANELS,
                     PRESENTATION_SETTINGS, STANDARDIZE, ExperimentConfig, ExperimentError, config_to_toml,
                     experiment_info, list_experiments, load_config_file, parse_assignment, resolve_config)
from .experiment_data import load_experiment_data, load_npz_dataset
from .outputs import OutputFolderError, describe_stale, read_status
from .reports import write_figures, write_summary
from .resources import ResourceError
from .training import DEFAULT_CHECKPOINT_SECONDS, RunInterrupted, RunResult, run_experiment

__all__ = [
    "PANELS", "GROUP_PANELS", "ExperimentConfig", "ExperimentError", "OutputFolderError", "ResourceError",
    "CheckpointError", "RunInterrupted", "RunResult", "TrainingState", "list_experiments", "experiment_info",
    "resolve_config", "load_config_file", "parse_assignment", "config_to_toml", "load_experiment_data",
    "load_npz_dataset", "run_experiment", "read_status", "describe_stale", "write_figures", "write_summary",
    "load_checkpoint", "save_checkpoint", "DEFAULT_CHECKPOINT_SECONDS", "MAX_DEPTH", "MAX_EPOCHS",
    "CONFIG_DIR", "FIELDS", "GROUP_BY", "OPTIMIZERS", "PRESENTATION_SETTINGS", "STANDARDIZE",
]
