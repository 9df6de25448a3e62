"""What each downloadable dataset is: its files, their sizes and sha256 sums, mirrors, licence.

Two hashes are kept per file. ``sha256`` is the hash of the ``.gz`` exactly as the mirrors
serve it, the check for a fresh download. ``content_sha256`` is the hash of the *decompressed*
IDX bytes: it identifies the data whatever gzip container holds it, so a copy re-compressed by
Debian's ``dataset-fashion-mnist`` package, or rebuilt by ``scripts/mnist_from_mnisthub.py``,
is recognised as the same dataset. A cached file is valid when either hash matches.

Where the numbers come from:

* MNIST ``.gz`` sizes and sha256: the canonical files (yann.lecun.com; the same files on the
  ossci-datasets and cvdf mirrors). Content sha256: computed from IDX files whose md5 sums equal
  the canonical decompressed md5s (6bbc9ace..., a25bea73..., 2646ac64..., 27ae3e4e...).
* Fashion-MNIST ``.gz`` sizes and sha256: the upstream files (as published with the dataset and
  used by torchvision, TFDS and others: md5 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...).
  Content sha256: computed from Debian's ``dataset-fashion-mnist`` (0.0~git20200523.55506a9-1),
  whose gzip containers differ from upstream while the decompressed bytes are the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The four files of an MNIST-style dataset, by role, as named on every mirror.
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset as the mirrors serve it.

    `size` and `sha256` describe the bytes on the wire (``None`` when unknown: then only
    `content_sha256` can vouch for the file); `content_sha256` is the sha256 of the
    decompressed IDX bytes.
    """

    name: str
    size: int | None
    sha256: str | None
    content_sha256: str


@dataclass(frozen=True)
class DatasetSpec:
    """A downloadable MNIST-style dataset: four IDX ``.gz`` files and where to get them.

    `files` maps the roles of `IDX_NAMES` to `RemoteFile`s. `mirrors` are base URLs tried in
    order (a file's URL is ``base + "/" + name``); the environment variable `mirrors_env`, if
    set, replaces them (base URLs separated by spaces or commas). `system_dirs` are folders
    where an operating-system package may have installed the files already.
    """

    name: str
    title: str
    files: dict[str, RemoteFile]
    mirrors: tuple[str, ...]
    mirrors_env: str
    classes: tuple[str, ...]
    n_train: int
    n_test: int
    homepage: str
    licence: str
    system_dirs: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParquetSpec:
    """A dataset served as Hugging Face Parquet files (one per split) instead of IDX files.

    The Parquet files have no published checksums here, so a download is verified after
    decoding: the images and labels must hash to the `content_sha256` values of the IDX
    dataset `target` (a name or a `DatasetSpec`: the same data, in the same order). The decoded
    arrays are then stored in the cache as that dataset's IDX files, so they load exactly like
    a download of `target`.
    """

    name: str
    title: str
    target: str | DatasetSpec
    files: dict[str, str] = field(default_factory=dict)  # split ("train"/"test") -> path
    mirrors: tuple[str, ...] = ()
    mirrors_env: str = ""


def _idx_files(
    sizes: tuple[int, ...], sha256: tuple[str, ...], content: tuple[str, ...]
) -> dict[str, RemoteFile]:
    roles = tuple(IDX_NAMES)
    return {
        role: RemoteFile(f"{IDX_NAMES[role]}.gz", size, digest, content_digest)
        for role, size, digest, content_digest in zip(roles, sizes, sha256, content, strict=True)
    }


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST handwritten digits (60,000 train / 10,000 test, 28x28 grey)",
    files=_idx_files(
        (9_912_422, 28_881, 1_648_877, 4_542),
        (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
        (
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist",
        "https://storage.googleapis.com/cvdf-datasets/mnist",
        "http://yann.lecun.com/exdb/mnist",
    ),
    mirrors_env="CHAINRULE_MNIST_MIRRORS",
    classes=tuple(str(d) for d in range(10)),
    n_train=60_000,
    n_test=10_000,
    homepage="http://yann.lecun.com/exdb/mnist/",
    licence=(
        "MNIST by Yann LeCun, Corinna Cortes and Christopher J.C. Burges; a derivative of NIST "
        "data, made available under the Creative Commons Attribution-Share Alike 3.0 licence "
        "(as stated in the Keras/TensorFlow dataset documentation)."
    ),
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST Zalando article images (60,000 train / 10,000 test, 28x28 grey)",
    files=_idx_files(
        (26_421_880, 29_515, 4_422_102, 5_148),
        (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
        (
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
    mirrors=(
        "https://fashion-mnist.s3.eu-central-1.amazonaws.com",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
        "b2617bb6d3ffa2e429640350f613e3291e10b141/data/fashion",
    ),
    mirrors_env="CHAINRULE_FASHION_MNIST_MIRRORS",
    classes=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    n_train=60_000,
    n_test=10_000,
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    licence="Fashion-MNIST, Copyright (c) 2017 Zalando SE, MIT licence.",
    system_dirs=("/usr/share/datasets/fashion-mnist",),
)

MNIST_HF = ParquetSpec(
    name="mnist-hf",
    title="MNIST from the Hugging Face dataset ylecun/mnist (Parquet, PNG images)",
    target="mnist",
    files={
        "train": "mnist/train-00000-of-00001.parquet",
        "test": "mnist/test-00000-of-00001.parquet",
    },
    mirrors=("https://huggingface.co/datasets/ylecun/mnist/resolve/main",),
    mirrors_env="CHAINRULE_MNIST_HF_MIRRORS",
)

#: Downloadable datasets by name.
DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}
#: Other sources of those datasets, by name.
PARQUET_SOURCES: dict[str, ParquetSpec] = {MNIST_HF.name: MNIST_HF}
