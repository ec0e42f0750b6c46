"""scikit-learn's bundled 8x8 digits: small, offline, the dataset of ``make demo``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from scnet.data.base import ArrayDataModule, ArraySplits, Split
from scnet.errors import ConfigError

# Fixed on purpose and independent of the run seed: the test set must never change between
# runs, or scores from different seeds/sweeps would not be comparable.
TEST_SPLIT_SEED = 0


class DigitsDataModule(ArrayDataModule):
    """1797 8x8 grey digits (values 0..16 scaled to [0, 1]), 10 classes, bundled with sklearn.

    A stratified ``test_size`` fraction is held out as the test set. ``augment`` is off by
    default (flips would turn digits into other symbols); if enabled it is a pad-1 random crop.
    ``root``/``download`` are accepted for a uniform config but unused.
    """

    name = "digits"
    input_shape = (1, 8, 8)
    num_classes = 10
    # Over all 1797 images after scaling to [0, 1].
    mean = (0.3053,)
    std = (0.3760,)
    crop_padding = 1
    hflip = False

    def __init__(self, test_size: float = 0.2, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < test_size < 1.0:
            raise ConfigError(f"data.test_size must be in (0, 1), got {test_size!r}")
        self.test_size = test_size

    def load(self) -> ArraySplits:
        # Imported here: sklearn is slow to import and only this dataset needs it.
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        x, y = load_digits(return_X_y=True)
        x = (x / 16.0).astype(np.float32).reshape(-1, *self.input_shape)
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=self.test_size, stratify=y, random_state=TEST_SPLIT_SEED
        )
        return ArraySplits(train=_split(x_train, y_train), test=_split(x_test, y_test))


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y.astype(np.int64)))
