"""Read MNIST-style Parquet files (the Hugging Face ``datasets`` layout) into arrays.

A Hugging Face image dataset stored as Parquet has one row per example::

    image: struct<bytes: binary, path: string>    the PNG file's bytes
    label: int64                                  the class index

(`ylecun/mnist` has ``mnist/train-00000-of-00001.parquet`` and
``mnist/test-00000-of-00001.parquet``.)
`read_parquet` decodes the PNGs with Pillow. Parquet needs the optional dependency
``pyarrow`` (``pip install 'chainrule[parquet]'``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .errors import DataError


class MissingDependencyError(DataError, ImportError):
    """An optional package is needed for this (both a `DataError` and an `ImportError`)."""


def _parquet_module():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(
            "reading Parquet files needs pyarrow: pip install 'chainrule[parquet]' "
            "(or pip install pyarrow)"
        ) from exc
    return pq


def _decode_png(data: bytes, name: str, row: int, size: tuple[int, int]) -> np.ndarray:
    """PNG bytes -> (28, 28) uint8, insisting on 8-bit grey ('L') of the expected size."""
    from PIL import Image, UnidentifiedImageError  # here: `import chainrule` stays light

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode, shape = img.mode, img.size
            pixels = np.asarray(img, dtype=np.uint8) if mode == "L" else None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{name}: row {row}: image is not a readable PNG ({exc})") from exc
    if mode != "L":
        raise DataError(f"{name}: row {row}: image mode {mode!r}, expected 8-bit grey 'L'")
    if shape != size:
        raise DataError(f"{name}: row {row}: image is {shape[0]}x{shape[1]}, expected 28x28")
    return pixels


def read_parquet(
    path: str | os.PathLike, image_size: tuple[int, int] = (28, 28)
) -> tuple[np.ndarray, np.ndarray]:
    """Read a Parquet file with columns ``image`` (struct with PNG ``bytes``) and ``label``.

    Returns ``(images, labels)``: uint8 ``(n, 28, 28)`` and int64 ``(n,)``, in row order.
    Raises `DataError` naming the file when it is not Parquet, lacks those columns, holds an
    undecodable or wrongly sized image, or a missing label; `MissingDependencyError` without
    pyarrow.
    """
    pq = _parquet_module()
    import pyarrow as pa

    path = Path(path)
    name = str(path)
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError as exc:
        raise DataError(f"{name}: no such file") from exc
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: not a readable Parquet file ({exc})") from exc
    names = schema.names
    image_type = schema.field("image").type if "image" in names else None
    if (
        "label" not in names
        or image_type is None
        or not pa.types.is_struct(image_type)
        or image_type.get_field_index("bytes") < 0
    ):
        found = ", ".join(f"{f.name}: {f.type}" for f in schema)
        raise DataError(
            f"{name}: Parquet file has columns ({found}); expected 'image' (a struct with "
            "PNG 'bytes') and 'label'"
        )
    try:
        table = pq.read_table(path, columns=["image", "label"])
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{name}: cannot read Parquet data ({exc})") from exc

    labels_column = table.column("label")
    if labels_column.null_count:
        raise DataError(f"{name}: {labels_column.null_count} rows have no label")
    if not pa.types.is_integer(labels_column.type):
        raise DataError(f"{name}: labels are {labels_column.type}, expected integers")
    labels = np.asarray(labels_column.to_numpy(), dtype=np.int64)

    pngs = table.column("image").combine_chunks().field("bytes").to_pylist()
    images = np.empty((len(pngs), *image_size[::-1]), dtype=np.uint8)
    for row, data in enumerate(pngs):
        if data is None:
            raise DataError(f"{name}: row {row}: image has no bytes")
        images[row] = _decode_png(data, name, row, image_size)
    return images, labels
