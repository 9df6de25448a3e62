"""Datasets for chainrule: real MNIST (bundled 10k subset, verified downloads), IDX and Parquet
readers, and mini-batching.

    >>> import chainrule as cr
    >>> (x_train, y_train), (x_test, y_test) = cr.data.load("mnist-10k")   # offline
    >>> x_train.shape, x_train.dtype, y_train.dtype
    ((8000, 28, 28), dtype('float32'), dtype('int64'))

Modules: `idx` (the file format), `catalog` (what each dataset is), `download` (checksummed,
mirrored, cached), `parquet` (Hugging Face files), `datasets` (`load`), `batching`.
"""

from ..batching import batches, one_hot
from .catalog import DATASETS, DatasetSpec, ParquetSpec, RemoteFile
from .datasets import (
    bundled_dir,
    bundled_manifest,
    check_split,
    cli_list,
    idx_files,
    info,
    list_datasets,
    load,
    load_uint8,
)
from .download import default_cache_dir, download, fetch_url
from .errors import DataError
from .idx import content_sha256, decode_idx, encode_idx, read_idx, read_idx_header, write_idx
from .parquet import MissingDependencyError, read_parquet

__all__ = [
    "DATASETS",
    "DataError",
    "DatasetSpec",
    "MissingDependencyError",
    "ParquetSpec",
    "RemoteFile",
    "batches",
    "bundled_dir",
    "bundled_manifest",
    "check_split",
    "cli_list",
    "content_sha256",
    "decode_idx",
    "default_cache_dir",
    "download",
    "encode_idx",
    "fetch_url",
    "idx_files",
    "info",
    "list_datasets",
    "load",
    "load_uint8",
    "one_hot",
    "read_idx",
    "read_idx_header",
    "read_parquet",
    "write_idx",
]
