"""Run an exercise's checks on a learner's file in a child process, and report.

The child (`python -m chainrule.exercises.worker`) gets its own process group, no stdin, one
BLAS thread, a memory cap, and an empty temporary folder as its working directory (so nothing
beside the learner's file shadows a module, and nothing it writes by accident lands there);
its output goes to files, its results to a JSON-lines file.
When the time limit passes, the whole group is killed. Whatever happens in the learner's code
(a syntax error, an exception, a crash, a hang), the report says which, and which checks ran.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from .registry import Exercise, ExerciseError, get

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding `chainrule`
WIDTH = 100  # the report's lines wrap here
OUTPUT_TAIL = 1500  # characters of the learner's printed output shown after a crash


def _wrap(text: str, first: str, rest: str) -> list[str]:
    """textwrap.wrap to WIDTH, never breaking inside `code spans`."""
    glued = re.sub(r"`[^`]*`", lambda m: m.group().replace(" ", "\x00"), text)
    lines = textwrap.wrap(glued, WIDTH, initial_indent=first, subsequent_indent=rest,
                          break_on_hyphens=False)
    return [line.replace("\x00", " ") for line in lines]


@dataclass
class Result:
    """One check's outcome: status is "pass", "fail" or "not run"."""

    name: str
    about: str
    status: str = "not run"
    note: str = ""
    hint: str = ""


@dataclass
class Report:
    """Every check's result, and `problem`: why the run stopped early (None when it did not)."""

    exercise: str
    path: Path
    timeout: float
    results: list[Result] = field(default_factory=list)
    problem: str | None = None
    output: str = ""

    @property
    def passed(self) -> bool:
        return self.problem is None and all(r.status == "pass" for r in self.results)

    def format(self) -> str:
        lines = [f"{self.exercise}: checking {self.path} (time limit {self.timeout:g} s)"]
        width = max((len(r.name) for r in self.results), default=0)
        indent = " " * (width + 10)
        for r in self.results:
            mark = {"pass": "PASS", "fail": "FAIL"}.get(r.status, "----")
            lines += _wrap(r.note or r.about, f"  {mark}  {r.name:<{width}}  ", indent)
            if r.hint:
                lines += _wrap(f"hint: {r.hint}", indent, indent + "      ")
        if self.problem:
            skipped = sum(r.status == "not run" for r in self.results)
            after = f"; the {skipped} checks marked ---- did not run" if skipped > 1 else (
                "; the check marked ---- did not run" if skipped else "")
            lines += _wrap(f"stopped: {self.problem}{after}", "  ", "  " + " " * 9)
            if self.output.strip():
                lines.append("  your code printed (the end of it):")
                lines += [f"    | {line}" for line in self.output.rstrip().splitlines()[-12:]]
        passed = sum(r.status == "pass" for r in self.results)
        verdict = "all pass. Well done!" if self.passed else "not yet."
        lines.append(f"{passed} of {len(self.results)} checks pass: {verdict}")
        return "\n".join(lines)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(PACKAGE_ROOT) + (os.pathsep + path if path else "")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # the exercises' matrices are small
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ beside the learner's file
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    """End the child and anything it started (its own process group, made at spawn)."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def _spawn(exercise: Exercise, path: Path, timeout: float, memory_mb: int, work: Path):
    """Run the worker; returns (exit code or None on timeout, its printed output)."""
    results = work / "results.jsonl"
    command = [sys.executable, "-m", "chainrule.exercises.worker", exercise.name,
               str(path.resolve()), str(results), str(memory_mb)]
    with open(work / "output.txt", "wb") as output:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, env=_child_env(), cwd=work,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            code = None
        except BaseException:  # Ctrl-C in the parent: do not leave the child running
            _kill_group(proc)
            raise
    printed = (work / "output.txt").read_bytes()[-OUTPUT_TAIL:].decode("utf-8", "replace")
    return code, printed


def _read_events(results: Path) -> list[dict]:
    events = []
    if results.exists():
        for line in results.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a crash
                break
    return events


def _problem(code: int | None, running: str | None, timeout: float,
             checks_ran: bool) -> tuple[str, str, str]:
    """(the report's problem line, the stopped check's note, its hint)."""
    during = f"during check {running!r}" if running else (
        "after the checks" if checks_ran else "while loading your file")
    if code is None:
        return (f"your code did not finish within {timeout:g} s {during}: an endless loop, "
                "or far too slow (the checker stopped it)",
                f"did not finish within {timeout:g} s",
                "look for a loop that never ends in the code this check calls")
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return (f"the Python process running your code crashed ({name}) {during}",
                f"Python crashed ({name}) here",
                "run this check's steps yourself, outside the checker, to see where")
    return (f"your code ended the Python process (exit code {code}) {during}",
            f"your code ended the process (exit code {code}) here",
            "remove the exit(), sys.exit() or os._exit() call")


def _read_results(events: list[dict], report: Report) -> tuple[str | None, bool]:
    """Fill report's results from the worker's events; returns (the check running when they
    stop, whether the worker finished)."""
    by_name = {r.name: r for r in report.results}
    running, done = None, False
    for event in events:
        kind = event.get("event")
        if kind == "load_failed":
            report.problem = f"{event['kind']} in your file: {event['message']}"
        elif kind == "start":
            running = event["check"]
        elif kind == "result" and event["check"] in by_name:
            r = by_name[event["check"]]
            r.status = "pass" if event["passed"] else "fail"
            r.note = event.get("note") or event.get("what", "")
            r.hint = event.get("hint", "")
            running = None
        elif kind == "done":
            done = True
    return running, done


def run_checks(exercise: Exercise, path: Path, timeout: float, memory_mb: int = 2048) -> Report:
    """Run `exercise`'s checks on `path` in a child process limited to `timeout` seconds and
    `memory_mb` MB of address space (0: no cap); returns the Report."""
    import importlib

    checks = importlib.import_module(f"chainrule.exercises.checks.{exercise.module}").CHECKS
    report = Report(exercise.name, path, timeout, [Result(c.name, c.about) for c in checks])
    with tempfile.TemporaryDirectory(prefix="chainrule-exercise-") as tmp:
        code, report.output = _spawn(exercise, path, timeout, memory_mb, Path(tmp))
        events = _read_events(Path(tmp) / "results.jsonl")
    running, done = _read_results(events, report)
    if not events and code is None:
        report.problem = (f"the checker did not reach your file within {timeout:g} s (a very "
                          "busy machine? pass a larger --timeout)")
    elif not events:  # the worker never started: not the learner's doing
        report.problem = (f"the checker's own process failed to start (exit code {code}); "
                          "its output is below — please report it")
    elif report.problem is None and (not done or code is None):
        checks_ran = any(e.get("event") == "start" for e in events)
        report.problem, note, hint = _problem(code, running, timeout, checks_ran)
        for r in report.results:
            if r.name == running:
                r.status, r.note, r.hint = "fail", note, hint
    return report


def check(name: str, path: str | Path, timeout: float | None = None,
          memory_mb: int = 2048) -> Report:
    """Run exercise `name`'s checks on the learner's file `path` in a child process, with
    the exercise's time limit (or `timeout` seconds) and `memory_mb` MB of address space.

    Raises ExerciseError for an unknown exercise or a path that is not a file.
    """
    exercise = get(name)
    path = Path(path)
    if not path.is_file():
        raise ExerciseError(f"{path} is not a file: pass the .py file you wrote "
                            f"(`chainrule exercises start {name}` makes one)")
    return run_checks(exercise, path, exercise.timeout if timeout is None else timeout,
                      memory_mb)
