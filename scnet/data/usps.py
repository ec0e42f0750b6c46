"""USPS handwritten digits in their common public release format (LIBSVM, bz2-compressed).

Files ``usps.bz2`` (7291 train) and ``usps.t.bz2`` (2007 test) under ``root/usps/`` (plain,
uncompressed ``usps`` / ``usps.t`` work too). Each line is ``label idx:value …`` with labels
1..10 (10 is the digit 0 in some mirrors, but we only need distinct classes: label − 1),
indices 1..256 of a 16x16 image and values in [−1, 1], mapped here to [0, 1]. Missing
indices are the minimum value (−1), as LIBSVM's sparse format implies zero only after its
own scaling; the public file lists all 256 features, so this rarely matters.

Offline stand-in (seed 003's Table 1 is on USPS): ``data=digits`` (8x8 sklearn digits).
"""

from __future__ import annotations

import bz2
from pathlib import Path

import numpy as np
import torch

from scnet.data.base import ArrayDataModule, ArraySplits, Split
from scnet.errors import DataError

SIDE = 16
FILES = {"train": "usps", "test": "usps.t"}


def read_libsvm(path: Path, n_features: int = SIDE * SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Parse a (optionally .bz2) LIBSVM file into ``(x[N, n_features] in [-1,1], labels)``."""
    try:
        raw = bz2.decompress(path.read_bytes()) if path.suffix == ".bz2" else path.read_bytes()
        text = raw.decode("ascii")
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"cannot read USPS file {path}: {err}") from None
    rows, labels = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        x = np.full(n_features, -1.0, dtype=np.float32)
        try:
            labels.append(int(float(parts[0])))
            for item in parts[1:]:
                index, value = item.split(":")
                x[int(index) - 1] = float(value)
        except (ValueError, IndexError):
            raise DataError(f"bad USPS line {number} in {path}: {line[:60]!r}") from None
        rows.append(x)
    if not rows:
        raise DataError(f"USPS file {path} has no samples")
    return np.stack(rows), np.asarray(labels, dtype=np.int64)


class USPSDataModule(ArrayDataModule):
    """USPS 16x16 digits, 10 classes, from the LIBSVM release under ``root/usps/``."""

    name = "usps"
    input_shape = (1, SIDE, SIDE)
    num_classes = 10
    mean = None  # values are already in [0, 1]; the paper uses them as they are
    std = None

    @property
    def folder(self) -> Path:
        return self.root / "usps"

    def _find(self, stem: str) -> Path | None:
        for candidate in (self.folder / f"{stem}.bz2", self.folder / stem):
            if candidate.is_file():
                return candidate
        return None

    def _read(self, stem: str) -> Split:
        path = self._find(stem)
        if path is None:
            raise DataError(
                f"USPS not found at {self.folder} (need {stem}.bz2 or {stem}); place the LIBSVM "
                "release files there, or use data=digits as the offline stand-in"
            )
        x, labels = read_libsvm(path)
        if labels.min() < 1 or labels.max() > self.num_classes:
            raise DataError(
                f"USPS labels in {path} must be 1..10, found {labels.min()}..{labels.max()}"
            )
        x01 = ((x + 1.0) / 2.0).clip(0.0, 1.0).reshape(-1, *self.input_shape)
        return Split(torch.from_numpy(x01), torch.from_numpy(labels - 1))

    def load(self) -> ArraySplits:
        return ArraySplits(train=self._read(FILES["train"]), test=self._read(FILES["test"]))
