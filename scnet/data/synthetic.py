"""Seeded random inputs and targets, for gradient-flow studies on deep narrow nets.

The default reproduces the classic "20-layer x 20-unit tanh net on random 20-d inputs and
targets" setting: standard-normal inputs and standard-normal 20-d regression targets.
"""

from __future__ import annotations

from typing import Any

import torch

from scnet.data.base import ArrayDataModule, ArraySplits, Split
from scnet.errors import ConfigError

TASKS = ("regression", "classification")


class SyntheticDataModule(ArrayDataModule):
    """Random data: inputs ``(1, 1, dim)`` (an FCN flattens them), targets per ``task``.

    ``regression``: targets are standard-normal ``dim``-vectors and ``num_classes == dim`` (the
    output size). ``classification``: labels are uniform ints in ``[0, num_classes)``. The data
    depends only on ``data_seed``, never on the run ``seed`` (which drives shuffling). Inputs
    are already standardized, so there is no normalization and no augmentation.
    """

    name = "synthetic"
    mean = None
    std = None

    def __init__(
        self,
        n_train: int = 1000,
        n_test: int = 200,
        dim: int = 20,
        task: str = "regression",
        num_classes: int = 10,
        data_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task not in TASKS:
            raise ConfigError(f"data.task must be one of {', '.join(TASKS)}, got {task!r}")
        for key, value in (("n_train", n_train), ("n_test", n_test), ("dim", dim)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{key} must be an integer >= 1, got {value!r}")
        if task == "classification" and (not isinstance(num_classes, int) or num_classes < 2):
            raise ConfigError(f"data.num_classes must be an integer >= 2, got {num_classes!r}")
        if self.augment:
            raise ConfigError("data.augment is not supported for synthetic data")
        self.n_train, self.n_test, self.dim = n_train, n_test, dim
        self.task = task
        self.data_seed = data_seed
        self.input_shape = (1, 1, dim)
        self.num_classes = dim if task == "regression" else num_classes

    def load(self) -> ArraySplits:
        generator = torch.Generator().manual_seed(self.data_seed)
        n = self.n_train + self.n_test
        x = torch.randn(n, *self.input_shape, generator=generator)
        if self.task == "regression":
            y = torch.randn(n, self.dim, generator=generator)
        else:
            y = torch.randint(self.num_classes, (n,), generator=generator)
        train = Split(x[: self.n_train], y[: self.n_train])
        test = Split(x[self.n_train :], y[self.n_train :])
        return ArraySplits(train=train, test=test)
