"""`chainrule exercises`: the skeletons, the checks, and the child process that runs them.

The key paths drive the real command (`chainrule exercises ...` in a subprocess, which honours
PYTHONPATH); the reference and wrong solutions in tests/exercises_solutions/ go through the
checker functions in this process (fast), and a few more through `exercises.check` (the child).
A learner's crash, hang, syntax error, import error or exit must be reported as such.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainrule import exercises
from chainrule.exercises import worker
from chainrule.exercises.checks import value as value_checks
from cli_assertions import assert_one_line_error

SOLUTIONS = Path(__file__).resolve().parent / "exercises_solutions"
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------- helpers


def command() -> list[str]:
    """The installed `chainrule` script beside this Python (else `python -m chainrule`)."""
    script = Path(sys.executable).parent / "chainrule"
    return [str(script)] if script.exists() else [sys.executable, "-m", "chainrule"]


def cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*command(), "exercises", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)




def statuses(report) -> dict[str, str]:
    return {r.name: r.status for r in report.results}


def load_module(path: Path):
    """The learner's file as a fresh module of its own name (not added to sys.modules)."""
    spec = importlib.util.spec_from_file_location(f"solution_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_here(name: str, path: Path) -> dict[str, dict]:
    """Every check of exercise `name` on `path`, in this process: name → worker's result."""
    module = load_module(path)
    checks = importlib.import_module(
        f"chainrule.exercises.checks.{exercises.EXERCISES[name].module}").CHECKS
    return {c.name: worker.run_check(c, module, path.resolve()) for c in checks}


def value_variant(tmp_path: Path, old: str, new: str, name: str = "value.py") -> Path:
    """The good `value` solution with one piece of source replaced."""
    source = (SOLUTIONS / "value_good.py").read_text()
    assert old in source
    path = tmp_path / name
    path.write_text(source.replace(old, new, 1))
    return path


# ------------------------------------------------------------------ list and start (CLI)


def test_list_names_every_exercise_with_a_summary():
    result = cli("list")
    assert result.returncode == 0, result.stderr
    for name in ("value", "dense", "softmax-ce", "sgd-momentum", "conv2d", "mlp-mnist"):
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith(name + " "))
        assert len(line.split(maxsplit=1)[1]) > 20, line  # a one-line description


def test_start_writes_the_skeleton_then_refuses_to_overwrite(tmp_path):
    folder = tmp_path / "mywork" / "deeper"
    result = cli("start", "value", "--dir", folder)
    assert result.returncode == 0, result.stderr
    written = folder / "value.py"
    assert written.read_text() == exercises.EXERCISES["value"].skeleton.read_text()
    written.write_text("# my work so far\n")
    again = cli("start", "value", "--dir", folder)
    assert_one_line_error(again, "already exists", str(written))
    assert written.read_text() == "# my work so far\n"
    assert sorted(p.name for p in folder.iterdir()) == ["value.py"]  # no temp file left


@pytest.mark.parametrize("args, needles", [
    (["start", "no-such"], ["no-such", "value, dense"]),
    (["check", "no-such", "x.py"], ["no-such", "chainrule exercises list"]),
    (["check", "value", "missing.py"], ["missing.py", "is not a file"]),
    (["check", "value", "."], ["is not a file"]),
    (["check", "value", "x.py", "--timeout", "0"], ["--timeout"]),
    (["check", "value", "x.py", "--timeout", "soon"], ["--timeout"]),
    (["check", "value"], ["FILE"]),
    (["frobnicate"], ["frobnicate"]),
])  # fmt: skip
def test_usage_errors_are_one_line_and_exit_2(args, needles, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli(*args), *needles)


def test_paths_with_spaces_and_accents_work(tmp_path):
    folder = tmp_path / "my work" / "übungen"
    assert cli("start", "value", "--dir", folder).returncode == 0
    shutil.copy(SOLUTIONS / "value_good.py", folder / "value.py")
    result = cli("check", "value", folder / "value.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(folder / "value.py") in result.stdout


def test_start_into_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "afile").write_text("")
    assert_one_line_error(cli("start", "dense", "--dir", tmp_path / "afile"), "not a folder")
    assert_one_line_error(cli("start", "dense", "--dir", tmp_path / "afile" / "sub"),
                          "cannot write", "--dir")


def test_a_module_beside_the_learners_file_or_in_the_cwd_shadows_nothing(tmp_path, monkeypatch):
    """The child runs in an empty folder: a chainrule.py where the command is run from does
    not replace the checker; the learner's own helper modules beside their file do import."""
    (tmp_path / "chainrule.py").write_text("raise SystemExit('the wrong chainrule')\n")
    (tmp_path / "mywork").mkdir()
    (tmp_path / "mywork" / "helpers.py").write_text("from math import tanh  # noqa\n")
    source = (SOLUTIONS / "value_good.py").read_text().replace(
        "import math\n", "import math\n\nimport helpers  # noqa: F401\n", 1)
    (tmp_path / "mywork" / "value.py").write_text(source)
    monkeypatch.chdir(tmp_path)
    result = cli("check", "value", "mywork/value.py")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", list(exercises.EXERCISES))
def test_every_skeleton_is_valid_python_with_todos_and_fails_its_checks(name, tmp_path):
    path = exercises.start(name, tmp_path)
    assert path == tmp_path / (name.replace("-", "_") + ".py")  # importable: softmax_ce.py
    source = path.read_text()
    compile(source, str(path), "exec")
    assert "TODO" in source and "NotImplementedError" in source
    results = run_here(name, path)
    assert results["own-work"]["passed"]
    failed = [c for c, r in results.items() if not r["passed"]]
    assert failed, f"the untouched {name} skeleton passes every check"
    assert any("still a TODO" in results[c]["what"] for c in failed)


def test_every_skeleton_ships_in_the_package_data():
    """A fresh install has the skeletons: pyproject's package-data globs cover each one."""
    import ast
    import fnmatch

    text = (ROOT / "pyproject.toml").read_text()
    section = text[text.index("[tool.setuptools.package-data]"):]
    line = next(ln for ln in section.splitlines() if ln.startswith("chainrule = "))
    globs = ast.literal_eval(line.split("=", 1)[1].strip())
    package = ROOT / "src" / "chainrule"
    for exercise in exercises.EXERCISES.values():
        relative = exercise.skeleton.relative_to(package).as_posix()
        assert exercise.skeleton.is_file(), relative
        assert any(fnmatch.fnmatch(relative, g) for g in globs), relative


# --------------------------------------------------------------- check value (the CLI)


def test_check_value_on_the_untouched_skeleton_fails(tmp_path):
    path = exercises.start("value", tmp_path)
    result = cli("check", "value", path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  seed-000" in result.stdout and "still a TODO" in result.stdout
    assert "not yet." in result.stdout and "Traceback" not in result.stdout + result.stderr


def test_check_value_on_a_micrograd_style_solution_passes():
    result = cli("check", "value", SOLUTIONS / "value_good.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for name in ("seed-000", "random-expressions", "reused-nodes", "deep-chain"):
        assert f"PASS  {name}" in result.stdout
    assert "w.grad = −5.08" in result.stdout and "all pass" in result.stdout


def test_check_value_on_the_overwrite_bug_fails_with_the_accumulate_hint():
    result = cli("check", "value", SOLUTIONS / "value_overwrite.py")
    assert result.returncode == 1
    block = result.stdout.split("FAIL  reused-nodes")[1].split("random-expressions")[0]
    assert "a.grad = 1.0, expected 2.0" in block
    hint = " ".join(block.split("hint:")[1].split())
    assert "`self.grad += ...`" in hint and "never `=`" in hint, hint
    assert "PASS  seed-000" in result.stdout  # one use per node: = and += agree there


# ------------------------------------------------ the learner's code misbehaving (the child)


def test_a_hang_is_reported_and_stopped(tmp_path):
    path = value_variant(tmp_path, "        self.grad = 1.0\n",
                         "        while True:\n            pass\n")
    started = time.monotonic()
    result = cli("check", "value", path, "--timeout", "3")
    assert time.monotonic() - started < 60
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not finish within 3 s during check 'seed-000'" in result.stdout
    assert "PASS  forward" in result.stdout  # the checks before it still count
    assert "----  deep-chain" in result.stdout  # the ones after it did not run
    assert "Traceback" not in result.stdout + result.stderr


def test_a_hang_kills_what_the_learners_code_started(tmp_path):
    pidfile = tmp_path / "pid"
    path = tmp_path / "value.py"
    path.write_text(f"import pathlib, subprocess\n"
                    f"p = subprocess.Popen(['sleep', '120'])\n"
                    f"pathlib.Path({str(pidfile)!r}).write_text(str(p.pid))\n"
                    f"while True:\n    pass\n")
    if shutil.which("sleep") is None:
        pytest.skip("no `sleep` program here")
    report = exercises.check("value", path, timeout=2)
    assert "while loading your file" in report.problem
    pid = int(pidfile.read_text())
    for _ in range(100):  # the killed orphan is reaped by init shortly after (if ever)
        if not _alive(pid):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the learner's child process {pid} outlived the check")


def _alive(pid: int) -> bool:
    """Running, not ended (a zombie waiting for a container's init to reap it has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@pytest.mark.parametrize("source, needles", [
    ("class Value:\n    def __init__(self, data)\n        pass\n",
     ["syntax error in your file: line 2", "expected ':'"]),
    (b"x = '\xff\xfe'\n", ["syntax error in your file"]),
    ("import no_such_module_here\n", ["import error in your file", "no_such_module_here"]),
    ("raise RuntimeError('boom at load')\n",
     ["error while loading in your file", "boom at load", "line 1"]),
    ("import sys\nsys.exit(4)\n", ["error while loading", "SystemExit"]),
    ("import os\nos._exit(3)\n", ["ended the Python process (exit code 3) while loading"]),
    ("import os\nos.abort()\n", ["crashed (SIGABRT) while loading"]),
])  # fmt: skip
def test_a_broken_file_is_reported_as_such(tmp_path, source, needles):
    path = tmp_path / "value.py"
    path.write_bytes(source if isinstance(source, bytes) else source.encode())
    result = cli("check", "value", path)
    assert result.returncode == 1, result.stdout + result.stderr
    for needle in needles:
        assert needle in result.stdout, result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "0 of 8 checks pass" in result.stdout


def test_a_checker_that_cannot_start_is_not_blamed_on_the_learner(monkeypatch):
    from chainrule.exercises import runner

    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` program here")
    monkeypatch.setattr(runner.sys, "executable", false)
    report = exercises.check("value", SOLUTIONS / "value_good.py")
    assert "checker's own process failed to start (exit code 1)" in report.problem
    assert not report.passed and "your code" not in report.format()


def test_a_thread_left_running_does_not_hold_the_checker(tmp_path):
    source = (SOLUTIONS / "value_good.py").read_text() + (
        "\n\nimport threading, time\n"
        "threading.Thread(target=time.sleep, args=(600,)).start()  # not a daemon\n")
    path = tmp_path / "value.py"
    path.write_text(source)
    report = exercises.check("value", path, timeout=20)
    assert report.passed, report.format()


def test_a_crash_inside_a_check_names_the_check(tmp_path):
    path = value_variant(tmp_path, "    def relu(self) -> Value:\n",
                         "    def relu(self) -> Value:\n        import os\n        os.abort()\n")
    report = exercises.check("value", path)
    assert "crashed (SIGABRT) during check 'forward'" in report.problem
    assert statuses(report)["interface"] == "pass" and statuses(report)["forward"] == "fail"
    assert not report.passed


def test_a_runaway_allocation_is_a_memory_error_not_a_swap(tmp_path):
    """3 GB is more than the default 2 GB cap (and would fit in this machine's memory, so the
    test fails if the cap is missing)."""
    path = value_variant(tmp_path, "        self.grad = 1.0\n",
                         "        import numpy\n        numpy.ones(3 * 2**27)  # 3 GB\n"
                         "        self.grad = 1.0\n")
    report = exercises.check("value", path)
    result = {r.name: r for r in report.results}["seed-000"]
    assert result.status == "fail" and "MemoryError" in result.note
    assert "2048 MB" in result.hint


def test_an_exception_in_the_learners_code_names_its_line(tmp_path):
    path = value_variant(tmp_path, "        out = Value(math.tanh(self.data), (self,), \"tanh\")\n",
                         "        out = Value(math.tanh(self.data) / 0, (self,), \"tanh\")\n")
    results = run_here("value", path)
    assert not results["forward"]["passed"]
    assert results["forward"]["what"].startswith("your code raised ZeroDivisionError")
    assert "in tanh: `out = Value(math.tanh(self.data) / 0" in results["forward"]["what"]


def test_printing_and_reading_stdin_do_not_break_the_checker(tmp_path):
    path = value_variant(tmp_path, "    def backward(self) -> None:\n",
                         "    def backward(self) -> None:\n        print('x' * 10000)\n"
                         "        try:\n            input()\n        except EOFError:\n"
                         "            pass\n")
    report = exercises.check("value", path)
    assert report.passed, report.format()


def test_the_child_gets_one_blas_thread_and_the_time_limits_are_as_documented(
        tmp_path, monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    seen = tmp_path / "seen"
    path = tmp_path / "value.py"
    path.write_text(f"import os, pathlib\npathlib.Path({str(seen)!r}).write_text("
                    f"os.environ.get('OPENBLAS_NUM_THREADS', 'unset'))\n")
    exercises.check("value", path)
    assert seen.read_text() == "1"
    limits = {e.name: e.timeout for e in exercises.EXERCISES.values()}
    assert limits.pop("mlp-mnist") == 300 and set(limits.values()) == {60}


def test_the_docs_transcript_is_the_checkers_output(tmp_path):
    """docs/exercises.md shows `check value` on the overwrite bug verbatim; it must stay true."""
    page = (ROOT / "docs" / "exercises.md").read_text()
    shown = page.split("```text\n")[1].split("```")[0]
    (tmp_path / "mywork").mkdir()
    shutil.copy(SOLUTIONS / "value_overwrite.py", tmp_path / "mywork" / "value.py")
    result = subprocess.run([*command(), "exercises", "check", "value", "mywork/value.py"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert result.stdout == shown


@pytest.mark.parametrize("line", ["import torch", "from sklearn.neural_network import X",
                                  "import chainrule.value as v", "from micrograd import engine"])
def test_own_work_names_each_borrowed_import(tmp_path, line):
    from types import SimpleNamespace

    from chainrule.exercises.checking import Fail
    from chainrule.exercises.checks.common import own_work

    path = tmp_path / "x.py"
    path.write_text(f"import numpy as np\n{line}\n")
    with pytest.raises(Fail, match=line.split()[1].split(".")[0]):
        own_work(SimpleNamespace(__file__=str(path)))
    path.write_text("import numpy as np\nimport math\nfrom . import helpers\n")
    assert own_work(SimpleNamespace(__file__=str(path)))


def test_help_lists_the_command():
    result = subprocess.run([*command(), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "exercises" in result.stdout
    for action in ("list", "start", "check"):
        result = cli(action, "--help")
        assert result.returncode == 0 and "usage: chainrule exercises" in result.stdout


def test_a_missing_class_is_named(tmp_path):
    path = tmp_path / "value.py"
    path.write_text("class Valeu:\n    pass\n")
    results = run_here("value", path)
    assert results["interface"]["what"] == "your file defines no class `Value`"


def test_borrowing_the_library_fails_own_work(tmp_path):
    path = tmp_path / "value.py"
    path.write_text("from chainrule import Value  # noqa\n")
    results = run_here("value", path)
    assert not results["own-work"]["passed"] and "chainrule" in results["own-work"]["what"]
    assert results["seed-000"]["passed"]  # the library's Value is right, but not theirs


# ------------------------------------------ each exercise: the reference and wrong solutions


@pytest.mark.parametrize("name, solution", [
    ("value", "value_good.py"), ("dense", "dense_good.py"),
    ("softmax-ce", "softmax_ce_good.py"), ("sgd-momentum", "sgd_momentum_good.py"),
    ("conv2d", "conv2d_good.py"),
])  # fmt: skip
def test_the_reference_solution_passes_every_check(name, solution):
    results = run_here(name, SOLUTIONS / solution)
    failed = {c: r for c, r in results.items() if not r["passed"]}
    assert not failed, failed


@pytest.mark.parametrize("name, solution, check, what, hint", [
    ("value", "value_overwrite.py", "reused-nodes", "expected 2.0", "self.grad += ..."),
    ("value", "value_overwrite.py", "random-expressions", "finite differences", "+=, not ="),
    ("value", "value_recursive.py", "deep-chain", "recursion limit", "explicit stack"),
    ("dense", "dense_overwrite.py", "accumulates", "equals one pass's", "+="),
    ("softmax-ce", "softmax_ce_naive.py", "large-logits", "overflow", "subtract each row's max"),
    ("softmax-ce", "softmax_ce_sum.py", "uniform-logits", "expected ln 10", "not the sum"),
    ("softmax-ce", "softmax_ce_sum.py", "gradient", "N times too large", "divided by N"),
    ("sgd-momentum", "sgd_momentum_velocity.py", "lr-change", "learning rate changed",
     "only while lr is constant"),
    ("conv2d", "conv2d_flipped.py", "forward", "forward's output", "not flipped"),
])  # fmt: skip
def test_a_wrong_solution_fails_with_the_right_hint(name, solution, check, what, hint):
    results = run_here(name, SOLUTIONS / solution)
    result = results[check]
    assert not result["passed"], result
    assert what in result["what"] and hint in result["hint"], result
    passing = [c for c, r in results.items() if r["passed"]]
    assert "own-work" in passing and len(passing) >= 2  # mostly right: the check pinpoints


def test_the_velocity_form_passes_while_lr_is_constant():
    """The cs231n form v ← μv − lr·g is PyTorch's rule in disguise until lr changes."""
    results = run_here("sgd-momentum", SOLUTIONS / "sgd_momentum_velocity.py")
    assert results["momentum-steps"]["passed"] and results["first-step"]["passed"]


def _solution_variant(tmp_path, solution: str, old: str, new: str) -> Path:
    source = (SOLUTIONS / solution).read_text()
    assert old in source
    path = tmp_path / solution
    path.write_text(source.replace(old, new))
    return path


@pytest.mark.parametrize("name, solution, old, new, check, hint", [
    ("value", "value_good.py", "self.grad += (1 - out.data**2) * out.grad",
     "self.grad += (1 - out.data) * out.grad", "derivatives", "_backward of `tanh`"),
    ("value", "value_good.py", "        self.grad = 1.0\n", "", "seed-000", "1.0"),
    ("dense", "dense_good.py", "self.bias_grad += grad_out.sum(axis=0)",
     "self.bias_grad += grad_out.mean(axis=0)", "backward", "Σ over the batch rows"),
    ("dense", "dense_good.py", "self.x = x\n", "self.x = x\n        x *= 1.5\n",
     "leaves-inputs", "the caller still needs x"),
    ("sgd-momentum", "sgd_momentum_good.py", "self.buffers[i] = g.copy()",
     "self.buffers[i] = (1 - self.momentum) * g", "first-step", "(1 − μ)·g"),
    ("sgd-momentum", "sgd_momentum_good.py", "p.data -= self.lr * g",
     "p.data = p.data - self.lr * g", "in-place", "update in place"),
    ("sgd-momentum", "sgd_momentum_good.py", "p.grad[...] = 0", "p.grad = 0", "zero-grad",
     "in place"),
    ("conv2d", "conv2d_good.py", "(xpad.shape[2] - kh) // s + 1", "(xpad.shape[2] - kh) // s",
     "output-shape", "// stride + 1"),
    ("conv2d", "conv2d_good.py", "self.bias_grad += grad_out.sum(axis=(0, 2, 3))",
     "self.bias_grad += grad_out.sum(axis=(0, 2, 3)) * 0.5", "backward", "db[f]"),
])  # fmt: skip
def test_a_planted_bug_fails_its_check(tmp_path, name, solution, old, new, check, hint):
    results = run_here(name, _solution_variant(tmp_path, solution, old, new))
    assert not results[check]["passed"], results[check]
    assert hint in results[check]["hint"], results[check]


def test_value_random_expressions_are_safe_and_varied():
    trees = list(value_checks._safe_expressions(40))
    assert len(trees) == 40
    shown = {value_checks.show(t) for t, _ in trees}
    assert len(shown) == 40
    for op in ("tanh", "relu", "exp", "**", "/", "*", "-", "+"):
        assert any(op in s for s in shown), op


# ------------------------------------------------------------------------ mlp-mnist


def test_mlp_mnist_reference_reaches_the_stated_accuracy():
    report = exercises.check("mlp-mnist", SOLUTIONS / "mlp_mnist_good.py")
    assert report.passed, report.format()
    accuracy = {r.name: r for r in report.results}["accuracy"].note
    assert float(accuracy.split()[1].rstrip("%")) / 100 >= 0.92, accuracy


def test_mlp_mnist_untrained_or_wrong_predictions_fail(tmp_path):
    constant = tmp_path / "constant.py"
    constant.write_text("import numpy as np\n\ndef train(x, y):\n"
                        "    return lambda x: np.zeros(len(x), dtype=int)\n")
    results = run_here("mlp-mnist", constant)
    assert results["predictions"]["passed"] and not results["accuracy"]["passed"]
    assert "chance level" in results["accuracy"]["hint"]
    logits = tmp_path / "logits.py"
    logits.write_text("import numpy as np\n\ndef train(x, y):\n"
                      "    return lambda x: np.zeros((len(x), 10))\n")
    results = run_here("mlp-mnist", logits)
    assert not results["predictions"]["passed"] and "argmax" in results["predictions"]["hint"]


# ------------------------------------------------------------------------------ the docs


def test_every_exercise_the_docs_name_exists():
    import re

    named = set()
    for page in [ROOT / "README.md", *(ROOT / "docs").rglob("*.md")]:
        if page.is_file():
            named |= set(re.findall(r"chainrule\s+exercises\s+(?:start|check)\s+([a-z][\w-]*)",
                                    page.read_text(encoding="utf-8")))
    assert named and named <= set(exercises.EXERCISES), named - set(exercises.EXERCISES)
    assert {"value", "dense", "softmax-ce", "sgd-momentum", "conv2d", "mlp-mnist"} <= named
