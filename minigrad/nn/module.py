"""Module: the container of parameters and submodules, with PyTorch-style names."""
from collections import OrderedDict

import numpy as np

from .. import backend
from ..tensor import Parameter, Tensor, get_default_dtype


class Module:
    """Base class of layers and models. Subclasses define ``forward``."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before setting attributes")
        # re-assigning a name keeps its place in the order (names and state_dict follow it)
        if isinstance(value, Parameter):
            self._modules.pop(name, None)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Add (or, with None, declare absent) a parameter under ``name``."""
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name, module):
        """Register ``module`` (or None) as a child under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module expects a Module, got {type(module).__name__}")
        setattr(self, name, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----------------------------------------------------------- traversal
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return (m for _, m in self.named_children())

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module and every submodule, depth first."""
        stack, seen = [(prefix, self)], set()
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            for child_name, child in reversed(list(mod._modules.items())):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter), e.g. ("0.weight", ...), each parameter once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_name, mod in mods:
            for pname, p in mod._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{pname}" if mod_name else pname), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    # --------------------------------------------------------------- state
    def state_dict(self):
        """Ordered {name: host NumPy copy} of every parameter."""
        return OrderedDict((name, p.numpy().copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state, strict=True):
        """Copy arrays (NumPy, CuPy, minigrad or torch tensors) into the parameters by name.

        Every key and shape is checked before anything is copied, so a bad state
        leaves the model untouched. ``strict=False`` ignores missing and unexpected keys.
        """
        own = OrderedDict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts)
                           + f" (expected keys: {list(own)})")
        arrays = {}
        for name, p in own.items():
            if name not in state:
                continue
            arr = _host_array(state[name], name)
            if tuple(arr.shape) != p.shape:
                raise ValueError(f"load_state_dict: '{name}' has shape {tuple(arr.shape)} in the given state "
                                 f"but {p.shape} in the model")
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"load_state_dict: '{name}' has non-numeric dtype {arr.dtype}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"load_state_dict: '{name}' contains NaN or Inf")
            arrays[name] = arr
        for name, arr in arrays.items():
            p = own[name]
            p.data = backend.to_device(np.array(arr, dtype=p.dtype), p.device)  # always a copy
        return self

    # ------------------------------------------------------- mode & device
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move/cast every parameter in place; returns self."""
        for p in self.parameters():
            data = p.data
            if device is not None:
                data = backend.to_device(data, device)
            if dtype is not None:
                data = data.astype(np.dtype(dtype), copy=False)
            p.data = data
            if p.grad is not None:
                p.grad = None
        return self

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    def double(self):
        return self.to(dtype=np.float64)

    def float(self):
        return self.to(dtype=np.float32)

    @property
    def device(self):
        """Device of the module's parameters ("cpu" when it has none)."""
        for p in self.parameters():
            return p.device
        return "cpu"

    # ---------------------------------------------------------------- repr
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_lines = repr(child).split("\n")
            lines.append(f"  ({name}): " + "\n  ".join(child_lines))
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def _host_array(value, name):
    """A NumPy array from a state value: array, minigrad Tensor, torch tensor or CuPy array."""
    if isinstance(value, Tensor):
        value = value.data
    elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        return backend.to_numpy(value)
    except Exception as exc:
        raise TypeError(f"load_state_dict: '{name}' is a {type(value).__name__}, not an array") from exc


def new_parameter(host_array, dtype=None, device=None):
    """A Parameter from a host init array, cast to ``dtype`` (default float) on ``device``."""
    dt = np.dtype(dtype) if dtype is not None else get_default_dtype()
    return Parameter(np.asarray(host_array, dtype=dt), dtype=dt, device=device)


class Sequential(Module):
    """Modules applied in order; named "0", "1", ... like PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential takes Modules, got {type(m).__name__} at position {i}")
            setattr(self, str(i), m)

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """A list of modules, registered as "0", "1", ..."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())
