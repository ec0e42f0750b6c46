"""CIFAR-10 from the official python-pickle release (``cifar-10-batches-py``)."""

from __future__ import annotations

import codecs
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scnet.data import base
from scnet.data.base import ArrayDataModule, ArraySplits, Split
from scnet.errors import DataError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

# The batches are pickles, and unpickling can run arbitrary code; only the few globals a
# numpy array (and py2/py3 bytes) needs are allowed, so a tampered file cannot do harm.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED_GLOBALS[(_module, "_reconstruct")] = np.zeros(1).__reduce__()[0]
    _ALLOWED_GLOBALS[(_module, "scalar")] = np.uint8(0).__reduce__()[0]


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name}") from None


def _get(batch: dict, key: str) -> Any:
    """Look a key up as str (latin1-decoded py2 pickle) or as bytes (py3-written pickle)."""
    if key in batch:
        return batch[key]
    return batch[key.encode()]


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    try:
        with open(path, "rb") as f:
            # latin1 decodes the py2 str pickles of the official release (as torchvision does).
            batch = _ArrayUnpickler(f, encoding="latin1").load()
        data = np.asarray(_get(batch, "data"))
        labels = np.asarray(_get(batch, "labels"), dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError) as err:
        raise DataError(f"corrupt CIFAR-10 batch file {path}: {err}") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(
            f"corrupt CIFAR-10 batch file {path}: data is {data.dtype} {data.shape}, "
            f"expected uint8 (N, 3072)"
        )
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
        raise DataError(f"corrupt CIFAR-10 batch file {path}: bad labels for {len(data)} images")
    # Rows are 1024 R, 1024 G, 1024 B values, each a row-major 32x32 plane: CHW already.
    return data.reshape(-1, 3, 32, 32), labels


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract only the regular files and folders under ``FOLDER/``, nothing outside ``dest``."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [
                m
                for m in tar.getmembers()
                if (m.isfile() or m.isdir())
                and not Path(m.name).is_absolute()
                and ".." not in Path(m.name).parts
                and Path(m.name).parts[:1] == (FOLDER,)
            ]
            if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - old interpreters; members are already vetted
                tar.extractall(dest, members=members)
    except (OSError, EOFError, tarfile.TarError) as err:
        raise DataError(f"could not extract {archive}: {err}; delete it and retry") from None


class CIFAR10DataModule(ArrayDataModule):
    """CIFAR-10: 50k train / 10k test 32x32 colour images, 10 classes.

    Files are read from ``root/cifar-10-batches-py/``. ``augment`` (on by default) is the
    standard pad-4 random crop plus horizontal flip. ``val_size=5000`` (or ``0.1``) gives He et al.'s
    45k/5k split; the default 0 validates on the test set.
    """

    name = "cifar10"
    input_shape = (3, 32, 32)
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    crop_padding = 4
    hflip = True

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int | float = 0,
        augment: bool = True,
        seed: int = 0,
        root: str = "data",
        download: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            val_size=val_size,
            augment=augment,
            seed=seed,
            root=root,
            download=download,
            **kwargs,
        )

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    def _missing(self) -> list[str]:
        return [n for n in (*TRAIN_FILES, TEST_FILE) if not (self.folder / n).is_file()]

    def download_data(self) -> None:
        if not self._missing():
            return
        archive = base.download([URL], self.root / "cifar-10-python.tar.gz", MD5, "CIFAR-10")
        _safe_extract(archive, self.root)

    def load(self) -> ArraySplits:
        if missing := self._missing():
            raise DataError(
                f"CIFAR-10 not found at {self.folder} (expected data_batch_1..5 and test_batch, "
                f"missing {', '.join(missing)}); pass data.download=true or place the python "
                f"version from {HOME} there"
            )
        train = [read_batch(self.folder / n) for n in TRAIN_FILES]
        test_x, test_y = read_batch(self.folder / TEST_FILE)
        train_x = np.concatenate([x for x, _ in train])
        train_y = np.concatenate([y for _, y in train])
        return ArraySplits(
            train=Split(torch.from_numpy(train_x), torch.from_numpy(train_y)),
            test=Split(torch.from_numpy(test_x), torch.from_numpy(test_y)),
        )
