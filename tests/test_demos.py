"""The seed demos (`chainrule demo NAME`) compute the numbers their seeds print.

linear-system, xnor, gradient-descent, activations and cross-entropy; `backprop` has its own
test file. Each demo keeps its computation in small functions, asserted here directly, and
each `main([...])` is run once to check what it prints and the files it writes.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import chainrule as cr
from chainrule.demos import activations, cross_entropy, gradient_descent, linear_system, xnor


def _central_difference(f, point, h=1e-6):
    point = np.asarray(point, dtype=np.float64)
    grad = np.zeros_like(point)
    for i in np.ndindex(point.shape):
        e = np.zeros_like(point)
        e[i] = h
        grad[i] = (f(point + e) - f(point - e)) / (2 * h)
    return grad


def _image(path, fmt):
    """(size, frame count) of a valid image file of format `fmt`."""
    assert path.is_file(), path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == fmt
        frames = getattr(im, "n_frames", 1)
        for i in range(frames):
            im.seek(i)
            im.load()  # decode every frame
        return im.size, frames


# ---- linear-system (seed 001) ---------------------------------------------------------------
def test_linear_system_answer_is_1234():
    assert np.allclose(np.linalg.solve(linear_system.A, linear_system.B), linear_system.X_TRUE)


def test_linear_system_gradient_is_2AT_residual():
    x = linear_system.initial_x(3)
    numeric = _central_difference(linear_system.objective, x)
    assert np.allclose(linear_system.gradient(x), numeric, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_linear_system_5000_steps_reach_1234(seed):
    x0 = linear_system.initial_x(seed)
    assert x0.shape == (4, 1) and np.all((x0 >= 0) & (x0 < 1))  # like np.random.rand(4, 1)
    x = linear_system.descend(x0, lr=0.01, steps=5000)
    assert np.abs(x - linear_system.X_TRUE).max() < 1e-3
    assert linear_system.objective(x) < 1e-20


def test_linear_system_stop_condition_is_the_first_step_below_0_01():
    x0 = linear_system.initial_x(0)
    steps, x = linear_system.steps_until(x0, 0.01)
    assert linear_system.objective(x) < 0.01
    assert steps >= 1
    assert linear_system.objective(linear_system.descend(x0, 0.01, steps - 1)) >= 0.01
    # F < 0.01 bounds the error but does not make it small
    error = np.linalg.norm(x - linear_system.X_TRUE)
    assert error <= linear_system.error_bound(0.01)
    assert np.abs(x - linear_system.X_TRUE).max() > 1e-3


@pytest.mark.parametrize("seed", [0, 1, 4])
def test_barzilai_borwein_reaches_1e_10_far_sooner(seed):
    x0 = linear_system.initial_x(seed)
    bb_steps, x = linear_system.barzilai_borwein(x0, 1e-10)
    gd_steps, _ = linear_system.steps_until(x0, 1e-10)
    assert linear_system.objective(x) < 1e-10
    assert np.abs(x - linear_system.X_TRUE).max() < 1e-4
    assert bb_steps < 100 < gd_steps


def test_linear_system_too_large_lr_diverges():
    limit = linear_system.largest_stable_lr()
    assert 0.02 < limit < 0.021
    x0 = linear_system.initial_x(0)
    assert linear_system.diverge(x0, 0.05, 100) > 1e50
    assert linear_system.objective(linear_system.descend(x0, 0.02, 3000)) < 1e-6


def test_linear_system_main_prints_x_as_the_seed_does(capsys):
    assert linear_system.main([]) == 0
    out = capsys.readouterr().out
    assert "array([[1.],\n       [2.],\n       [3.],\n       [4.]])" in out
    steps, _ = linear_system.steps_until(linear_system.initial_x(0), 0.01)
    assert f"F(x) < 0.01: reached after {steps} steps" in out
    bb_steps, _ = linear_system.barzilai_borwein(linear_system.initial_x(0), 1e-10)
    assert f"F(x) < 1e-10 after {bb_steps} steps" in out
    assert "lr 0.05" in out


def test_linear_system_main_with_a_diverging_lr(capsys):
    assert linear_system.main(["--lr", "0.05", "--steps", "50"]) == 0
    assert "too large" in capsys.readouterr().out


# ---- xnor (seed 001) ------------------------------------------------------------------------
XNOR_TABLE = [(0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 1, 1)]


def _right(model):
    rows = xnor.truth_table(model)
    return [(a, b, t) for a, b, t, _, _ in rows] == XNOR_TABLE and all(
        t == r for _, _, t, _, r in rows
    )


def test_xnor_default_reaches_0_001_with_the_right_truth_table(capsys):
    assert xnor.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    progress = [line for line in out if line.startswith("loss (")]
    assert len(progress) == 10
    assert progress[0].startswith("loss (1000/10000): ")
    assert progress[-1].startswith("loss (10000/10000): ")
    assert "every row right: the network computes XNOR" in out
    model, losses = xnor.train(seed=0)
    assert len(losses) == 10
    assert losses[-1] <= 1e-3
    assert _right(model)
    assert model[0].weight.data.dtype == np.float64


@pytest.mark.parametrize("seed", [1, 2])
def test_xnor_other_seeds_also_learn_it(seed):
    model, losses = xnor.train(seed=seed)
    assert losses[-1] <= 1e-3 and _right(model)


@pytest.mark.parametrize("mode", ["minibatch", "stochastic"])
def test_xnor_minibatch_and_stochastic_descent(mode):
    model, losses = xnor.train(seed=0, epochs=2000, mode=mode)
    assert losses[-1] <= 1e-3 and _right(model)


def test_xnor_main_mode_option(capsys):
    assert xnor.main(["--mode", "stochastic", "--epochs", "500"]) == 0
    out = capsys.readouterr().out
    assert "stochastic gradient descent (batch size 1)" in out
    assert "loss (500/500): " in out
    with pytest.raises(ValueError):
        xnor.train(mode="sideways")


# ---- gradient-descent (seed 003) ------------------------------------------------------------
@pytest.mark.parametrize("point", [(0.3, -0.4), (-1.5, 0.5), (2.0, 1.2), (-0.7, -1.8)])
def test_surface_gradient_by_hand_matches_central_differences(point):
    numeric = _central_difference(lambda p: gradient_descent.surface(*p), point)
    assert np.allclose(gradient_descent.surface_grad(*point), numeric, atol=1e-7)


def test_gradient_descent_paths_end_at_minima(tmp_path):
    results = gradient_descent.run(tmp_path, draw=False)
    square, sine, surface = (
        results[n] for n in ("gd_x_squared.gif", "gd_sin.gif", "gd_surface.gif")
    )
    assert abs(square["end"]) < 0.01 and square["end"] == pytest.approx(-4.0 * 0.8**30)
    assert sine["end"] == pytest.approx(-math.pi / 2, abs=1e-3)
    assert sine["value"] == pytest.approx(-1.0, abs=1e-6)
    assert surface["value"] == pytest.approx(-1.0, abs=1e-6)
    assert np.linalg.norm(gradient_descent.surface_grad(*surface["end"])) < 1e-3
    assert list(tmp_path.iterdir()) == []  # draw=False writes nothing


def test_gradient_descent_main_writes_three_gifs(tmp_path, capsys, monkeypatch):
    # the full-length paths are checked above; fewer frames keep this test quick
    short = [(*row[:6], 6, row[7]) for row in gradient_descent.ONE_D]
    monkeypatch.setattr(gradient_descent, "ONE_D", short)
    monkeypatch.setattr(gradient_descent, "SURFACE", {**gradient_descent.SURFACE, "steps": 8})
    out = tmp_path / "demos"
    assert gradient_descent.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name, frames in [("gd_x_squared.gif", 7), ("gd_sin.gif", 7), ("gd_surface.gif", 9)]:
        _, n_frames = _image(out / name, "GIF")
        assert n_frames == frames
        assert f"wrote {out / name}" in printed
    assert sorted(p.name for p in out.iterdir()) == [
        "gd_sin.gif",
        "gd_surface.gif",
        "gd_x_squared.gif",
    ]  # no temp files left
    assert "6 steps at α = 0.1 from -4.0000" in printed


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.gif"
    with pytest.raises(RuntimeError), gradient_descent.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with gradient_descent.atomic_path(target) as tmp:
        assert tmp.suffix == ".gif" and tmp.parent == tmp_path
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [target]


# ---- activations ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n, _ in activations.NAMES])
def test_activation_derivatives_from_the_table_are_right(name):
    assert activations.derivative_error(name) < 1e-7


def test_activation_table_values():
    t = activations.table(np.array([-1.0, 0.0, 1.0]))
    assert t["sigmoid"][0] == pytest.approx([1 / (1 + math.e), 0.5, 1 / (1 + 1 / math.e)])
    assert t["sigmoid"][1][1] == pytest.approx(0.25)
    assert t["relu"][0].tolist() == [0.0, 0.0, 1.0]
    assert t["gelu"][1][1] == pytest.approx(0.5)
    assert t["smelu"][0][1] == pytest.approx(0.5)  # (0 + 2)² / (4·2)
    assert t["tanh"][1][1] == pytest.approx(1.0)


def test_activations_main_writes_png(tmp_path, capsys):
    assert activations.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for _, label in activations.NAMES:
        assert label in out
    (width, height), _ = _image(tmp_path / "activations.png", "PNG")
    assert width > 800 and height > 400
    assert [p.name for p in tmp_path.iterdir()] == ["activations.png"]


# ---- cross-entropy (seed 003) ---------------------------------------------------------------
def test_cross_entropy_rows_are_minus_log_of_the_true_class():
    rows = cross_entropy.row_losses()
    # np.log (SIMD, CPU-dependent) against math.log: equal up to an ulp, not bit for bit
    expected = [-math.log(0.5), -math.log(0.3), -math.log(0.4)]
    np.testing.assert_allclose(rows, expected, rtol=1e-15, atol=0)


def test_cross_entropy_library_equals_the_seed_formula():
    expected = -(math.log(0.5) + math.log(0.3) + math.log(0.4)) / 3
    assert cross_entropy.formula() == expected
    assert abs(cross_entropy.library_loss() - expected) <= 1e-15
    assert abs(cross_entropy.library_loss(cross_entropy.LABELS) - expected) <= 1e-15
    assert abs(cr.CrossEntropy()(cross_entropy.Y_HAT, cross_entropy.one_hot()) - expected) <= 1e-15
    assert f"{expected:.4f}" == "0.9378"


def test_cross_entropy_main_prints_rows_and_mean(capsys):
    assert cross_entropy.main([]) == 0
    out = capsys.readouterr().out
    for text in (
        "−log(0.5) = 0.693147",
        "−log(0.3) = 1.203973",
        "−log(0.4) = 0.916291",
        "0.937803572253345",
    ):
        assert text in out


# ---- as commands ----------------------------------------------------------------------------
def test_demo_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "chainrule.demos.cross_entropy"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "0.937803572253345" in result.stdout


def test_demo_runs_through_the_cli():
    pytest.importorskip("chainrule.cli")
    exe = shutil.which("chainrule")
    cmd = [exe] if exe else [sys.executable, "-m", "chainrule"]
    result = subprocess.run(
        [*cmd, "demo", "cross-entropy"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "0.937803572253345" in result.stdout


def test_bad_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        xnor.main(["--mode", "sideways"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
