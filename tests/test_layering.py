"""The package's layering, checked over the source with `ast` (no imports are executed).

- The core (layers, losses, optimisers, ...) imports nothing from the outer rings: the CLI,
  the web app, the datasets, the plots, the demos, the training-run command, preprocessing,
  the interop bridges or the scikit-learn wrapper.
- The scalar engine (value.py, scalar.py) stands alone: it imports nothing else from chainrule.
Every import counts: absolute or relative, at the top of a file or inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "chainrule"

CORE = [
    "module", "init", "layers", "activations", "losses", "conv", "pooling", "normalization",
    "regularization", "gradcheck", "batching", "metrics", "_io", "_version", "distributed",
    "_threads", "tensor", "tensor_ops",
]  # fmt: skip
OUTER = {"cli", "web", "data", "viz", "demos", "run", "preprocess", "interop", "sklearn",
         "exercises"}
SCALAR_ENGINE = {"value", "scalar"}


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
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _chainrule_parts(modules: set[str]) -> set[str]:
    """The first component below `chainrule` of every chainrule module in `modules`."""
    return {m.split(".")[1] for m in modules if m.startswith("chainrule.")}


def _imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(), _module_name(path), path.name == "__init__.py")


def _core_files() -> list[Path]:
    files = [PACKAGE / f"{name}.py" for name in CORE if (PACKAGE / f"{name}.py").exists()]
    return files + sorted((PACKAGE / "optim").glob("*.py"))


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
