"""`chainrule export RUN_OR_MODEL --format onnx|safetensors -o FILE`, run as a user runs it."""

import subprocess
import sys

import numpy as np
import pytest

import chainrule as cr
from cli_assertions import assert_one_line_error

pytest.importorskip("safetensors")


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "chainrule", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )




@pytest.fixture
def run_folder(tmp_path):
    """A folder laid out like a training run: model.npz with metadata."""
    model = cr.models.cnn(seed=0, channels=(4,), hidden=8, batchnorm=True).eval()
    model[2].running_mean[...] = np.linspace(-1, 1, 4)  # batch-norm statistics that matter
    folder = tmp_path / "run"
    cr.save(model, folder / "model.npz", metadata={"class_names": [str(i) for i in range(10)]})
    return folder, model


def test_export_onnx_from_a_run_folder(run_folder, tmp_path, rng):
    ort = pytest.importorskip("onnxruntime")
    folder, model = run_folder
    result = run("export", folder, "--format", "onnx", "-o", tmp_path / "m.onnx")
    assert result.returncode == 0, result.stderr
    assert "m.onnx" in result.stdout
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = rng.random((4, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model(x), atol=2e-5, rtol=1e-5)


def test_export_safetensors_keeps_metadata_and_weights(run_folder, tmp_path, rng):
    folder, model = run_folder
    result = run("export", folder / "model.npz", "-o", tmp_path / "m.safetensors")  # by suffix
    assert result.returncode == 0, result.stderr
    ckpt = cr.load_checkpoint(tmp_path / "m.safetensors")
    x = rng.random((4, 28, 28), dtype=np.float32)
    assert np.array_equal(ckpt.model.eval()(x), model(x))
    assert ckpt.metadata["class_names"][3] == "3"
    # and the other commands read it like any model file
    evaluate = run("evaluate", tmp_path / "m.safetensors", "--json")
    assert evaluate.returncode == 0, evaluate.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


@pytest.mark.parametrize("fmt, name", [("onnx", "m.safetensors"), ("safetensors", "m.onnx"),
                                       ("onnx", "m.npz")])
def test_format_and_suffix_must_agree(fmt, name, run_folder, tmp_path):
    folder, _ = run_folder
    assert_one_line_error(run("export", folder, "--format", fmt, "-o", tmp_path / name),
                          f"--format {fmt}", name)
    assert not (tmp_path / name).exists()


def test_export_into_a_folder_names_the_file(run_folder, tmp_path):
    pytest.importorskip("onnx")
    folder, _ = run_folder
    out = tmp_path / "exports"
    out.mkdir()
    result = run("export", folder, "--format", "onnx", "-o", out)
    assert result.returncode == 0, result.stderr
    assert (out / "model.onnx").is_file()


def test_bad_inputs_exit_2_in_one_line(run_folder, tmp_path):
    folder, _ = run_folder
    good = tmp_path / "good.safetensors"
    assert run("export", folder, "-o", good).returncode == 0
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(good.read_bytes()[:100])
    assert_one_line_error(run("export", broken, "-o", tmp_path / "x.onnx"), "broken.safetensors")
    assert_one_line_error(run("evaluate", broken), "truncated")
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"\x08\x07garbage" * 5)
    assert_one_line_error(run("export", bad_onnx, "-o", tmp_path / "x.safetensors"), "bad.onnx")
    assert_one_line_error(run("export", folder, "-o", tmp_path / "x.bin"), "--format")
    assert_one_line_error(run("export", tmp_path / "nothing", "-o", tmp_path / "x.onnx"), "no such")
    assert_one_line_error(
        run("export", folder, "--format", "tflite", "-o", tmp_path / "x"), "invalid choice"
    )
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "x.safetensors").exists()


def test_reading_needs_no_package_and_a_missing_one_is_one_line(run_folder, tmp_path,
                                                                  monkeypatch, capsys):
    """.safetensors files are read by chainrule itself; reading .onnx and writing either needs
    the package, and its absence is one line naming the extra (exit code 2)."""
    from chainrule.cli import main
    from chainrule.serialize import ModelFileError

    pytest.importorskip("onnx")
    folder, model = run_folder
    path = cr.save(cr.load(folder), tmp_path / "m.safetensors")
    onnx_path = cr.save(cr.load(folder), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    x = np.random.default_rng(0).random((2, 28, 28), dtype=np.float32)
    assert np.array_equal(cr.load(path)(x), model(x))
    assert main(["export", str(folder), "-o", str(tmp_path / "y.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install chainrule[safetensors]" in err and "\n" not in err
    with pytest.raises(ModelFileError, match=r"pip install chainrule\[onnx\]"):
        cr.load(onnx_path)
