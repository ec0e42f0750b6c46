"""MNIST-1D (Greydanus 2020, "Scaling down deep learning"), generated offline.

The ``mnist1d`` package's ``make_dataset`` with its default arguments: 5000 length-40 signals
(ten 1-D digit templates padded, scaled, sheared, translated, with correlated and iid noise),
split 4000 train / 1000 test, seed 42. Generation takes about a second and never touches the
network (``mnist1d.data.get_dataset`` would try to download a pickle first); the arrays are
cached as ``root/mnist1d/mnist1d_default.npz`` so every run reads the same bytes.

The package already centres the data and scales it to unit std, so no normalization is
applied here. Inputs have shape ``(1, 40)``: one channel, 40 time steps (a 1-D image).
"""

from __future__ import annotations

import logging
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scnet.data.base import ArrayDataModule, ArraySplits, Split

log = logging.getLogger(__name__)

LENGTH = 40
N_TRAIN, N_TEST = 4000, 1000
CACHE_NAME = "mnist1d_default.npz"
ARRAYS = ("x", "y", "x_test", "y_test")


def generate() -> dict[str, np.ndarray]:
    """The default MNIST-1D arrays from ``mnist1d.data.make_dataset`` (no download).

    ``make_dataset`` reseeds Python's and NumPy's global generators (``set_seed(42)``); their
    states are restored afterwards so generating the data does not change a run's randomness.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }


def _valid(arrays: dict[str, np.ndarray]) -> bool:
    """The cached arrays have the default dataset's shapes, dtypes and labels 0..9."""
    shapes = {
        "x": (N_TRAIN, LENGTH),
        "y": (N_TRAIN,),
        "x_test": (N_TEST, LENGTH),
        "y_test": (N_TEST,),
    }
    if any(arrays[k].shape != s for k, s in shapes.items()):
        return False
    labels_ok = all(arrays[k].min() >= 0 and arrays[k].max() <= 9 for k in ("y", "y_test"))
    return labels_ok and all(np.isfinite(arrays[k]).all() for k in ("x", "x_test"))


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or ``None`` if the file is missing, unreadable or not the default set."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("mnist1d: cache %s is unreadable (%s); regenerating it", path, err)
        return None
    if not _valid(arrays):
        log.warning("mnist1d: cache %s does not hold the default dataset; regenerating it", path)
        return None
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a per-process temporary file, then rename: concurrent runs never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_arrays(root: Path) -> dict[str, np.ndarray]:
    """The default MNIST-1D arrays: from the cache under ``root`` or generated (and cached)."""
    path = Path(root) / "mnist1d" / CACHE_NAME
    arrays = _read_cache(path)
    if arrays is None:
        arrays = generate()
        try:
            _write_cache(path, arrays)
        except OSError as err:  # a read-only data root still trains, it just regenerates
            log.warning("mnist1d: cannot cache to %s (%s)", path, err)
    return arrays


class MNIST1DDataModule(ArrayDataModule):
    """MNIST-1D: 4000 train / 1000 test signals of length 40, 10 classes, shape ``(1, 40)``.

    Validation follows the house rule (as ``data=digits``): ``val_size: 0`` validates on the
    test set; ``val_size > 0`` holds that many training samples out by ``split_seed``.
    ``download`` is accepted for a uniform config and ignored: the data is generated.
    """

    name = "mnist1d"
    input_shape = (1, LENGTH)
    num_classes = 10
    mean = None  # make_dataset already standardizes the whole set to mean 0, std 1
    std = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def load(self) -> ArraySplits:
        a = load_arrays(self.root)
        return ArraySplits(train=_split(a["x"], a["y"]), test=_split(a["x_test"], a["y_test"]))


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 1, LENGTH)
    return Split(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
