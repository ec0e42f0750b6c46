"""MNIST from the original IDX files (raw or ``.gz``), parsed with numpy."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from scnet.data import base
from scnet.data.base import ArrayDataModule, ArraySplits, Split
from scnet.errors import DataError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)
# md5 of the .gz files, which is what gets downloaded and kept.
FILES = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}
IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dims
LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dim


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read a uint8 IDX file (optionally gzipped), checking magic number and length."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read IDX file {path}: {err}") from None
    if len(raw) < 4:
        raise DataError(f"truncated IDX file {path}: {len(raw)} bytes, no header")
    (found,) = struct.unpack(">I", raw[:4])
    if found != magic:
        raise DataError(f"bad IDX file {path}: magic number {found}, expected {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"truncated IDX file {path}: {len(raw)} bytes, header needs {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(
            f"truncated or oversized IDX file {path}: {len(raw)} bytes, "
            f"header {dims} implies {expected}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


class MNISTDataModule(ArrayDataModule):
    """MNIST: 60k train / 10k test 28x28 grey digits, 10 classes, from ``root/mnist/``.

    Each IDX file may be raw or ``.gz``. ``augment=True`` is a pad-2 random crop (no flips:
    mirrored digits are different symbols).
    """

    name = "mnist"
    input_shape = (1, 28, 28)
    num_classes = 10
    mean = (0.1307,)
    std = (0.3081,)
    crop_padding = 2
    hflip = False

    @property
    def folder(self) -> Path:
        return self.root / "mnist"

    def _find(self, stem: str) -> Path | None:
        for candidate in (self.folder / stem, self.folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
        return None

    def download_data(self) -> None:
        for stem, md5 in FILES.items():
            if self._find(stem) is None:
                urls = [f"{mirror}{stem}.gz" for mirror in MIRRORS]
                base.download(urls, self.folder / f"{stem}.gz", md5, f"MNIST {stem}")

    def _read_pair(self, prefix: str) -> Split:
        images = read_idx(self._path(f"{prefix}-images-idx3-ubyte"), IMAGES_MAGIC)
        labels = read_idx(self._path(f"{prefix}-labels-idx1-ubyte"), LABELS_MAGIC)
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(
                f"MNIST {prefix} files in {self.folder} disagree: images {images.shape}, "
                f"labels {labels.shape}"
            )
        if labels.size and labels.max() >= 10:
            raise DataError(f"MNIST {prefix} labels in {self.folder} exceed 9")
        return Split(
            torch.from_numpy(images).unsqueeze(1),  # (N, 1, 28, 28) uint8
            torch.from_numpy(labels.astype(np.int64)),
        )

    def _path(self, stem: str) -> Path:
        path = self._find(stem)
        assert path is not None  # load() checked that every file exists
        return path

    def load(self) -> ArraySplits:
        missing = [stem for stem in FILES if self._find(stem) is None]
        if missing:
            raise DataError(
                f"MNIST not found at {self.folder} (missing {', '.join(missing)}, raw or .gz); "
                f"pass data.download=true or place the IDX files from {MIRRORS[1]} there"
            )
        return ArraySplits(train=self._read_pair("train"), test=self._read_pair("t10k"))
