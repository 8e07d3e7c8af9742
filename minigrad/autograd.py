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

from .kernels import buffers

_state = threading.local()


def is_grad_enabled():
    """True unless inside ``no_grad()``."""
    return getattr(_state, "enabled", True)


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
        for parent in node.parents:
            if parent.grad_fn is not None and id(parent) not in visited:
                stack.append((parent, False))
    return order


def _check_adjoint(node, parent, pgrad):
    if pgrad.shape != parent.data.shape:
        op = getattr(node.grad_fn, "__qualname__", "an op").split(".<locals>")[0]
        raise RuntimeError(f"internal error in the backward of {op}: adjoint of shape {tuple(pgrad.shape)} "
                           f"for an input of shape {tuple(parent.data.shape)}")


def run_backward(root, seed, retain_graph=False):
    """Propagate ``seed`` (dLoss/droot, an array minigrad owns) to every leaf that requires grad.

    Nodes are visited children before parents; a node's adjoints wait in ``pending``,
    summed, until its backward consumes them; leaves accumulate into ``.grad``. Unless
    ``retain_graph``, each node's closure (and the arrays it saved) is freed once used.
    """
    order = topological_order(root)
    pending = buffers.PendingAdjoints()
    pending.add(id(root), seed)
    del seed
    while order:
        node = order.pop()
        grad = pending.pop(id(node))
        if grad is not None:
            if node.retains_grad:
                node.accumulate_grad(grad)
            _state.current_op = node.op_index
            parent_grads = node.grad_fn(grad)
            _state.current_op = 0
            del grad
            for parent, pgrad in zip(node.parents, parent_grads):
                if pgrad is None or not parent.requires_grad:
                    continue
                _check_adjoint(node, parent, pgrad)
                if pgrad.dtype != parent.data.dtype:
                    pgrad = pgrad.astype(parent.data.dtype)
                if parent.grad_fn is None:  # a leaf
                    parent.accumulate_grad(pgrad)
                else:
                    pending.add(id(parent), pgrad)
            parent_grads = pgrad = None
        if not retain_graph:
            node.parents = ()
            node.grad_fn = freed_backward
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
                out = tensor_cls.wrap(data, requires_grad=True)
                out.parents = parents
                out.grad_fn = backward
                out.op_index = next(_op_counter)
                return out
    return tensor_cls.wrap(data)
