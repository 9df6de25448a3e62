"""Run by tests/test_distributed.py under `mpiexec`: `chainrule ARGS...` with one more
downloadable dataset, "tiny" (30 training and 10 test digits), whose mirror is the folder
named by $CHAINRULE_TEST_TINY_MIRRORS. Each rank can be given its own mirror and download
cache ($CHAINRULE_DATA), as ranks on different machines have.

    python tests/mpi/train_tiny.py --write-mirror DIR     # the four .gz files, into DIR
    python tests/mpi/train_tiny.py train --data tiny ...  # the command, with "tiny" known
"""

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np

from chainrule.cli import main
from chainrule.data.catalog import DATASETS, IDX_NAMES, DatasetSpec, RemoteFile
from chainrule.data.idx import encode_idx


def tiny_files() -> dict[str, tuple[str, bytes, bytes]]:
    """role → (file name, .gz bytes, raw IDX bytes), the same on every call."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(30) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(10) % 10).astype(np.uint8),
    }
    files = {}
    for role, array in arrays.items():
        raw = encode_idx(array)
        files[role] = (f"{IDX_NAMES[role]}.gz", gzip.compress(raw, mtime=0), raw)
    return files


def register_tiny() -> None:
    files = {role: RemoteFile(name, len(gz), hashlib.sha256(gz).hexdigest(),
                              hashlib.sha256(raw).hexdigest())
             for role, (name, gz, raw) in tiny_files().items()}
    DATASETS["tiny"] = DatasetSpec(
        name="tiny", title="tiny test set", files=files, mirrors=("http://127.0.0.1:9/none",),
        mirrors_env="CHAINRULE_TEST_TINY_MIRRORS", classes=tuple("0123456789"),
        n_train=30, n_test=10, homepage="", licence="test data")


if __name__ == "__main__":
    if sys.argv[1] == "--write-mirror":
        folder = Path(sys.argv[2])
        folder.mkdir(parents=True, exist_ok=True)
        for name, gz, _ in tiny_files().values():
            (folder / name).write_bytes(gz)
        sys.exit(0)
    register_tiny()
    sys.exit(main(sys.argv[1:]))
