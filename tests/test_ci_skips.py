"""tests/conftest.py's rule: under CI=true, a skip for something the test extra installs
fails; every other skip stays a skip. Checked by running pytest on a few made-up tests, with
the real conftest, in a subprocess (with and without CI=true)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

SKIPS = '''
import sys
import pytest

def test_a_module_the_test_extra_installs(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)   # as if the install had failed
    pytest.importorskip("onnx")

def test_a_submodule_of_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    pytest.importorskip("playwright.sync_api")

def test_a_module_it_does_not_install():
    pytest.importorskip("no_such_module_anywhere")

def test_a_program_it_installs():
    pytest.skip("test extra: no Chromium executable (apt-get install -y chromium)")

@pytest.mark.skipif(True, reason="test extra: needs mpiexec and mpi4py")
def test_a_skipif_mark_for_it():
    pass

@pytest.mark.skipif(True, reason="set CHAINRULE_MNIST_FULL=1 to test the full download")
def test_an_optional_download():
    pass

def test_that_runs():
    assert True
'''

MODULE_SKIP = '''
import sys
import pytest

sys.modules["safetensors"] = None
pytest.importorskip("safetensors")

def test_never_collected():
    pass
'''


def _run(tmp_path: Path, ci: str | None) -> dict[str, str]:
    """Outcome of every test (and of collecting the skipped module) by name."""
    (tmp_path / "conftest.py").write_text((HERE / "conftest.py").read_text())
    (tmp_path / "test_skips.py").write_text(SKIPS)
    (tmp_path / "test_module_skip.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--continue-on-collection-errors", f"--junitxml={report}", "-q", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name") or case.get("classname")] = kinds[0] if kinds else "passed"
    return outcomes


def test_under_ci_a_skip_for_what_the_test_extra_installs_fails(tmp_path):
    outcomes = _run(tmp_path, "true")
    assert outcomes.pop("test_module_skip") == "error"  # the whole module: a collection error
    assert outcomes == {
        "test_a_module_the_test_extra_installs": "failure",
        "test_a_submodule_of_one": "failure",
        "test_a_module_it_does_not_install": "skipped",
        "test_a_program_it_installs": "failure",
        "test_a_skipif_mark_for_it": "error",  # a skipif fails in setup: an error
        "test_an_optional_download": "skipped",
        "test_that_runs": "passed",
    }


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_every_skip_stays_a_skip(tmp_path, ci):
    outcomes = _run(tmp_path, ci)
    assert outcomes.pop("test_module_skip") == "skipped"
    assert outcomes.pop("test_that_runs") == "passed"
    assert set(outcomes.values()) == {"skipped"}
    assert len(outcomes) == 6
