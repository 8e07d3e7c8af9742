"""Buffer reuse in the backward walk: summing a node's adjoints and keeping a leaf's gradient.

Reference: every sum is a new array and every leaf gets its own copy of its gradient.
Fast: a node's later adjoints are added in place into the sum made for it (which nothing
else holds until the node's backward runs), and a leaf keeps an adjoint array as its
``.grad`` without a copy when the array owns its memory and no other ``.grad`` holds it.
"""
import weakref

from .dispatch import kernel


class PendingAdjoints:
    """The adjoints waiting for their node (by key), repeated ones summed with :func:`add_adjoints`."""

    def __init__(self):
        self._totals = {}
        self._made_here = set()   # keys whose total is a sum made here, nobody else's array

    def add(self, key, g):
        total = self._totals.get(key)
        if total is None:
            self._totals[key] = g
        else:
            self._totals[key] = add_adjoints(total, g, key in self._made_here)
            self._made_here.add(key)

    def __len__(self):
        return len(self._totals)

    def pop(self, key):
        """The summed adjoint of ``key`` (None if none came), handed over for good."""
        self._made_here.discard(key)
        return self._totals.pop(key, None)


@kernel
def add_adjoints(total, g, total_is_ours):
    """total + g. ``total_is_ours``: total is a sum made by this function that nothing else holds."""
    return total + g


@add_adjoints.fast
def _add_adjoints_fast(total, g, total_is_ours):
    if not total_is_ours:
        return total + g
    total += g
    return total


@kernel
def leaf_gradient(g):
    """g as an array a leaf may keep as its ``.grad``: never one another tensor, a closure or the caller holds."""
    return g.copy()


# the arrays kept as some leaf's .grad without a copy, by id (an entry goes with its array)
_kept = weakref.WeakValueDictionary()


@leaf_gradient.fast
def _leaf_gradient_fast(g):
    # an op's fresh adjoint owns its memory (no view of a saved array); the same array may
    # still reach two leaves (e.g. the adjoint of a + b), so only the first keeps it
    if getattr(g, "base", 0) is not None or _kept.get(id(g)) is g:
        return g.copy()
    try:
        _kept[id(g)] = g
    except TypeError:  # a NumPy scalar: no weak reference to it, so no record of who keeps it
        return g.copy()
    return g
