"""The worked backpropagation demo prints the seed's numbers (run as a module, in-process too)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chainrule.demos import backprop

EXPECTED_LINES = [
    "dL/dz3 = 2 * z3 = 2 * 1.27 = 2.54",
    "z3.grad = L.grad * dL/dz3 = 1 * 2.54 = 2.54",
    "y.grad = z3.grad * dz3/dy = 2.54 * 1 = 2.54",
    "z2.grad = z3.grad * dz3/dz2 = 2.54 * -1 = -2.54",
    "z1.grad = z2.grad * dz2/dz1 = -2.54 * 1 = -2.54",
    "b.grad = z2.grad * dz2/db = -2.54 * 1 = -2.54",
    "w.grad = z1.grad * dz1/dw = -2.54 * 2 = -5.08",
    "x.grad = z1.grad * dz1/dx = -2.54 * 0.5 = -1.27",
    "Value.backward() computes the same gradients: yes",
    "w.data += -w.grad * lr:  0.5 + 5.08 * 0.01 = 0.5508",
    "b.data += -b.grad * lr:  0.23 + 2.54 * 0.01 = 0.2554",
    "1.6129 -> 1.30645",
    "went down",
]


def test_module_runs_and_prints_every_number():
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.demos.backprop"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for expected in EXPECTED_LINES:
        assert expected in result.stdout, expected
    header = next(line for line in result.stdout.splitlines() if line.startswith("node"))
    for column in ("node", "formula", "data", "local gradient", "global gradient"):
        assert column in header
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line[:1].isalpha()}
    assert rows["z3"].split()[1:4] == ["y", "-", "z2"] and "1.27" in rows["z3"]
    assert "1.6129" in rows["L"]


def test_main_in_process_with_lr(capsys):
    assert backprop.main(["--lr", "0.1"]) == 0  # this step lands exactly on L = 0
    out = capsys.readouterr().out
    assert "w.data += -w.grad * lr:  0.5 + 5.08 * 0.1 = 1.008" in out
    assert "1.6129 -> 0  (the loss went down by 1.6129)" in out
    assert backprop.main(["--lr", "1"]) == 0  # too large a step: the loss goes up
    out = capsys.readouterr().out
    assert "1.6129 -> 130.645  (the loss went UP by 129.032: lr is too large)" in out


def test_run_returns_the_numbers():
    lines: list[str] = []
    numbers = backprop.run(out=lines.append)
    assert numbers["w.grad"] == pytest.approx(-5.08, rel=1e-12)
    assert numbers["z3.grad"] == pytest.approx(2.54, rel=1e-12)
    assert numbers["loss_before"] == pytest.approx(1.6129, rel=1e-12)
    assert numbers["loss_after"] == pytest.approx(1.306449, rel=1e-12)
    assert any("w.grad = z1.grad * dz1/dw = -2.54 * 2 = -5.08" in line for line in lines)


def test_bad_argument_exits_2():
    with pytest.raises(SystemExit) as info:
        backprop.main(["--lr", "fast"])
    assert info.value.code == 2
