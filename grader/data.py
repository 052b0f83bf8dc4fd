"""Find, verify and load MNIST from the four standard IDX files in ``data/mnist/``.

The files are read offline, never downloaded. Each one is checked against the
sha256 of its *decompressed* bytes, so a truncated copy or a wrong file gives a
clear error instead of silently wrong pixels.

    >>> X, y = load_mnist("train")     # X: float32 [60000, 784] in [0, 1], y: int64 [60000]
"""

from __future__ import annotations

import gzip
import hashlib
import os
from functools import lru_cache
from pathlib import Path

import torch

#: decompressed size in bytes and sha256 of each standard file
FILES = {
    "train-images-idx3-ubyte": (47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FIX = ("Copy the four MNIST .gz files from the course repository's data/mnist/ folder "
       "(or set COURSE_DATA_DIR to the folder that holds them).")


class MNISTError(RuntimeError):
    """A data file is missing, truncated or not the file it claims to be."""


def data_dir() -> Path:
    """The folder holding the MNIST files: ``$COURSE_DATA_DIR`` if set, else ``<repo>/data/mnist``."""
    env = os.environ.get("COURSE_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data" / "mnist"


def file_path(name: str, folder: Path | None = None) -> Path:
    """Path of one standard file (``.gz`` if present, else the uncompressed file)."""
    if name not in FILES:
        raise ValueError(f"unknown MNIST file {name!r}; expected one of {sorted(FILES)}")
    folder = Path(folder) if folder is not None else data_dir()
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.exists():
            return candidate
    raise MNISTError(f"MNIST file missing: expected {folder / (name + '.gz')} "
                     f"(or the uncompressed {name}). {FIX}")


def read_bytes(name: str, folder: Path | None = None, verify: bool = True) -> bytes:
    """The decompressed bytes of one standard file, checked against its known size and sha256."""
    path = file_path(name, folder)
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise MNISTError(f"MNIST file {path} is corrupt: it cannot be decompressed ({err}). {FIX}") from err
    if verify:
        size, digest = FILES[name]
        if len(data) != size:
            raise MNISTError(f"MNIST file {path} is corrupt: expected {size:,} bytes once decompressed, "
                             f"got {len(data):,}. {FIX}")
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise MNISTError(f"MNIST file {path} is corrupt: sha256 of its decompressed bytes is {actual}, "
                             f"expected {digest}. {FIX}")
    return data


def parse_idx(data: bytes, source: str = "IDX data") -> torch.Tensor:
    """Parse IDX bytes (big-endian header, unsigned-byte payload) into a uint8 tensor."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise MNISTError(f"{source} is not an unsigned-byte IDX file: it should start with 00 00 08, "
                         f"got {data[:4].hex(' ') or 'nothing'}")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + (torch.Size(dims).numel() if ndim else 0)
    if len(data) != expected:
        raise MNISTError(f"{source} is truncated or padded: its header announces dims {dims}, "
                         f"so {expected:,} bytes, but it has {len(data):,}")
    return torch.frombuffer(bytearray(data[header:]), dtype=torch.uint8).reshape(dims)


@lru_cache(maxsize=4)
def _load(split: str, folder: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    images_name, labels_name = SPLITS[split]
    images = parse_idx(read_bytes(images_name, folder), images_name)
    labels = parse_idx(read_bytes(labels_name, folder), labels_name)
    if images.shape[0] != labels.shape[0]:
        raise MNISTError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images.reshape(images.shape[0], -1).float().div_(255.0), labels.long()


VALIDATION_SIZE = 10_000      # training images held out for choosing settings
VALIDATION_SEED = 0           # the same held-out images on every machine


def validation_indices(n: int = 60_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into the fit and validation indices (a seeded permutation).

    Returns ``(fit, val)``: int64 ``[n - VALIDATION_SIZE]`` and ``[VALIDATION_SIZE]``, each
    sorted, disjoint, together every index once. The same on every machine and every call.
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    return order[VALIDATION_SIZE:].sort().values, order[:VALIDATION_SIZE].sort().values


def load_mnist(split: str = "train", folder: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one MNIST split.

    Args:
        split: ``"train"`` (all 60,000 training images), ``"fit"`` (the 50,000 of them that
            are trained on), ``"val"`` (the other 10,000, held out to choose settings such as
            the number of epochs) or ``"test"`` (10,000 images, measured once, at the end).
            ``"fit"`` and ``"val"`` are a fixed, seeded split of ``"train"``.
        folder: where the IDX files are; default :func:`data_dir`.

    Returns:
        ``(X, y)``: ``X`` float32 ``[N, 784]`` with values in [0, 1] (pixel / 255),
        ``y`` int64 ``[N]`` with the digits 0-9. Fresh copies: modifying them is safe.
    """
    if split not in (*SPLITS, "fit", "val"):
        raise ValueError(f"split must be 'train', 'fit', 'val' or 'test', got {split!r}")
    folder = None if folder is None else str(folder)
    if split in ("fit", "val"):
        X, y = _load("train", folder)
        fit, val = validation_indices(X.shape[0])
        keep = fit if split == "fit" else val
        return X[keep], y[keep]                   # indexing copies
    X, y = _load(split, folder)
    return X.clone(), y.clone()
