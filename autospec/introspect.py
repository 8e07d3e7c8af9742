"""The training-loop side of AutoSpec: ``Introspector`` and its presets.

    spec = autospec.Introspector(model)            # G, A, D of every weight, every step
    for epoch in range(epochs):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        with spec.step(groups=labels, loss=loss):  # factors are caught during this backward
            loss.backward()
        opt.step()
    spec.record.series("0.weight", "G", group="SZ")  # (steps, k)

Nothing is kept between steps but the spectra (and what makes the next step
cheaper); the factors themselves are released when the step ends.
"""
import contextlib
import fnmatch
import time
from collections import OrderedDict

import numpy as np

import minigrad
from minigrad.factors import Factors, factor_hooks

from .groups import normalize_labels, subsets
from .record import Record
from .spectra import G_METHODS, QUANTITIES, LayerSpectra

# Cockpit-style presets: how much detail to buy with how much overhead.
PRESETS = {
    "economy": dict(quantities=("G",), k=8, every=10, positions=None, per_sample=False),
    "business": dict(quantities=("G", "A", "D"), k=None, every=1, positions=None, per_sample=False),
    "full": dict(quantities=("G", "A", "D"), k=None, every=1, positions=True, per_sample=True),
}
_UNSET = object()


def _select_layers(model, layers):
    """(chosen parameter names or None for all, names given without wildcards)."""
    names = [n for n, _ in model.named_parameters()]
    if layers is None:
        return None, []
    if isinstance(layers, str):
        layers = [layers]
    chosen = []
    for pattern in layers:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(f"layer {pattern!r} matches no parameter of the model; its parameters are {names}")
        chosen.extend(h for h in hits if h not in chosen)
    # names given without wildcards must hand out factors; patterns may match biases too
    explicit = [n for n in layers if not any(c in n for c in "*?[")]
    return chosen, explicit


class Introspector:
    """Records singular-value spectra of G, A and D for a model's weights during training.

    quantities: any of "G", "A", "D". k: how many singular values (default: each matrix's
    rank bound min(in, out, N*P)). every: take every k-th step. layers: parameter names or
    glob patterns (default: every weight that hands out factors). positions: spectra per
    tied position too (True, a count spread evenly, or a list). per_sample: per-sample
    gradient spectra. method: "auto", "exact", "gram", "topk", "direct" or "factored" for G
    (see autospec.linalg). preset: "economy", "business" or "full" (explicit arguments win).
    path: write the record to this HDF5 file as training goes. metadata: stored with it.
    """

    def __init__(self, model, quantities=_UNSET, k=_UNSET, every=_UNSET, layers=None, positions=_UNSET,
                 per_sample=_UNSET, method="auto", preset="business", path=None, metadata=None):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
        settings = dict(PRESETS[preset])
        for key, value in (("quantities", quantities), ("k", k), ("every", every),
                           ("positions", positions), ("per_sample", per_sample)):
            if value is not _UNSET:
                settings[key] = value
        quantities = tuple(settings["quantities"])
        bad = [q for q in quantities if q not in QUANTITIES]
        if bad or not quantities:
            raise ValueError(f"unknown quantities {bad or quantities}: choose from {QUANTITIES}")
        if settings["k"] is not None and (not isinstance(settings["k"], (int, np.integer)) or settings["k"] < 1):
            raise ValueError(f"k must be a positive int or None, got {settings['k']!r}")
        every = settings["every"]
        if not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}")
        if method not in G_METHODS:
            raise ValueError(f"unknown method {method!r}: choose one of {sorted(G_METHODS)}")
        self.model = model
        self.quantities, self.k, self.every = quantities, settings["k"], int(every)
        self.positions, self.per_sample, self.method = settings["positions"], bool(settings["per_sample"]), method
        self.layers, self._explicit = _select_layers(model, layers)
        self._order = [n for n, _ in model.named_parameters()]
        self.steps_seen = 0
        self._layer_state = OrderedDict()
        self._sample_groups_set = False
        meta = {
            "model": type(model).__name__,
            "model_repr": repr(model),
            "parameters": {n: list(p.shape) for n, p in model.named_parameters()},
            "settings": {"quantities": list(quantities), "k": self.k, "every": self.every, "layers": self.layers,
                         "positions": self.positions if not isinstance(self.positions, (list, tuple))
                         else list(self.positions), "per_sample": self.per_sample, "method": method,
                         "preset": preset},
            "device": model.device,
            "minigrad_version": minigrad.__version__,
            "numpy_version": np.__version__,
        }
        meta.update(metadata or {})
        self.record = Record(path=path, metadata=meta) if path is not None else Record(metadata=meta)

    def _state(self, name):
        state = self._layer_state.get(name)
        if state is None:
            state = self._layer_state[name] = LayerSpectra(
                name, self.quantities, self.k, self.method, self.positions, self.per_sample)
        return state

    def will_record(self, step=None):
        """True when the step with this index (default: the next one) is taken."""
        return (self.steps_seen if step is None else step) % self.every == 0

    @contextlib.contextmanager
    def step(self, groups=None, loss=None):
        """Catch the factors of the backward inside the block and record their spectra.

        groups: one label per sample of the batch (e.g. "SZ"/"HC"), or None.
        loss: the loss tensor or value, stored with the step.
        """
        index = self.steps_seen
        self.steps_seen += 1
        if not self.will_record(index):
            yield self
            return
        caught = OrderedDict()

        def keep(name, A, D):
            if name not in caught:
                caught[name] = Factors(name, ())
            caught[name].add(A, D)

        with factor_hooks(self.model, keep, self.layers):
            yield self
        start = time.perf_counter()
        spectra, per_sample = self._spectra(caught, groups)
        loss_value = None
        if loss is not None:
            loss_value = float(loss.item() if hasattr(loss, "item") else loss)
        seconds = time.perf_counter() - start
        self.record.append(index, spectra, loss=loss_value, per_sample=per_sample or None,
                           extra={"introspect_seconds": seconds})

    def _spectra(self, caught, groups):
        if not caught:
            raise RuntimeError("no factors were caught during this step: call loss.backward() inside "
                               "`with spec.step(...)`, and check that the model has Linear/Conv/RNN/attention weights")
        if self.layers is not None:
            silent = [n for n in self._explicit if n not in caught]
            if silent and self.record is not None and len(self.record) == 0:
                raise ValueError(f"layers {silent} handed out no factors (only weights multiplied by "
                                 f"Linear/Conv/RNN/LSTM/attention ops do); these did: {list(caught)}")
        spectra, per_sample = {}, {}
        labels = None
        for name in [n for n in self._order if n in caught]:  # backward ran last layer first
            A, D = caught[name].A, caught[name].D  # uses of a weight joined along P
            if labels is None and groups is not None:
                labels = normalize_labels(groups, A.shape[0])
                if not self._sample_groups_set:
                    self.record.set_sample_groups(labels)
                    self._sample_groups_set = True
            xp = minigrad.get_array_module(A)
            group_sets = subsets(labels, xp) if labels is not None else []
            values, samples = self._state(name).compute(A, D, group_sets)
            spectra.update(values)
            if samples is not None:
                per_sample[name] = samples
        return spectra, per_sample

    def close(self):
        """Close the record's file (if any)."""
        self.record.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

