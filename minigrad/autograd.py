"""Reverse-mode graph walk and grad mode.

Every tensor made by an op keeps its parents and a backward closure mapping the
output adjoint to the parents' adjoints (micrograd's idea). ``backward`` orders
the graph with an explicit stack (no recursion, so a 100,000-op chain or an
RNN over 1,000 steps is fine), frees each intermediate adjoint as soon as it
has been passed on, and drops the closures (and the arrays they saved) unless
``retain_graph`` is asked for.
"""
import contextlib
import itertools
import threading

_state = threading.local()


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return getattr(_state, "enabled", True)


def saved_arrays_are_disposable():
    """True while a backward walk that frees the graph (no ``retain_graph``) is running.

    A backward closure is then called exactly once, so it may overwrite arrays that it
    alone saved (never ``g``, inputs' data or outputs' data) to spare an allocation.
    """
    return getattr(_state, "disposable", False)


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled):
        self.enabled = enabled

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.enabled
        return self

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False


def no_grad():
    """Context manager / decorator: ops inside record no graph."""
    return _GradMode(False)


def enable_grad():
    """Context manager / decorator: re-enable graph recording inside ``no_grad``."""
    return _GradMode(True)


def freed_backward(grad):
    """Stands in for a backward closure that an earlier ``backward()`` already used and freed."""
    raise RuntimeError(
        "backward through a part of the graph that an earlier backward() already used and freed: "
        "pass retain_graph=True to the first backward() to backpropagate through it again")


def topological_order(root):
    """Op outputs reachable from ``root``, parents before children (iterative DFS)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent._backward is not None and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _owns_memory(array):
    """True for an array that is no view of another (safe to keep as a leaf's .grad)."""
    return getattr(array, "base", 0) is None


def _check_adjoint(node, parent, pgrad):
    if pgrad.shape != parent.data.shape:
        op = getattr(node._backward, "__qualname__", "an op").split(".<locals>")[0]
        raise RuntimeError(f"internal error in the backward of {op}: adjoint of shape {tuple(pgrad.shape)} "
                           f"for an input of shape {tuple(parent.data.shape)}")


def run_backward(root, seed, retain_graph=False):
    """Propagate ``seed`` (dLoss/droot, an array minigrad owns) to every leaf that requires grad.

    Adjoints of intermediate tensors wait in ``pending`` only until their op's
    backward has consumed them; nodes are dropped from the walk as it goes, so
    arrays saved by consumed closures can be released at once.
    """
    previous = saved_arrays_are_disposable()
    _state.disposable = not retain_graph
    try:
        _walk(root, seed, retain_graph)
    finally:
        _state.disposable = previous


def _walk(root, seed, retain_graph):
    order = topological_order(root)
    pending = {id(root): seed}
    summed = set()   # ids of nodes whose pending adjoint is a sum minigrad made (safe to add into)
    handed = set()   # ids of arrays already kept as some leaf's .grad in this walk
    del seed
    while order:
        node = order.pop()
        key = id(node)
        grad = pending.pop(key, None)
        summed.discard(key)
        if grad is not None:
            if node._retains_grad:
                node._accumulate(grad)
            _state.current_op = node._seq
            parent_grads = node._backward(grad)
            _state.current_op = 0
            del grad
            for parent, pgrad in zip(node._parents, parent_grads):
                if pgrad is None or not parent.requires_grad:
                    continue
                _check_adjoint(node, parent, pgrad)
                if pgrad.dtype != parent.data.dtype:
                    pgrad = pgrad.astype(parent.data.dtype)
                if parent._backward is None:  # a leaf: accumulate into .grad
                    keep = _owns_memory(pgrad) and id(pgrad) not in handed
                    handed.add(id(pgrad))
                    parent._accumulate(pgrad, keep=keep)
                    continue
                pkey = id(parent)
                acc = pending.get(pkey)
                if acc is None:
                    pending[pkey] = pgrad
                elif pkey in summed:
                    acc += pgrad
                else:
                    pending[pkey] = acc + pgrad
                    summed.add(pkey)
            parent_grads = pgrad = None
        if not retain_graph:
            node._parents = ()
            node._backward = freed_backward
        del node


_op_counter = itertools.count(1)


def current_op_index():
    """Forward index of the op whose backward is running (0 outside backward).

    Ops are numbered as they are recorded, so sorting by this index puts the uses
    of a weight back in forward order (factors of an unrolled loop come out in time order).
    """
    return getattr(_state, "current_op", 0)


def make_result(tensor_cls, data, parents, backward):
    """Wrap ``data`` as the output of an op; record the graph only when needed."""
    if is_grad_enabled():
        for p in parents:
            if p.requires_grad:
                out = tensor_cls._wrap(data, requires_grad=True)
                out._parents = parents
                out._backward = backward
                out._seq = next(_op_counter)
                return out
    return tensor_cls._wrap(data)
