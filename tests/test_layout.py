"""The package layout rules, checked statically (``ast``, nothing imported):

* minigrad never imports autospec or models (how gradients flow knows nothing of what is
  computed from them);
* no import cycles between the modules of a package (imports at module level; a lazy
  import inside a function is how a module defers a heavy or optional dependency, and
  closes no cycle either, but for one known re-export);
* public interfaces between modules: no module imports another module's ``_private`` names
  (``from .x import _y``) or reads a ``_private`` attribute that it does not define itself
  (``x._y``, ``rec._series``). A module's own privates, ``self._y`` / ``cls._y`` and dunder
  names are fine, and so are a package's private modules (``from . import _h5``) imported
  by modules of the same package: they are internal to it, not to one module.

The rules hold for autospec, models and minigrad (``PACKAGES``), with the two cycles by
design named below; and the kernels sit below the ops (no ``minigrad.kernels`` module imports
``minigrad.ops``).
"""
import ast
import pathlib
import textwrap
from collections import defaultdict

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("autospec", "models", "minigrad")
# Underscored names that are public API of the standard library (namedtuple's methods).
PUBLIC_UNDERSCORED = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) \
        and name not in PUBLIC_UNDERSCORED


class Module:
    """One source file: its dotted name, whether it is a package ``__init__``, its syntax tree."""

    def __init__(self, name, is_package, source):
        self.name, self.is_package = name, is_package
        self.tree = ast.parse(source)

    @property
    def package(self):
        return self.name if self.is_package else self.name.rpartition(".")[0]


def module_at(path, source):
    """The Module of ``source``, the file at ``path`` relative to the project root."""
    parts = pathlib.PurePath(path).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    name = ".".join(parts[:-1] if is_package else parts)
    return Module(name, is_package, source)


def load_modules(root, packages):
    """{dotted name: Module} of every .py file under root/<package>."""
    modules = [module_at(path.relative_to(root), path.read_text(encoding="utf-8"))
               for package in packages for path in sorted((root / package).rglob("*.py"))]
    return {m.name: m for m in modules}


def modules_from_sources(sources):
    """{dotted name: Module} from {relative path: source} (for the tests of the checks)."""
    modules = [module_at(path, textwrap.dedent(source)) for path, source in sources.items()]
    return {m.name: m for m in modules}


def absolute(module, node):
    """The absolute module name an ``ImportFrom`` node reads from."""
    if not node.level:
        return node.module
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module, top_level_only):
    """(line, imported module, names taken from it) for each import; ``from p import m`` with m a
    submodule counts as importing p.m. ``top_level_only`` skips imports inside functions."""
    found = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend((child.lineno, alias.name, ()) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append((child.lineno, absolute(module, child), tuple(a.name for a in child.names)))
            visit(child)

    visit(module.tree)
    return found


def import_edges(modules, top_level_only=True):
    """{module: {imported module of the same top-level package: first line}}."""
    edges = defaultdict(dict)
    for module in modules.values():
        top = module.name.split(".")[0]
        for line, target, names in imports(module, top_level_only):
            targets = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules] or [target]
            for t in targets:
                if t in modules and t != module.name and t.split(".")[0] == top:
                    edges[module.name].setdefault(t, line)
    return edges


def import_cycles(modules, top_level_only=True):
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    edges = import_edges(modules, top_level_only)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in sorted(modules):
        if v not in index:
            connect(v)
    return sorted(cycles)


def own_names(module):
    """Every name the module defines: functions, classes, assigned names and attributes, slots."""
    names = set()
    for node in ast.walk(module.tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                    for t in node.targets):
            names.update(c.value for c in ast.walk(node.value)
                         if isinstance(c, ast.Constant) and isinstance(c.value, str))
        elif attribute_by_name(node) and called_name(node) in ("setattr", "__setattr__"):
            names.add(attribute_by_name(node))
    return names


def called_name(call):
    """The name of the function a call calls (``f(...)``, ``x.f(...)``), or None."""
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def attribute_by_name(node):
    """The attribute name spelled out in ``getattr(x, "name")`` (also has/set/delattr and
    ``__setattr__``), or None."""
    if not (isinstance(node, ast.Call) and len(node.args) >= 2 and called_name(node) in (
            "getattr", "hasattr", "setattr", "delattr", "__setattr__")):
        return None
    name = node.args[1]
    return name.value if isinstance(name, ast.Constant) and isinstance(name.value, str) else None


def inside(name, package):
    """True when the module ``name`` belongs to ``package`` (its ``__init__`` or a module at any depth)."""
    return name == package or name.startswith(package + ".")


def private_module_outside(module, target, checked):
    """The private module of a checked package on the path ``target`` that ``module`` may not
    import (it is not inside that module's package), or None."""
    parts = target.split(".")
    if parts[0] not in checked:
        return None  # the standard library's and other projects' own business
    for i, part in enumerate(parts):
        if is_private(part) and not inside(module.name, ".".join(parts[:i])):
            return ".".join(parts[: i + 1])
    return None


def private_uses(modules):
    """'module:line: what' for each use of another module's private name."""
    found, checked = [], set(PACKAGES) | {name.split(".")[0] for name in modules}
    for module in modules.values():
        for line, target, names in imports(module, top_level_only=False):
            hidden = private_module_outside(module, target, checked)
            if hidden:
                found.append(f"{module.name}:{line}: imports {hidden}, a private module of another package")
            for name in names:
                if not is_private(name):
                    continue
                if f"{target}.{name}" in modules:  # a private module
                    if private_module_outside(module, f"{target}.{name}", checked):
                        found.append(f"{module.name}:{line}: from {target} import {name}, "
                                     "a private module of another package")
                else:
                    found.append(f"{module.name}:{line}: from {target} import {name}")
        defined = own_names(module)
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute):
                name, owner = node.attr, node.value
            elif attribute_by_name(node):
                name, owner = attribute_by_name(node), node.args[0]
            else:
                continue
            if not is_private(name) or name in defined:
                continue
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            found.append(f"{module.name}:{node.lineno}: {ast.unparse(node)}")
    return sorted(found)


def forbidden_imports(modules, package, forbidden):
    """'module:line: imported module' for each import (lazy ones too) by a module of ``package`` of
    a module inside one of the packages ``forbidden``; ``from p import m`` counts as importing p.m."""
    found = []
    for module in modules.values():
        if not inside(module.name, package):
            continue
        for line, target, names in imports(module, top_level_only=False):
            hit = next((t for t in [target] + [f"{target}.{n}" for n in names]
                        if any(inside(t, f) for f in forbidden)), None)
            if hit:
                found.append(f"{module.name}:{line}: {hit}")
    return sorted(found)


@pytest.fixture(scope="module")
def project():
    return load_modules(ROOT, PACKAGES)


# ------------------------------------------------------------------ the rules, on the project


def test_minigrad_never_imports_autospec_or_models(project):
    assert forbidden_imports(project, "minigrad", ("autospec", "models")) == []


def test_kernels_sit_below_the_ops(project):
    """No module of minigrad.kernels imports minigrad.ops: the ops call the kernels, not the other way."""
    assert forbidden_imports(project, "minigrad.kernels", ("minigrad.ops",)) == []


# The one cycle by design: the Tensor class and its operators are one unit in two places.
# minigrad/tensor.py gives Tensor its methods (+, @, sum, reshape, ...) from the op families
# at its end, and those ops build Tensors. Breaking it would move Tensor's methods out of
# the class a learner reads first.
TENSOR_AND_ITS_OPERATORS = ["minigrad.ops._util", "minigrad.ops.arithmetic", "minigrad.ops.elementwise",
                            "minigrad.ops.reduction", "minigrad.ops.shape", "minigrad.tensor"]


def test_no_import_cycles_between_modules(project):
    assert import_cycles(project) == [TENSOR_AND_ITS_OPERATORS]


def test_lazy_imports_close_no_cycle_but_the_known_reexport(project):
    """Imports inside functions count too, except stats' lazy re-export of calibration's names
    (``stats.null_calibration``): calibration builds on stats, and stats lists it in its API."""
    assert import_cycles(project, top_level_only=False) == [["autospec.calibration", "autospec.stats"],
                                                                   TENSOR_AND_ITS_OPERATORS]


def test_no_module_uses_another_modules_private_names(project):
    assert private_uses(project) == []


# ------------------------------------------------------------------ the checks catch what they should


def test_cycle_check_finds_a_planted_cycle():
    modules = modules_from_sources({
        "pkg/__init__.py": "",
        "pkg/a.py": "from .b import f\n",
        "pkg/b.py": "from . import c\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": "def g():\n    from . import a\n",   # lazy: not a module-level edge
        "pkg/e.py": "from .d import g\n",
    })
    assert import_cycles(modules) == [["pkg.a", "pkg.b", "pkg.c"]]
    modules["pkg.a"] = Module("pkg.a", False, "def f():\n    from .b import f\n")
    assert import_cycles(modules) == []
    assert import_cycles(modules, top_level_only=False) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_private_check_flags_private_imports_and_attributes():
    modules = modules_from_sources({
        "pkg/__init__.py": "",
        "pkg/_store.py": "def read():\n    pass\n",
        "pkg/record.py": """
            class Record:
                def __init__(self):
                    self._rows = []
                def _series(self, key):
                    return self._rows
                def merge(self, other):
                    return other._rows + self._series(0)   # its own class's privates
            """,
        "pkg/table.py": """
            from . import _store
            from ._store import read
            from .record import Record, _helper
            def table(rec):
                point = Record()._replace
                if getattr(rec, "_tensor", False) or getattr(rec, "__len__", None):
                    return rec._series(1), _store.read(), read(), rec.__class__
            """,
        "other/__init__.py": "",
        "other/use.py": "from pkg import _store\nimport pkg._store\n",
    })
    assert private_uses(modules) == [
        "other.use:1: from pkg import _store, a private module of another package",
        "other.use:2: imports pkg._store, a private module of another package",
        "pkg.table:4: from pkg.record import _helper",
        "pkg.table:7: getattr(rec, '_tensor', False)",
        "pkg.table:8: rec._series",
    ]


def test_forbidden_import_check_finds_every_kind_of_import():
    modules = modules_from_sources({
        "pkg/__init__.py": "",
        "pkg/ops/__init__.py": "",
        "pkg/ops/add.py": "from ..kernels import fast\n",
        "pkg/kernels/__init__.py": "",
        "pkg/kernels/fast.py": "def f():\n    from ..ops import add\n",   # lazy: counts too
        "pkg/kernels/slow.py": "from .. import ops\nimport pkg.ops.add\n",
        "pkg/kernels/fine.py": "from . import fast\nimport pkg.opsx\n",
    })
    assert forbidden_imports(modules, "pkg.kernels", ("pkg.ops",)) == [
        "pkg.kernels.fast:2: pkg.ops", "pkg.kernels.slow:1: pkg.ops", "pkg.kernels.slow:2: pkg.ops.add"]


def test_ops_read_as_maths_and_leave_speed_to_the_kernels(project):
    """Issue 14's layering: an op in minigrad/ops calls kernels by name; thread splits
    (``kernels.threads``) and NumPy-vs-CuPy branches (``xp is np``) live inside the kernels."""
    found = []
    for module in project.values():
        if not module.name.startswith("minigrad.ops"):
            continue
        found += [f"{module.name}:{line}: imports {target}" for line, target, names in imports(module, False)
                  if target == "minigrad.kernels.threads" or (target == "minigrad.kernels" and "threads" in names)]
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Is, ast.IsNot)) for op in node.ops):
                operands = [node.left] + node.comparators
                if any(isinstance(o, ast.Name) and o.id in ("np", "numpy", "cupy") for o in operands):
                    found.append(f"{module.name}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
