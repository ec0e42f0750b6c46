"""Datasets as Lightning data modules that hold whole splits as tensors.

Contract (see :class:`ArrayDataModule`): a module loads raw splits once in ``setup()``,
exposes ``input_shape`` (C, H, W), ``num_classes`` (model output size), ``task``
(``"classification"`` or ``"regression"``), ``mean``/``std``, and returns
:class:`DeviceBatches` loaders whose ``(x, y)`` batches are already on the trainer's device,
float and normalized, with any augmentation applied per batch on the device. Missing or
corrupt files raise :class:`scnet.errors.DataError`; bad options raise
:class:`scnet.errors.ConfigError`.
"""

from __future__ import annotations

from typing import Any

from scnet.data.base import ArrayDataModule, ArraySplits, DeviceBatches, Split
from scnet.data.cifar10 import CIFAR10DataModule
from scnet.data.digits import DigitsDataModule
from scnet.data.mnist import MNISTDataModule
from scnet.data.mnist1d import MNIST1DDataModule
from scnet.data.synthetic import SyntheticDataModule
from scnet.errors import ConfigError

#: Dataset names accepted by :func:`get_datamodule`.
DATAMODULES: dict[str, type[ArrayDataModule]] = {
    "cifar10": CIFAR10DataModule,
    "mnist": MNISTDataModule,
    "mnist1d": MNIST1DDataModule,
    "digits": DigitsDataModule,
    "synthetic": SyntheticDataModule,
}


def get_datamodule(name: str, **options: Any) -> ArrayDataModule:
    """Instantiate a data module by name (``ConfigError`` for an unknown name)."""
    try:
        cls = DATAMODULES[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; choose one of {', '.join(DATAMODULES)}"
        ) from None
    return cls(**options)


__all__ = [
    "DATAMODULES",
    "ArrayDataModule",
    "ArraySplits",
    "CIFAR10DataModule",
    "DeviceBatches",
    "DigitsDataModule",
    "MNIST1DDataModule",
    "MNISTDataModule",
    "Split",
    "SyntheticDataModule",
    "get_datamodule",
]
