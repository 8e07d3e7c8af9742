"""Rough resource estimates made BEFORE a run allocates anything: memory for the data, the model
and its activations (refused with a clear error when above what the machine has free), and the
size of the record it will write (printed before the run starts).

The estimates are deliberately simple (sizes of the arrays that dominate, times a small factor
for copies); they are meant to stop a run that cannot fit by orders of magnitude, e.g.
``--width 10000000`` or ``data.image_size=100000``, not to predict usage to the megabyte.
"""
from __future__ import annotations

import inspect
import math
import os

from .config import ExperimentError

FLOAT32, FLOAT64 = 4, 8


class ResourceError(ExperimentError):
    """A run that would need more memory or disk than the machine has."""


def format_bytes(n):
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000


def available_memory():
    """Bytes of memory free for a new run (Linux MemAvailable; else the physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- data


def _setting(factory, data, name):
    if name in data:
        return data[name]
    return inspect.signature(factory).parameters[name].default


def _positive_ints(*values):
    return all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values)


def generated_data_values(dataset, data):
    """How many numbers the generator of ``dataset`` makes with settings ``data`` (an upper
    bound; None when unknown or when the settings are invalid, which the generator reports)."""
    from .datasets import dataset_function, list_datasets

    if dataset not in list_datasets():
        return None
    factory = dataset_function(dataset)
    get = lambda name: _setting(factory, data, name)  # noqa: E731
    if dataset == "digits":
        n, side = get("n") or 1797, get("image_size")
        return n * side * side if _positive_ints(n, side) else None
    if dataset == "sinusoids":
        n, length = get("n"), get("length")
        return n * length if _positive_ints(n, length) else None
    if dataset == "freesurfer":
        return get("n") * 37 if _positive_ints(get("n")) else None
    if dataset == "cobre_ica":
        n, c, t = get("n_subjects"), get("n_components"), get("n_timepoints")
        return n * c * t * 2 if _positive_ints(n, c, t) else None  # latent signals beside X
    if dataset == "spatial_maps":
        n, shape, c = get("n_subjects"), get("shape"), get("n_components")
        shape = list(shape) if isinstance(shape, (list, tuple)) else [shape]
        if not _positive_ints(n, c, *shape):
            return None
        return n * math.prod(shape) * 3 + c * math.prod(shape)  # X, per-subject work, the templates
    return None


def check_data_memory(config, limit=None):
    """Refuse (ResourceError) generated data that cannot fit in memory, before it is made."""
    if config.data_path:
        return
    values = generated_data_values(config.dataset, config.data)
    if values is None:
        return
    need = values * FLOAT64 * 3  # float64 data, a standardized copy, the float32 tensor
    limit = available_memory() if limit is None else limit
    if need > limit:
        raise ResourceError(f"the data set {config.dataset!r} with {config.data} would need about "
                            f"{format_bytes(need)} of memory, but {format_bytes(limit)} is available; "
                            f"use smaller data settings (e.g. data.n, data.image_size)")


# ----------------------------------------------------------------------------- model


#: weight matrices per hidden layer (a CNN's: kernel positions of 3 per axis), and the numbers
#: each layer keeps per sample and position during a step (an LSTM's gates, BERT's feed-forward)
_LAYER_MATRICES = {"mlp": 1, "cnn1d": 3, "cnn2d": 9, "cnn3d": 27, "rnn": 2, "lstm": 8, "bert": 12}
_LAYER_ACTIVATIONS = {"mlp": 1, "cnn1d": 1, "cnn2d": 1, "cnn3d": 1, "rnn": 2, "lstm": 6, "bert": 10}


def model_estimate(config, n_samples, sample_shape, n_outputs):
    """(parameters, activation numbers) of the model ``config`` builds for samples of
    ``sample_shape`` (the model's layout), roughly."""
    width, depth, arch = config.width, config.depth, config.model
    per_layer = _LAYER_MATRICES.get(arch, 12)
    if arch == "mlp":
        features, positions = math.prod(sample_shape), 1
    elif arch in ("rnn", "lstm", "bert"):
        positions, features = sample_shape[0], sample_shape[-1]
    else:  # CNNs: (channels, *spatial)
        features, positions = sample_shape[0], math.prod(sample_shape[1:])
    out = n_outputs or features
    params = per_layer * (features * width + (depth - 1) * width * width) + width * out * max(1, positions)
    activations = n_samples * positions * (width * depth * _LAYER_ACTIVATIONS.get(arch, 10) + features * per_layer)
    if arch == "bert":  # attention weights: one positions x positions map per sample and layer
        activations += n_samples * positions * positions * depth
    return params, activations


def check_model_memory(config, n_samples, sample_shape, n_outputs, data_bytes=0, limit=None):
    """Refuse (ResourceError) a model whose weights, optimizer state, spectra work and activations
    cannot fit in the memory left; returns the estimate in bytes."""
    params, activations = model_estimate(config, n_samples, sample_shape, n_outputs)
    # weights, gradient, 2 optimizer moments, a checkpoint copy (float32); G formed per layer (float64)
    model_bytes = params * (5 * FLOAT32 + 2 * FLOAT64)
    # the forward values, their gradients and the caught factors (A, D) of the backward
    activation_bytes = activations * FLOAT32 * 6
    need = model_bytes + activation_bytes
    limit = available_memory() if limit is None else limit
    if need > limit:
        raise ResourceError(f"this run would need about {format_bytes(need + data_bytes)} of memory (model "
                            f"{format_bytes(model_bytes)}, activations {format_bytes(activation_bytes)}, data "
                            f"{format_bytes(data_bytes)}), but {format_bytes(limit + data_bytes)} is available; "
                            f"use a smaller --width/--depth or fewer samples")
    return need


# ----------------------------------------------------------------------------- record


#: Bytes an HDF5 record spends per stored series besides its values (measured: 6-9 KB)
BYTES_PER_SERIES = 8_000


def record_estimate(model, config, n_samples, positions, n_groups, steps_per_epoch):
    """(bytes per recorded step, recorded steps, fixed bytes) of the record a run will write:
    every weight matrix's spectra for each quantity, the whole batch and each group (and each
    position when positions are recorded), with their noise floors, plus per-sample spectra when
    recorded; the fixed part is the file's layout, one block per stored series."""
    from .introspect import PRESETS

    preset = PRESETS[config.preset]
    quantities = config.quantities or preset["quantities"]
    k_limit = config.k or preset["k"]
    per_sample = config.per_sample or preset["per_sample"]
    with_positions = config.positions or bool(preset["positions"])
    rows = n_samples * max(1, positions)
    series, values = 0, 0
    for _, p in model.named_parameters():
        if len(p.shape) < 2:
            continue
        n_out, n_in = p.shape[0], math.prod(p.shape[1:])

        def ks(n_rows):
            bounds = {"G": min(n_out, n_in, n_rows), "A": min(n_in, n_rows), "D": min(n_out, n_rows)}
            return [min(bounds[q], k_limit) if k_limit else bounds[q] for q in quantities]

        whole = ks(rows)
        series += (1 + n_groups) * len(whole)
        values += (1 + n_groups) * (sum(whole) + len(whole))  # the values and each one's noise floor
        if with_positions and positions > 1:  # one position: n_samples rows each
            each = ks(n_samples)
            series += (1 + n_groups) * positions * len(each)
            values += (1 + n_groups) * positions * (sum(each) + len(each))
        if per_sample:
            series += 1
            values += n_samples * min(whole[0], max(1, positions))
    steps = math.ceil(config.epochs * steps_per_epoch / (config.every or preset["every"]))
    return values * FLOAT64, steps, series * BYTES_PER_SERIES
