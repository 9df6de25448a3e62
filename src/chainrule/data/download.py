"""Checksummed downloads into a local cache, trying mirrors in order.

The cache is a folder per dataset::

    $CHAINRULE_DATA/              (default ~/.cache/chainrule)
        mnist/train-images-idx3-ubyte.gz  ...
        fashion-mnist/...

The rules that keep it trustworthy:

* A cached file is used only if it is *valid*: its size and sha256 match the mirrors' file,
  or its decompressed bytes match the dataset's content sha256 (see `catalog`). A valid cache
  hit makes no network request at all.
* A download streams into a temporary file beside its destination (``.name.XXXX.part``) while
  counting and hashing the bytes; only when the size and sha256 are right is it renamed into
  place (`os.replace`, atomic). A failed, truncated or corrupt transfer deletes the temporary
  file, so nothing half-written can later load as valid.
* Mirrors are tried in order; the first one that delivers a verified file wins. The error,
  when all fail, lists every mirror and what went wrong with it.

Mirrors can be replaced per call (``mirrors=[...]``) or per environment variable
(``CHAINRULE_MNIST_MIRRORS="http://127.0.0.1:8000/mnist ..."``), which is how the tests point
downloads at a server on 127.0.0.1. A mirror may also be a local folder or ``file://`` URL.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .._io import atomic_open
from .catalog import DATASETS, PARQUET_SOURCES, DatasetSpec, ParquetSpec, RemoteFile
from .errors import DataError
from .idx import content_sha256, encode_idx, file_sha256, write_idx

_CHUNK = 1 << 16
_TIMEOUT = 30.0  # seconds without data before a mirror counts as failed
_USER_AGENT = "chainrule-data/1 (Python urllib)"


def default_cache_dir() -> Path:
    """``$CHAINRULE_DATA`` if set, else ``~/.cache/chainrule``."""
    env = os.environ.get("CHAINRULE_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "chainrule"


def resolve_mirrors(spec: DatasetSpec | ParquetSpec, mirrors: Sequence[str] | None) -> list[str]:
    """The base URLs to try, in order: the `mirrors` argument, else ``$<spec.mirrors_env>``,
    else the catalogue's list. Bare folder paths become ``file://`` URLs."""
    if mirrors is None:
        env = os.environ.get(spec.mirrors_env, "").strip() if spec.mirrors_env else ""
        mirrors = re.split(r"[\s,]+", env) if env else spec.mirrors
    if isinstance(mirrors, str):
        mirrors = [mirrors]
    bases = []
    for base in mirrors:
        if base and "://" not in base:
            base = Path(base).expanduser().resolve().as_uri()
        if base:
            bases.append(base.rstrip("/"))
    if not bases:
        raise DataError(f"{spec.name}: no mirrors to download from")
    return bases


def is_valid(path: Path, remote: RemoteFile) -> bool:
    """True if `path` holds `remote`'s data: exact size + sha256, else the same content sha256.

    The first check costs one pass over the .gz; the second (for re-compressed copies) one
    decompression. A missing or unreadable file is simply not valid.
    """
    if not path.is_file():
        return False
    size_ok = remote.size is None or path.stat().st_size == remote.size
    if size_ok and remote.sha256 is not None and file_sha256(path) == remote.sha256:
        return True
    try:
        return content_sha256(path) == remote.content_sha256
    except DataError:
        return False


def fetch_url(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = _TIMEOUT,
) -> Path:
    """Download `url` to `dest` through a temporary file, checking `size` and `sha256` if given.

    Raises `DataError` (naming the URL) on an HTTP or network error, a wrong Content-Length,
    a transfer that ends early or runs long, or a checksum mismatch; `dest` is then untouched.
    """
    import http.client  # here, not at the top: `chainrule train` on bundled data never
    import urllib.error  # touches the network, and these cost ~30 ms of its start-up
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            if size is not None and announced is not None and int(announced) != size:
                raise DataError(f"{url}: server announces {announced} bytes, expected {size}")
            total = size if size is not None else (int(announced) if announced else None)
            from tqdm.auto import tqdm  # here, not at the top: `import chainrule` stays light

            with atomic_open(dest) as out, tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress, leave=False,
            ) as bar:
                digest, received = hashlib.sha256(), 0
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if size is not None and received > size:
                        raise DataError(f"{url}: more than the expected {size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
                if total is not None and received != total:  # urllib does not raise on this
                    raise DataError(f"{url}: truncated transfer, {received} of {total} bytes")
                if sha256 is not None and digest.hexdigest() != sha256:
                    raise DataError(
                        f"{url}: sha256 mismatch (got {digest.hexdigest()}, expected {sha256})"
                    )
    except DataError:
        raise
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise DataError(f"{url}: {exc.reason}") from exc
    except (http.client.HTTPException, OSError, ValueError) as exc:
        raise DataError(f"{url}: transfer failed ({type(exc).__name__}: {exc})") from exc
    return dest


def fetch_file(
    remote: RemoteFile,
    folder: Path,
    mirrors: Sequence[str],
    *,
    progress: bool = True,
    timeout: float = _TIMEOUT,
) -> Path:
    """Download one file into `folder`, trying each mirror base URL until one verifies."""
    failures = []
    for base in mirrors:
        url = f"{base}/{remote.name}"
        try:
            return fetch_url(
                url, folder / remote.name, size=remote.size, sha256=remote.sha256,
                progress=progress, timeout=timeout,
            )
        except DataError as exc:
            failures.append(str(exc))
    raise DataError(
        f"{remote.name}: no mirror delivered a verified copy: " + "; ".join(failures)
    )


def _all_valid(folder: Path, spec: DatasetSpec) -> bool:
    return all(is_valid(folder / remote.name, remote) for remote in spec.files.values())


def find_local(spec: DatasetSpec, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The folder already holding all four valid files (the cache first, then any system
    folder such as ``/usr/share/datasets/fashion-mnist``), or None. Makes no request."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for folder in (cache / spec.name, *map(Path, spec.system_dirs)):
        if _all_valid(folder, spec):
            return folder
    return None


def lookup(name: str) -> DatasetSpec | ParquetSpec:
    """The catalogue entry for a dataset name (``"mnist"``, ``"fashion-mnist"``, ``"mnist-hf"``)."""
    spec = DATASETS.get(name) or PARQUET_SOURCES.get(name)
    if spec is None:
        known = ", ".join([*DATASETS, *PARQUET_SOURCES])
        raise DataError(f"unknown dataset {name!r} (downloadable: {known})")
    return spec


def parquet_target(spec: ParquetSpec) -> DatasetSpec:
    """The IDX dataset a Parquet source stands for (its `target`, looked up if a name)."""
    target = lookup(spec.target) if isinstance(spec.target, str) else spec.target
    if not isinstance(target, DatasetSpec):
        raise DataError(f"{spec.name}: target {target.name!r} is not an IDX dataset")
    return target


def download(
    name: str | DatasetSpec | ParquetSpec,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    *,
    progress: bool = True,
    timeout: float = _TIMEOUT,
) -> Path:
    """Make sure a dataset's four IDX files are available locally; return their folder.

    `name` is ``"mnist"``, ``"fashion-mnist"``, ``"mnist-hf"`` (MNIST fetched as Hugging Face
    Parquet and stored as IDX) or a `DatasetSpec`. Valid files already in the cache (or in a
    system folder) are used without any request; missing or invalid ones are downloaded from
    the first mirror that delivers a verified copy. Raises `DataError` if that fails.
    """
    spec = lookup(name) if isinstance(name, str) else name
    if isinstance(spec, ParquetSpec):
        return download_parquet(spec, cache_dir, mirrors, progress=progress, timeout=timeout)
    found = find_local(spec, cache_dir)
    if found is not None:
        return found
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / spec.name
    bases = resolve_mirrors(spec, mirrors)
    for remote in spec.files.values():
        if not is_valid(folder / remote.name, remote):
            fetch_file(remote, folder, bases, progress=progress, timeout=timeout)
    return folder


def download_parquet(
    spec: ParquetSpec,
    cache_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    *,
    progress: bool = True,
    timeout: float = _TIMEOUT,
) -> Path:
    """Fetch a Parquet source, verify its decoded arrays, and store them as the target's IDX files.

    The Parquet files go to a temporary folder (never the cache). Their images and labels must
    hash to the target dataset's content sha256 sums; only then are they written, atomically,
    as the target's four ``.gz`` files in the cache. Returns that cache folder.
    """
    from .parquet import read_parquet  # needs the optional pyarrow

    target = parquet_target(spec)
    found = find_local(target, cache_dir)
    if found is not None:
        return found
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / target.name
    bases = resolve_mirrors(spec, mirrors)
    verified = {}
    with tempfile.TemporaryDirectory(prefix="chainrule-parquet-") as tmp:
        for split, path in spec.files.items():
            local = _fetch_any(path, Path(tmp) / Path(path).name, bases, progress, timeout)
            images, labels = read_parquet(local)
            for role, array in ((f"{split}_images", images), (f"{split}_labels", labels)):
                remote = target.files[role]
                data = encode_idx(array.astype("uint8"))
                if hashlib.sha256(data).hexdigest() != remote.content_sha256:
                    raise DataError(
                        f"{path}: decoded {role} differ from {target.name}'s "
                        f"{remote.name} (content sha256 mismatch)"
                    )
                verified[role] = array.astype("uint8")
    for role, array in verified.items():
        write_idx(folder / target.files[role].name, array)
    return folder


def _fetch_any(path: str, dest: Path, bases: Sequence[str], progress: bool, timeout: float):
    """Fetch ``base/path`` from the first base that answers (no checksum known yet)."""
    failures = []
    for base in bases:
        try:
            return fetch_url(f"{base}/{path}", dest, progress=progress, timeout=timeout)
        except DataError as exc:
            failures.append(str(exc))
    raise DataError(f"{path}: no mirror delivered it: " + "; ".join(failures))
