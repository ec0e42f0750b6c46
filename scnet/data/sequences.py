"""Long-term dependency tasks (seed 004): the adding problem and sequential / permuted pixels.

* ``AddingDataModule`` (Hochreiter & Schmidhuber, 1997): each input is ``T`` steps of two
  channels, a uniform[0, 1) value and a marker that is 1 at exactly two positions (one in
  each half); the regression target is the sum of the two marked values. Predicting the
  mean (1.0) gives MSE ≈ 1/6 ≈ 0.167, the baseline to beat. Input shape ``(1, T, 2)``.
* ``SequentialDigitsDataModule`` / ``SequentialMNISTDataModule``: the images read pixel by
  pixel, shape ``(1, H·W, 1)``; ``permute: true`` applies one fixed random permutation
  (``perm_seed``) to the pixel order, which destroys locality and makes the dependencies
  long. Digits (64 steps) is the offline stand-in for MNIST (784 steps).
"""

from __future__ import annotations

from typing import Any

import torch

from scnet.data.base import ArrayDataModule, ArraySplits, Split
from scnet.data.digits import DigitsDataModule
from scnet.data.mnist import MNISTDataModule
from scnet.errors import ConfigError


class AddingDataModule(ArrayDataModule):
    """The adding problem with sequence length ``length`` (data from ``data_seed`` only)."""

    name = "adding"
    mean = None
    std = None
    task = "regression"
    num_classes = 1

    def __init__(
        self, length: int = 50, n_train: int = 5000, n_test: int = 1000, data_seed: int = 0,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if not isinstance(length, int) or length < 2:
            raise ConfigError(f"data.length={length!r} is invalid: must be an integer >= 2")
        self.length, self.n_train, self.n_test, self.data_seed = length, n_train, n_test, data_seed
        self.input_shape = (1, length, 2)

    def load(self) -> ArraySplits:
        g = torch.Generator().manual_seed(self.data_seed)
        n, t = self.n_train + self.n_test, self.length
        values = torch.rand(n, t, generator=g)
        half = t // 2
        first = torch.randint(0, half, (n,), generator=g)
        second = torch.randint(half, t, (n,), generator=g)
        marks = torch.zeros(n, t)
        rows = torch.arange(n)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        x = torch.stack([values, marks], dim=-1).unsqueeze(1)
        y = (values[rows, first] + values[rows, second]).unsqueeze(1)
        return ArraySplits(
            train=Split(x[: self.n_train], y[: self.n_train]),
            test=Split(x[self.n_train :], y[self.n_train :]),
        )


class _PixelSequence:
    """Mixin: turn ``(N, 1, H, W)`` images into ``(N, 1, H·W, 1)`` pixel sequences."""

    permute: bool
    perm_seed: int

    def _to_sequence(self, splits: ArraySplits, pixels: int) -> ArraySplits:
        order = (
            torch.randperm(pixels, generator=torch.Generator().manual_seed(self.perm_seed))
            if self.permute
            else torch.arange(pixels)
        )

        def convert(split: Split) -> Split:
            return Split(split.x.reshape(len(split), 1, pixels, 1)[:, :, order], split.y)

        return ArraySplits(
            convert(splits.train), convert(splits.test),
            None if splits.val is None else convert(splits.val),
        )  # fmt: skip


class SequentialDigitsDataModule(_PixelSequence, DigitsDataModule):
    """sklearn digits read as 64-step pixel sequences (optionally permuted)."""

    name = "seq_digits"

    def __init__(self, permute: bool = False, perm_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.permute, self.perm_seed = bool(permute), perm_seed
        self.input_shape = (1, 64, 1)

    def load(self) -> ArraySplits:
        self.input_shape = (1, 8, 8)  # the parent reshapes to this
        try:
            splits = super().load()
        finally:
            self.input_shape = (1, 64, 1)
        return self._to_sequence(splits, 64)


class SequentialMNISTDataModule(_PixelSequence, MNISTDataModule):
    """MNIST read as 784-step pixel sequences (optionally permuted); needs the IDX files."""

    name = "seq_mnist"

    def __init__(self, permute: bool = False, perm_seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.permute, self.perm_seed = bool(permute), perm_seed
        self.input_shape = (1, 784, 1)

    def load(self) -> ArraySplits:
        return self._to_sequence(super().load(), 784)
