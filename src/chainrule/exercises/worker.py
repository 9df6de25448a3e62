"""The child process of `chainrule exercises check`: load the learner's file, run the checks.

    python -m chainrule.exercises.worker NAME FILE RESULTS

Writes one JSON object per line to RESULTS as it goes (so a crash or a hang part-way still
leaves the earlier results): {"event": "ready"}; then per check {"event": "start", "check"}
and {"event": "result", "check", "passed", "note" | "what" and "hint"}; {"event":
"load_failed", "kind", "message"} when the file cannot be loaded; {"event": "done"} at the
end. Each line is flushed at once.
The memory limit is set here, before the learner's code runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback
import warnings
from pathlib import Path
from types import ModuleType

from .checking import Check, Fail
from .registry import EXERCISES


def limit_memory(megabytes: int) -> None:
    """Cap the address space (POSIX only): a runaway allocation is a MemoryError, not a swap."""
    try:
        import resource
    except ImportError:  # Windows: no rlimits; the time limit still holds
        return
    limit = megabytes * 2**20
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def where(exc: BaseException, path: Path, code: bool = True) -> str:
    """'line N, in func' of the innermost frame of the learner's file in exc's traceback."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() == path]
    if not frames:
        return ""
    f = frames[-1]
    shown = f": `{f.line.strip()}`" if f.line and code else ""
    return f"line {f.lineno}, in {f.name}{shown}"


def describe(exc: BaseException, path: Path, code: bool = True) -> str:
    """The exception in one line, with where in the learner's file it came from."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    at = where(exc, path, code)
    return f"{text} ({at})" if at else text


def load(path: Path) -> ModuleType:
    """Import the learner's file as the module `learner`, its folder first on sys.path."""
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("learner", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["learner"] = module
    spec.loader.exec_module(module)
    return module


def load_failure(exc: BaseException, path: Path) -> dict:
    if isinstance(exc, SyntaxError):
        line = f"line {exc.lineno}: " if exc.lineno else ""
        code = f" `{exc.text.strip()}`" if exc.text and exc.text.strip() else ""
        return {"kind": "syntax error", "message": f"{line}{exc.msg}{code}"}
    if isinstance(exc, ImportError):
        return {"kind": "import error", "message": describe(exc, path)}
    return {"kind": "error while loading", "message": describe(exc, path)}


def _error_hint(exc: BaseException, memory_mb: int) -> str:
    if isinstance(exc, MemoryError):
        return (f"your code asked for more memory than the checker allows ({memory_mb} MB): "
                "look for an array far bigger than the shapes in the docstring")
    if isinstance(exc, SystemExit):
        return "a check's code called exit(): remove the exit() or sys.exit() call"
    return "fix the line the error points to (no line of your file? then a method returned " \
           "something of the wrong type: compare it with the docstring)"


def run_check(check: Check, module: ModuleType, path: Path, memory_mb: int = 0) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # overflow & co. are failures
            note = check.run(module)
    except Fail as fail:
        return {"passed": False, "what": fail.what, "hint": fail.hint}
    except NotImplementedError as exc:
        at = where(exc, path, code=False)
        todo = " ".join(str(exc).split()).removeprefix("TODO:").strip() or "a method"
        return {"passed": False, "what": f"still a TODO: {todo}" + (f" ({at})" if at else ""),
                "hint": check.todo_hint or "fill in that TODO"}
    except RuntimeWarning as exc:
        return {"passed": False, "what": f"NumPy warned: {describe(exc, path)}",
                "hint": "an overflow or a 0/0 in your code: see the line it points to"}
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the learner's code may raise anything
        return {"passed": False, "what": f"your code raised {describe(exc, path)}",
                "hint": _error_hint(exc, memory_mb)}
    return {"passed": True, "note": note or ""}


def main(argv: list[str]) -> int:
    name, path, results = argv[0], Path(argv[1]).resolve(), Path(argv[2])
    memory_mb = int(argv[3]) if len(argv) > 3 else 0
    checks = importlib.import_module(f"chainrule.exercises.checks.{EXERCISES[name].module}")
    with results.open("a", encoding="utf-8") as out:
        def emit(**event) -> None:
            out.write(json.dumps(event) + "\n")
            out.flush()

        emit(event="ready")
        if memory_mb:
            limit_memory(memory_mb)
        try:
            module = load(path)
        except (Exception, SystemExit) as exc:  # noqa: BLE001
            emit(event="load_failed", **load_failure(exc, path))
            return 0
        for check in checks.CHECKS:
            emit(event="start", check=check.name)
            emit(event="result", check=check.name, **run_check(check, module, path, memory_mb))
        emit(event="done")
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # at once: a thread the learner's code left running must not keep us
