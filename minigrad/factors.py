"""Handing out the factors of every weight gradient during backward.

For a weight W (fan_out, fan_in), ops that multiply it call the weight's
``factor_sink(A, D)`` in backward with A (N, P, fan_in) the activations W saw and
D (N, P, fan_out) the adjoints of its output, so that (paper eq. 1)

    grad W = einsum("npo,npi->oi", D, A)   (reshaped to W's layout).

The arrays are the very ones backward multiplies: no copy is made, and nothing
at all happens while no capture is active.
"""
import bisect
import contextlib
from collections import OrderedDict

from . import autograd, backend


def hand_out_factors(weight, A, D):
    """Give (A, D) to the weight's factor sink, if a capture is active (costs nothing otherwise).

    Ops call this once in their backward with the very arrays (or views) they multiply:
    A (N, P, fan_in) the activations the weight saw, D (N, P, fan_out) its output's adjoints.
    """
    sink = getattr(weight, "factor_sink", None)
    if sink is not None:
        sink(A, D)


class Factors:
    """The (A, D) pair of one weight. ``A``: (N, P, fan_in); ``D``: (N, P, fan_out).

    When a weight is used several times in one graph, each use is kept in
    ``uses`` in forward order (each use is tagged with the forward index of its op)
    and ``A``/``D`` join them along the position axis P -- e.g. the time steps of a
    loop-unrolled RNN, in time order.
    """

    __slots__ = ("name", "shape", "uses", "_order", "_joined")

    def __init__(self, name, shape):
        self.name, self.shape = name, tuple(shape)
        self.uses = []
        self._order = []
        self._joined = None

    def add(self, A, D, order=None):
        """Add one use; ``order`` (default: the running op's forward index) places it among the others."""
        if A.ndim != 3 or D.ndim != 3 or A.shape[:2] != D.shape[:2]:
            raise ValueError(f"factors of '{self.name}' must be A (N, P, in) and D (N, P, out) with equal N, P; "
                             f"got {A.shape} and {D.shape}")
        order = autograd.current_op_index() if order is None else order
        at = bisect.bisect_right(self._order, order)
        self._order.insert(at, order)
        self.uses.insert(at, (A, D))
        self._joined = None

    def _join(self):
        if self._joined is None:
            if len(self.uses) == 1:
                self._joined = self.uses[0]
            else:
                xp = backend.get_array_module(self.uses[0][0])
                if len({a.shape[0] for a, _ in self.uses}) != 1:
                    # different batch sizes per use: positions of all uses become rows of one sample
                    A = xp.concatenate([a.reshape(1, -1, a.shape[-1]) for a, _ in self.uses], axis=1)
                    D = xp.concatenate([d.reshape(1, -1, d.shape[-1]) for _, d in self.uses], axis=1)
                else:
                    A = xp.concatenate([a for a, _ in self.uses], axis=1)
                    D = xp.concatenate([d for _, d in self.uses], axis=1)
                self._joined = (A, D)
        return self._joined

    @property
    def A(self):
        return self._join()[0]

    @property
    def D(self):
        return self._join()[1]

    @property
    def n_samples(self):
        return self.A.shape[0]

    @property
    def n_positions(self):
        return self.A.shape[1]

    def gradient(self):
        """sum_{n,p} D^T A as (fan_out, fan_in): the weight's gradient, flattened (paper eq. 1)."""
        A, D = self.A, self.D
        return D.reshape(-1, D.shape[-1]).T @ A.reshape(-1, A.shape[-1])

    def __repr__(self):
        return f"Factors('{self.name}', A={tuple(self.A.shape)}, D={tuple(self.D.shape)}, uses={len(self.uses)})"


class FactorStore(OrderedDict):
    """{parameter name: Factors} filled during backward inside ``capture_factors``."""

    def __missing__(self, key):
        raise KeyError(f"no factors were handed out for {key!r}. Factors come from weights multiplied by "
                       f"Linear/Conv/RNN/LSTM/attention ops during a backward inside capture_factors; "
                       f"captured: {list(self.keys())}")


def _parameters_of(model, names):
    params = OrderedDict(model.named_parameters())
    if names is None:
        return params
    unknown = [n for n in names if n not in params]
    if unknown:
        raise KeyError(f"unknown parameter names {unknown}; the model has {list(params)}")
    return OrderedDict((n, params[n]) for n in names)


def _chained_sink(name, callback, previous):
    """A sink calling ``callback(name, A, D)``, then the sink it replaces (nested captures both see A, D)."""
    if previous is None:
        return lambda A, D: callback(name, A, D)

    def sink(A, D):
        callback(name, A, D)
        previous(A, D)

    return sink


@contextlib.contextmanager
def factor_hooks(model, callback, names=None):
    """Call ``callback(name, A, D)`` whenever backward multiplies one of the model's weights.

    Hooks nest: an outer capture keeps receiving factors while an inner one is active.
    On exit every parameter gets back the sink it had before (None outside any capture).
    """
    params = _parameters_of(model, names)
    previous = {}
    try:
        for name, p in params.items():
            previous[name] = p.factor_sink
            p.factor_sink = _chained_sink(name, callback, previous[name])
        yield
    finally:
        for name, p in params.items():
            if name in previous:
                p.factor_sink = previous[name]


@contextlib.contextmanager
def capture_factors(model, names=None):
    """Collect the (A, D) factors of the model's weights during the backward inside the block.

    >>> with capture_factors(model) as factors:
    ...     loss.backward()
    >>> f = factors["0.weight"]   # f.A (N, P, fan_in), f.D (N, P, fan_out)
    """
    store = FactorStore()
    shapes = {n: p.shape for n, p in _parameters_of(model, names).items()}

    def keep(name, A, D):
        if name not in store:
            store[name] = Factors(name, shapes[name])
        store[name].add(A, D)

    with factor_hooks(model, keep, names):
        yield store
    # backward visits layers last to first: list them in the model's order
    ordered = [(n, store[n]) for n in shapes if n in store]
    store.clear()
    store.update(ordered)
