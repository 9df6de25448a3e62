"""The check every exercise starts with: the piece is the learner's own work."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

from ..checking import BORROWED, Check, Fail


def _borrowed_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in BORROWED]
    return sorted(set(found))


def own_work(module: ModuleType) -> str:
    borrowed = _borrowed_imports(Path(module.__file__).read_text(encoding="utf-8"))
    if borrowed:
        raise Fail(f"your file imports {', '.join(borrowed)}",
                   "build the piece yourself with Python and NumPy; the checker compares it "
                   "with the library, so importing the library proves nothing")
    return "imports only what it may"


OWN_WORK = Check("own-work", "the file builds the piece itself (no chainrule, torch, ...)",
                 own_work)
