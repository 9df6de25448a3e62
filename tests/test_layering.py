"""The package's layering, checked over the source with `ast` (no imports are executed).

- No two modules import each other, directly or through others: the import graph of every
  module under src/chainrule has no cycle.
- The core imports nothing from the outer rings: the CLI, the web app, the datasets, the
  plots, the demos, the training-run command, preprocessing, the interop bridges, the
  model-file loader or the scikit-learn wrapper. The core is every other module (layers,
  losses, optimisers, the training loop, ...), so a new module is checked the day it is added.
- The scalar engine (value.py, scalar.py) stands alone: it imports nothing else from chainrule.
Every import counts: absolute or relative, at the top of a file or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "chainrule"

OUTER = {"cli", "web", "data", "viz", "demos", "run", "preprocess", "interop", "sklearn",
         "exercises", "serialize"}  # serialize: the model-file loader, over the interop formats
SCALAR_ENGINE = {"value", "scalar"}
ENTRY = {"__init__", "__main__"}  # the package itself: it re-exports every ring on purpose


def _module_name(path: Path) -> str:
    parts = ["chainrule", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool = False) -> set[str]:
    """Every module `source` (the module `name`) imports, as absolute dotted names.

    `from . import x` yields both the package and `package.x` (x may be a submodule).
    """
    found = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, package)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _chainrule_parts(modules: set[str]) -> set[str]:
    """The first component below `chainrule` of every chainrule module in `modules`."""
    return {m.split(".")[1] for m in modules if m.startswith("chainrule.")}


def _imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py")


def _all_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _top_part(path: Path) -> str:
    """The first component below `chainrule`: `cli` for cli/train.py, `layers` for layers.py."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _core_files() -> list[Path]:
    return [p for p in _all_files() if _top_part(p) not in OUTER | SCALAR_ENGINE | ENTRY]


def test_the_core_is_every_module_outside_the_outer_rings():
    names = {_top_part(p) for p in _core_files()}
    assert {"module", "layers", "conv", "pooling", "optim", "train", "distributed", "augment",
            "callbacks", "models", "threads"} <= names
    assert not names & (OUTER | SCALAR_ENGINE | ENTRY)
    present = {_top_part(p) for p in _all_files()}
    assert OUTER | SCALAR_ENGINE | ENTRY <= present, "a ring names a module that is gone"


# ---- no cycles -------------------------------------------------------------------------------
def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    return {_module_name(p): p for p in _all_files()}


def import_edges(source: str, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of `modules` that `source` (the module `name`) imports, at any level and in
    any function.

    `from pkg import x` is an edge to the module `pkg.x` when x is a module, else to `pkg`
    itself (x is then a name its `__init__` defines or re-exports). The parent packages
    Python runs on the way (`chainrule/data/__init__` before `chainrule.data.idx`) are not
    edges: importing a module names that module, and a package's `__init__` imports its own
    children by design.
    """
    found = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, package)
            for alias in node.names:
                child = f"{target}.{alias.name}"
                if child in modules:
                    found.add(child)
                elif target in modules:
                    found.add(target)
    found.discard(name)
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """name → the package's modules it imports."""
    names = set(files)
    return {name: import_edges(path.read_text(), name, path.name == "__init__.py", names)
            for name, path in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles, each a closed path a → b → … → a: for every strongly connected
    component with more than one module (Tarjan), the shortest cycle through each of its
    modules, shortest first, leaving out a cycle that passes through all the modules of one
    already listed (cutting that one may well end it), so the message shows which imports to
    cut."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:  # recursive: the package is a few hundred modules at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    found = [_shortest_cycle(start, set(c), graph) for c in components for start in c]
    cycles: list[list[str]] = []
    for cycle in sorted(found, key=len):
        if not any(set(kept) <= set(cycle) for kept in cycles):
            cycles.append(cycle)
    return cycles


def _shortest_cycle(start: str, inside: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest import path from `start` back to itself within its component."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & inside):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError("each module of a strongly connected component is on a cycle")


def test_no_two_modules_import_each_other():
    cycles = find_cycles(import_graph(module_files()))
    listed = "\n".join("  " + " → ".join(c) for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s); cut one import in each:\n{listed}"


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_imports_nothing_from_the_outer_rings(path):
    outer = _chainrule_parts(_imports_of(path)) & OUTER
    assert not outer, f"{path.name} (core) imports from {sorted(outer)}"


@pytest.mark.parametrize("name", sorted(SCALAR_ENGINE))
def test_scalar_engine_imports_nothing_else_from_the_package(name):
    others = _chainrule_parts(_imports_of(PACKAGE / f"{name}.py")) - SCALAR_ENGINE
    assert not others, f"{name}.py imports chainrule.{sorted(others)}"


def test_the_checker_sees_relative_absolute_and_function_level_imports():
    source = (
        "import chainrule.web.app\n"
        "from .. import data\n"
        "def f():\n"
        "    from ..viz import plot\n"
        "    from . import adam\n"
    )
    found = imported_modules(source, "chainrule.optim.sgd")
    assert _chainrule_parts(found) >= {"web", "data", "viz", "optim"}
    assert "chainrule.optim.adam" in found
    assert "chainrule.data" in imported_modules("from . import data", "chainrule", True)


def test_the_cycle_finder_sees_cycles_through_functions_and_packages():
    sources = {
        "p": "from .a import f\n",                   # __init__ re-exports a's f
        "p.a": "def g():\n    from .b import h\n",  # a function-level import
        "p.b": "from . import c\n",                   # c is a module: the edge is b → c
        "p.c": "from p import f\n",                   # f is a name: the edge is c → p
        "p.d": "import p.e\n",
        "p.e": "x = 1\n",
        "p.q": "from ..a import f\n",                 # the package p.q
        "p.q.r": "from .. import d\n",                # .. from p.q.r is p: the module p.d
        "p.s": "from .q.r import g\n",               # names p.q.r, not the package p.q
    }
    modules = set(sources)
    graph = {n: import_edges(src, n, n in ("p", "p.q"), modules) for n, src in sources.items()}
    assert graph == {"p": {"p.a"}, "p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p"},
                     "p.d": {"p.e"}, "p.e": set(), "p.q": {"p.a"}, "p.q.r": {"p.d"},
                     "p.s": {"p.q.r"}}
    assert find_cycles(graph) == [["p", "p.a", "p.b", "p.c", "p"]]
    assert find_cycles({"x": {"y"}, "y": set()}) == []
