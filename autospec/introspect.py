"""The training-loop side of AutoSpec: ``Introspector`` and its presets.

    spec = autospec.Introspector(model)            # G, A, D of every weight, every step
    for epoch in range(epochs):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        with spec.step(groups=labels, loss=loss):  # factors are caught during this backward
            loss.backward()
        opt.step()
    spec.record.series("0.weight", "G", group="SZ")  # (steps, k)

With mini-batches, pass each step's own labels (and, if you like, the batch's dataset
indices: ``spec.step(groups=labels[idx], samples=idx)``); the record keeps them per step.

Nothing is kept between steps but the spectra (and what makes the next step
cheaper); the factors themselves are released when the step ends.
"""
import contextlib
import fnmatch
import json
import numbers
import time
from collections import OrderedDict, namedtuple

import numpy as np

import minigrad
from minigrad.factors import capture_factors

from ._record_input import batch_to_host, host
from .errors import AutoSpecError
from .groups import normalize_labels, normalize_sample_ids, subsets
from .record import Record
from .spectra import G_METHODS, GROUP_SCALES, QUANTITIES, LayerSpectra

# Cockpit-style presets: how much detail to buy with how much overhead.
PRESETS = {
    "economy": dict(quantities=("G",), k=8, every=10, positions=None, per_sample=False),
    "business": dict(quantities=("G", "A", "D"), k=None, every=1, positions=None, per_sample=False),
    "full": dict(quantities=("G", "A", "D"), k=None, every=1, positions=True, per_sample=True),
}
_UNSET = object()

#: The last recorded step of an Introspector: its index, spectra (float64 NumPy arrays) and floors
#: (floats), keyed like the record, and loss (or None).
LastStep = namedtuple("LastStep", "step spectra floors loss")


class IntrospectorError(AutoSpecError, ValueError):
    """Bad arguments to an Introspector."""


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
            raise IntrospectorError(f"layer {pattern!r} matches no parameter of the model; its parameters are {names}")
        chosen.extend(h for h in hits if h not in chosen)
    # names given without wildcards must hand out factors; patterns may match biases too
    explicit = [n for n in layers if not any(c in n for c in "*?[")]
    return chosen, explicit


class Introspector:
    """Records singular-value spectra of G, A and D for a model's weights during training.

    quantities: any of "G", "A", "D". k: how many singular values (default: each matrix's
    own rank bound: G min(in, out, N*P), A min(in, N*P), D min(out, N*P)). every: take every k-th step. layers: parameter names or
    glob patterns (default: every weight that hands out factors). positions: spectra per
    tied position too (True, a count spread evenly, or a list). per_sample: per-sample
    gradient spectra. method: "auto", "exact", "gram", "topk", "direct" or "factored" for G
    (see autospec.linalg). preset: "economy", "business" or "full" (explicit arguments win).
    group_scale: "mean" (default) records each group's G as its mean gradient G_g / N_g and
    A_g, D_g scaled by 1 / sqrt(N_g), so groups of different sizes compare fairly; "sum"
    records eq. 5's sums (the groups then sum to the batch). The batch (group None) is the
    same in both: the weight gradient under the model's loss reduction. Every spectrum is
    stored with its noise floor (``record.floor``). path: write the record to this HDF5 file
    as training goes. record: an open, writable Record to append to instead (e.g.
    ``Record.resume(path, through_step)``); its recorded settings must match these, and
    ``close()`` closes it. metadata: stored with the record.
    live: a dashboard redrawn while training (see :mod:`autospec.live`): False (default), True
    (adaptive: refreshing takes at most ~10 % of the wall time) or N (every N recorded steps);
    in Jupyter one output updated in place, elsewhere a PNG beside the record (or at
    ``live_path``; default ./autospec-live.png for an in-memory record). ``spec.live`` is the
    view (None when off); ``close()`` draws the last step.

    ``steps_seen`` counts the steps taken (recorded or not) and is the index of the next one;
    it starts after the record's last step and may be set (e.g. when resuming a run).
    """

    def __init__(self, model, quantities=_UNSET, k=_UNSET, every=_UNSET, layers=None, positions=_UNSET,
                 per_sample=_UNSET, method="auto", preset="business", path=None, metadata=None,
                 group_scale="mean", record=None, live=False, live_path=None):
        if preset not in PRESETS:
            raise IntrospectorError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
        settings = dict(PRESETS[preset])
        for key, value in (("quantities", quantities), ("k", k), ("every", every),
                           ("positions", positions), ("per_sample", per_sample)):
            if value is not _UNSET:
                settings[key] = value
        quantities = tuple(settings["quantities"])
        bad = [q for q in quantities if q not in QUANTITIES]
        if bad or not quantities:
            raise IntrospectorError(f"unknown quantities {bad or quantities}: choose from {QUANTITIES}")
        if settings["k"] is not None and (not isinstance(settings["k"], (int, np.integer)) or settings["k"] < 1):
            raise IntrospectorError(f"k must be a positive int or None, got {settings['k']!r}")
        every = settings["every"]
        if not isinstance(every, (int, np.integer)) or every < 1:
            raise IntrospectorError(f"every must be a positive int, got {every!r}")
        if method not in G_METHODS:
            raise IntrospectorError(f"unknown method {method!r}: choose one of {sorted(G_METHODS)}")
        if not isinstance(group_scale, str) or group_scale not in GROUP_SCALES:
            raise IntrospectorError(f"unknown group_scale {group_scale!r}: choose one of {list(GROUP_SCALES)}")
        wants_live = _wants_live(live, live_path)  # before any file is made
        if record is not None and path is not None:
            raise IntrospectorError("pass either path= (a new record file) or record= (an open record), not both")
        if record is not None and not isinstance(record, Record):
            raise IntrospectorError(f"record must be an autospec Record, got {type(record).__name__}")
        self.model = model
        self.quantities, self.k, self.every = quantities, settings["k"], int(every)
        self.positions, self.per_sample, self.method = settings["positions"], bool(settings["per_sample"]), method
        self.group_scale = group_scale
        self.layers, self._explicit = _select_layers(model, layers)
        self._order = [n for n, _ in model.named_parameters()]
        self._layer_state = OrderedDict()
        meta = {
            "model": type(model).__name__,
            "model_repr": repr(model),
            "parameters": {n: list(p.shape) for n, p in model.named_parameters()},
            "settings": {"quantities": list(quantities), "k": self.k, "every": self.every, "layers": self.layers,
                         "positions": self.positions if not isinstance(self.positions, (list, tuple))
                         else list(self.positions), "per_sample": self.per_sample, "method": method,
                         "preset": preset, "group_scale": group_scale},
            "device": model.device,
            "minigrad_version": minigrad.__version__,
            "numpy_version": np.__version__,
        }
        meta.update(metadata or {})
        if record is None:
            self.record = Record(path=path, metadata=meta) if path is not None else Record(metadata=meta)
        else:
            self.record = _continued(record, meta, metadata)
        steps = self.record.steps
        self.steps_seen = int(steps[-1]) + 1 if len(steps) else 0
        self.last_step = None  # the last recorded step (LastStep): for progress bars
        self.live = None
        if wants_live:
            from .live import LiveView

            self.live = LiveView(live, record_path=self.record.path, live_path=live_path)

    @property
    def steps_seen(self):
        """Steps taken so far (recorded or not): the index the next step gets."""
        return self._steps_seen

    @steps_seen.setter
    def steps_seen(self, value):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < 0:
            raise IntrospectorError(f"steps_seen must be an int >= 0, got {value!r}")
        self._steps_seen = int(value)

    def _state(self, name):
        state = self._layer_state.get(name)
        if state is None:
            state = self._layer_state[name] = LayerSpectra(
                name, self.quantities, self.k, self.method, self.positions, self.per_sample, self.group_scale)
        return state

    def will_record(self, step=None):
        """True when the step with this index (default: the next one) is taken."""
        return (self.steps_seen if step is None else step) % self.every == 0

    @contextlib.contextmanager
    def step(self, groups=None, loss=None, samples=None):
        """Catch the factors of the backward inside the block and record their spectra.

        groups: one label per sample of this batch (e.g. "SZ"/"HC"), or None; stored with
        the step, so shuffled mini-batches keep every sample's own label.
        loss: the loss tensor or value, stored with the step.
        samples: the dataset indices of this batch's samples (ints), or None; stored with the step.
        """
        index = self.steps_seen
        self.steps_seen += 1
        if not self.will_record(index):
            yield self
            return
        with capture_factors(self.model, self.layers) as caught:
            yield self
        start = time.perf_counter()
        spectra, floors, per_sample, labels, ids = self._spectra(caught, groups, samples)
        loss_value = None
        if loss is not None:
            loss_value = float(loss.item() if hasattr(loss, "item") else loss)
        seconds = time.perf_counter() - start
        spectra, per_sample = _on_host(spectra), _on_host(per_sample)  # once for the record and the live view
        self.record.append(index, spectra, loss=loss_value, per_sample=per_sample or None,
                           extra={"introspect_seconds": seconds}, floors=floors,
                           sample_groups=labels, sample_ids=ids)
        self._after_step(index, spectra, floors, loss_value, per_sample, labels)

    def _spectra(self, caught, groups, samples):
        """(spectra, floors, per-sample spectra, this step's labels, this step's sample ids)."""
        if not caught:
            raise RuntimeError("no factors were caught during this step: call loss.backward() inside "
                               "`with spec.step(...)`, and check that the model has Linear/Conv/RNN/attention weights")
        if self.layers is not None:
            silent = [n for n in self._explicit if n not in caught]
            if silent and self.record is not None and len(self.record) == 0:
                raise IntrospectorError(f"layers {silent} handed out no factors (only weights multiplied by "
                                        f"Linear/Conv/RNN/LSTM/attention ops do); these did: {list(caught)}")
        spectra, floors, per_sample = {}, {}, {}
        names = [n for n in self._order if n in caught]  # backward ran last layer first
        n_samples = caught[names[0]].A.shape[0]
        labels = normalize_labels(groups, n_samples) if groups is not None else None
        ids = normalize_sample_ids(samples, n_samples) if samples is not None else None
        for name in names:
            A, D = caught[name].A, caught[name].D  # uses of a weight joined along P
            xp = minigrad.get_array_module(A)
            group_sets = subsets(labels, xp) if labels is not None else []
            step = self._state(name).compute(A, D, group_sets)
            spectra.update(step.values)
            floors.update(step.floors)
            if step.per_sample is not None:
                per_sample[name] = step.per_sample
        return spectra, floors, per_sample, labels, ids

    def close(self):
        """Close the record's file (if any; also a record passed as ``record=``); a live view
        draws the last recorded step first."""
        try:
            if self.live is not None:
                self.live.close()
        finally:
            self.record.close()

    # -- live view hook (autospec.live) ---------------------------------------------------------

    def _after_step(self, index, spectra, floors, loss_value, per_sample, labels):
        """Keep the step for progress bars and hand it to the live view, if any."""
        self.last_step = LastStep(index, spectra, floors, loss_value)
        if self.live is not None:
            self.live.observe(index, spectra, floors, loss_value, per_sample or None, labels)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _on_host(arrays):
    """``{key: array}`` as float64 NumPy arrays, CuPy arrays copied to the host in one transfer."""
    values = batch_to_host(list(arrays.values()))
    return {key: np.asarray(host(v), dtype=np.float64) for key, v in zip(arrays, values)}


def _wants_live(live, live_path):
    """True when ``live=`` asks for a live view; bad values raise LiveError."""
    if (live is None or live is False) and live_path is None:
        return False  # off: autospec.live is not even imported
    from .live import LiveError, check_live, live_target

    if check_live(live) is None:
        raise LiveError("live_path is given but live is off: pass live=True (or live=N) too")
    live_target(None, live_path)  # a bad live_path
    return True


def _continued(record, meta, metadata):
    """``record`` to append to, after checking that its recorded settings are ours (a record
    whose spectra change definition part-way, e.g. group_scale, would mislead every test).
    A record without settings takes all of ``meta``; else only the caller's ``metadata``."""
    ours = json.loads(json.dumps(meta["settings"], default=lambda x: x.item() if hasattr(x, "item") else str(x)))
    theirs = record.metadata.get("settings")
    if theirs is None:
        record.update_metadata(meta)
        return record
    differ = sorted(key for key in set(ours) | set(theirs) if ours.get(key) != theirs.get(key))
    if differ:
        shown = ", ".join(f"{key}: record {theirs.get(key)!r} vs now {ours.get(key)!r}" for key in differ)
        raise IntrospectorError(f"the record was made with other settings ({shown}); "
                                "use the same settings to continue it, or start a new record")
    if metadata:
        record.update_metadata(metadata)
    return record
