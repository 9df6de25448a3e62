"""`load(name_or_path)`: MNIST-style datasets as NumPy arrays, from wherever they live.

A dataset is named one of

* ``"mnist-10k"``: 10,000 real MNIST digits bundled inside the package (8,000 train / 2,000
  test, stratified); always offline, checked against its ``manifest.json``;
* ``"mnist"``, ``"fashion-mnist"``: the full sets, from the download cache (downloaded and
  verified on first use, see `download`); Fashion-MNIST is also found where Debian's
  ``dataset-fashion-mnist`` package puts it;
* ``"mnist-hf"``: MNIST fetched as Hugging Face Parquet (needs pyarrow), cached as IDX;

or is a path to a folder holding the four IDX files under their standard names
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally ``.gz``), or, failing that, ``train-*.parquet``
and ``test-*.parquet`` files.

Every split is checked before it is returned: as many labels as images, 28x28 images, labels
within the class range. Problems raise `DataError` naming the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .catalog import DATASETS, IDX_NAMES, PARQUET_SOURCES, DatasetSpec, ParquetSpec
from .download import (
    default_cache_dir,
    download,
    find_local,
    lookup,
    parquet_target,
    resolve_mirrors,
)
from .errors import DataError
from .idx import file_sha256, read_idx, read_idx_header

BUNDLED = "mnist-10k"
IMAGE_SHAPE = (28, 28)
Split = tuple[np.ndarray, np.ndarray]


# ---------------------------------------------------------------- the bundled subset
def bundled_dir() -> Path:
    """The folder of the bundled "mnist-10k" files inside the installed package."""
    return Path(str(resources.files("chainrule.data") / "mnist10k"))


def bundled_manifest() -> dict[str, Any]:
    """The bundled subset's ``manifest.json``: sizes, sha256 sums, source, split, licence."""
    path = bundled_dir() / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: bundled manifest missing or unreadable ({exc})") from exc


def _bundled_files() -> dict[str, Path]:
    """Role -> path of the bundled files, each checked against the manifest's sha256."""
    folder, manifest = bundled_dir(), bundled_manifest()
    paths = {}
    for role, base in IDX_NAMES.items():
        path = folder / f"{base}.gz"
        expected = manifest["files"][path.name]["sha256"]
        if not path.is_file() or file_sha256(path) != expected:
            raise DataError(f"{path}: bundled file missing or altered (sha256 differs from "
                            "manifest.json); reinstall chainrule")
        paths[role] = path
    return paths


# ---------------------------------------------------------------- folders of files
def _find_file(folder: Path, base: str) -> Path | None:
    for candidate in (folder / base, folder / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def idx_files(folder: str | os.PathLike) -> dict[str, Path]:
    """Role -> path of the four IDX files in `folder` (raw or ``.gz``); `DataError` if missing."""
    folder = Path(folder)
    found = {role: _find_file(folder, base) for role, base in IDX_NAMES.items()}
    missing = [f"{IDX_NAMES[role]}[.gz]" for role, path in found.items() if path is None]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}")
    return found


def _parquet_shards(folder: Path, split: str) -> list[Path]:
    return sorted(folder.glob(f"{split}-*.parquet")) or sorted(folder.glob(f"*/{split}-*.parquet"))


def check_split(
    images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str,
    num_classes: int = 10,
) -> Split:
    """Validate one split: images uint8 (n, 28, 28), labels (n,) within 0..num_classes-1.

    Returns ``(images, labels as int64)``; raises `DataError` naming the offending file.
    """
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{images_name}: images have shape {images.shape}, expected (n, 28, 28)")
    if images.dtype != np.uint8:
        raise DataError(f"{images_name}: images are {images.dtype}, expected uint8")
    if labels.ndim != 1:
        raise DataError(f"{labels_name}: labels have shape {labels.shape}, expected (n,)")
    if len(labels) != len(images):
        raise DataError(f"{labels_name}: {len(labels)} labels for {len(images)} images "
                        f"in {images_name}")
    if labels.dtype.kind not in "iu":
        raise DataError(f"{labels_name}: labels are {labels.dtype}, expected integers")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{labels_name}: labels outside 0..{num_classes - 1}")
    return images, labels.astype(np.int64)


def _load_idx_files(paths: dict[str, Path], num_classes: int) -> tuple[Split, Split]:
    arrays = {role: read_idx(path) for role, path in paths.items()}
    return tuple(  # type: ignore[return-value]
        check_split(arrays[f"{s}_images"], arrays[f"{s}_labels"],
                    str(paths[f"{s}_images"]), str(paths[f"{s}_labels"]), num_classes)
        for s in ("train", "test")
    )


def _load_parquet_folder(folder: Path) -> tuple[Split, Split]:
    from .parquet import read_parquet

    splits = []
    for split in ("train", "test"):
        shards = _parquet_shards(folder, split)
        if not shards:
            raise DataError(f"{folder}: no IDX files (train-images-idx3-ubyte[.gz], ...) "
                            f"and no {split}-*.parquet")
        parts = [read_parquet(p) for p in shards]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        splits.append(check_split(images, labels, str(shards[0]), str(shards[0])))
    return splits[0], splits[1]


# ---------------------------------------------------------------- public API
def list_datasets() -> list[str]:
    """The dataset names `load` knows: ``["mnist-10k", "mnist", "fashion-mnist", "mnist-hf"]``."""
    return [BUNDLED, *DATASETS, *PARQUET_SOURCES]


def load_uint8(
    name_or_path: str | os.PathLike = BUNDLED,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    allow_download: bool = True,
    progress: bool = True,
) -> tuple[Split, Split]:
    """Like `load`, but images stay uint8 0..255: ``((x_train, y_train), (x_test, y_test))``.

    Shapes: x ``(n, 28, 28)`` uint8, y ``(n,)`` int64.
    """
    name = os.fspath(name_or_path)
    if name == BUNDLED:
        return _load_idx_files(_bundled_files(), 10)
    if name in DATASETS or name in PARQUET_SOURCES:
        spec = lookup(name)
        target = parquet_target(spec) if isinstance(spec, ParquetSpec) else spec
        folder = find_local(target, cache_dir)
        if folder is None:
            if not allow_download:
                where = default_cache_dir() if cache_dir is None else cache_dir
                raise DataError(f"{name}: not in the cache ({where}); "
                                f"run `chainrule data download {name}`")
            folder = download(spec, cache_dir, mirrors, progress=progress)
        return _load_idx_files(idx_files(folder), len(target.classes))
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise DataError(f"unknown dataset {name!r}: expected one of {', '.join(list_datasets())} "
                        "or a folder holding the four IDX files")
    if all(_find_file(folder, base) for base in IDX_NAMES.values()):
        return _load_idx_files(idx_files(folder), 10)
    if _parquet_shards(folder, "train"):
        return _load_parquet_folder(folder)
    idx_files(folder)  # raises, naming the missing IDX files
    raise AssertionError("unreachable")


def load(
    name_or_path: str | os.PathLike = BUNDLED,
    *,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    allow_download: bool = True,
    progress: bool = True,
) -> tuple[Split, Split]:
    """Load a dataset: ``(x_train, y_train), (x_test, y_test) = load("mnist-10k")``.

    Shapes and types: x ``(n, 28, 28)`` float32 in [0, 1] (the byte divided by 255),
    y ``(n,)`` int64 class indices. `name_or_path` is ``"mnist-10k"`` (bundled, offline),
    ``"mnist"``, ``"fashion-mnist"``, ``"mnist-hf"`` (download cache; downloaded on first use
    unless ``allow_download=False``) or a folder of the four IDX files. `cache_dir` defaults
    to ``$CHAINRULE_DATA`` or ``~/.cache/chainrule``; `mirrors` replaces the download mirrors.
    Raises `DataError` naming the file or dataset on any problem.
    """
    train, test = load_uint8(name_or_path, cache_dir=cache_dir, mirrors=mirrors,
                             allow_download=allow_download, progress=progress)
    return tuple(  # type: ignore[return-value]
        (x.astype(np.float32) / np.float32(255.0), y) for x, y in (train, test)
    )


def _spec_info(spec: DatasetSpec, cache_dir, mirrors) -> dict[str, Any]:
    folder = find_local(spec, cache_dir)
    return {
        "name": spec.name, "title": spec.title, "source": "download",
        "n_train": spec.n_train, "n_test": spec.n_test, "classes": list(spec.classes),
        "homepage": spec.homepage, "licence": spec.licence,
        "mirrors": resolve_mirrors(spec, mirrors),
        "files": [{"name": r.name, "bytes": r.size, "sha256": r.sha256,
                   "content_sha256": r.content_sha256} for r in spec.files.values()],
        "download_bytes": sum(r.size or 0 for r in spec.files.values()),
        "available": folder is not None, "path": str(folder) if folder else None,
    }


def info(
    name_or_path: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of a dataset, without downloading anything.

    Keys include ``name``, ``title``, ``source`` ("bundled", "download", "parquet" or
    "folder"), ``n_train``, ``n_test``, ``classes``, ``licence``, ``files`` and ``available``
    / ``path`` (where the verified files are, or None).
    """
    name = os.fspath(name_or_path)
    if name == BUNDLED:
        manifest = bundled_manifest()
        return {
            "name": BUNDLED, "title": manifest["title"], "source": "bundled",
            "n_train": manifest["split"]["train"], "n_test": manifest["split"]["test"],
            "classes": [str(d) for d in range(10)], "licence": manifest["licence"]["summary"],
            "origin": manifest["source"]["origin"],
            "files": [{"name": k, **v} for k, v in manifest["files"].items()],
            "available": True, "path": str(bundled_dir()),
        }
    if name in DATASETS:
        return _spec_info(DATASETS[name], cache_dir, mirrors)
    if name in PARQUET_SOURCES:
        spec = PARQUET_SOURCES[name]
        target_spec = parquet_target(spec)
        target = _spec_info(target_spec, cache_dir, None)
        return {**target, "name": spec.name, "title": spec.title, "source": "parquet",
                "target": target_spec.name, "mirrors": resolve_mirrors(spec, mirrors),
                "files": list(spec.files.values()), "download_bytes": None}
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise DataError(f"unknown dataset {name!r}: expected one of {', '.join(list_datasets())} "
                        "or a folder holding the four IDX files")
    files = []
    for path in idx_files(folder).values():
        dtype, shape = read_idx_header(path)
        files.append({"name": path.name, "bytes": path.stat().st_size, "dtype": str(dtype),
                      "shape": list(shape)})
    return {"name": str(folder), "title": f"IDX files in {folder}", "source": "folder",
            "n_train": files[0]["shape"][0], "n_test": files[2]["shape"][0],
            "files": files, "available": True, "path": str(folder)}


def cli_list(cache_dir: str | os.PathLike | None = None) -> str:
    """The text of ``chainrule data list``: one line per dataset, with where it is available."""
    lines = []
    for name in list_datasets():
        about = info(name, cache_dir)
        if about["source"] == "bundled":
            where = "bundled"
        elif about["available"]:
            where = f"available: {about['path']}"
        elif about["download_bytes"]:
            where = f"download {about['download_bytes'] / 1e6:.1f} MB"
        else:
            where = "download (needs pyarrow)"
        lines.append(f"{name:<14} {about['title']}\n{'':<14} {where}")
    return "\n".join(lines)
