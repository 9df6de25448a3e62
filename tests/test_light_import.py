"""`import chainrule` stays light: Pillow, tqdm, matplotlib, Starlette (and torch, SciPy) load
only when the feature that needs them is used, while every documented import path works."""

import subprocess
import sys

HEAVY = "{'PIL', 'tqdm', 'matplotlib', 'starlette', 'torch', 'scipy'}"


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_import_and_build_a_layer_loads_no_heavy_package():
    code = ("import sys, chainrule as cr; cr.Dense(3, 2); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY}))")
    assert run_python(code) == "[]"


def test_training_a_tiny_model_loads_no_heavy_package():
    code = ("import sys, numpy as np, chainrule as cr; "
            "m = cr.Sequential(cr.Dense(4, 3), cr.ReLU(), cr.Dense(3, 2)); "
            "x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32); "
            "y = np.arange(8) % 2; "
            "cr.fit(m, cr.SoftmaxCrossEntropy(), cr.optim.SGD(m.parameters(), lr=0.1), x, y, "
            "epochs=1, progress=False); "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY}))")
    assert run_python(code) == "[]"


def test_documented_import_paths_still_work():
    import chainrule as cr
    from chainrule.data import DataError, batches, load, one_hot, read_idx

    assert cr.data.load is load and cr.data.DataError is DataError
    assert callable(batches) and callable(one_hot) and callable(read_idx)
    assert callable(cr.data.download) and callable(cr.data.read_parquet)
    assert hasattr(cr.preprocess, "load_digit_image")


def test_viz_and_data_loading_import_their_packages_on_use():
    code = ("import sys, chainrule as cr; cr.data.load('mnist-10k', progress=False); "
            "import chainrule.data.download, chainrule.data.parquet; "
            "print('tqdm' in sys.modules, 'PIL' in sys.modules)")
    assert run_python(code) == "False False"
