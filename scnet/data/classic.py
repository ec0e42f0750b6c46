"""The classic input pipeline, for comparison: a per-sample ``Dataset`` behind a ``DataLoader``.

This is what most CIFAR code does (torchvision's ``RandomCrop(32, padding=4)`` +
``RandomHorizontalFlip`` + ``ToTensor`` + ``Normalize``): every sample is padded, cropped,
flipped, converted and normalized on its own in Python, then the ``DataLoader`` collates the
batch on the host and Lightning copies it to the device. ``data.pipeline=classic`` selects
it; the default ``fast`` path (:mod:`scnet.data.base`) does the same work per batch on the
device. ``benchmarks/`` measures the two side by side.

Semantics match the fast path exactly where it matters for comparisons: the same shuffled
order each epoch (a permutation seeded with ``seed + epoch``), the same uint8 → float
conversion and normalization (bit-identical batches when augmentation is off), the same
crop/flip distribution when it is on. The random crop/flip draws use the process's global
RNG per sample, as torchvision does (so they differ draw-for-draw from the fast path).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from scnet.data.base import ArrayDataModule, Split


class SampleDataset(Dataset):
    """One split, served one augmented, normalized sample at a time."""

    def __init__(
        self,
        split: Split,
        crop_padding: int = 0,
        hflip: bool = False,
        mean: Any = None,
        std: Any = None,
    ) -> None:
        self.split = split
        self.crop_padding = crop_padding
        self.hflip = hflip
        self.mean = None if mean is None else torch.tensor(mean).view(-1, 1, 1)
        self.std = None if std is None else torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, y = self.split.x[index], self.split.y[index]
        if self.crop_padding and x.dim() == 3:
            p = self.crop_padding
            h, w = x.shape[-2:]
            dy, dx = torch.randint(0, 2 * p + 1, (2,)).tolist()
            x = F.pad(x, (p, p, p, p))[:, dy : dy + h, dx : dx + w]
        if self.hflip and x.dim() == 3 and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return self._to_float(x), y

    def _to_float(self, x: Tensor) -> Tensor:
        # The same ops, in the same order, as DeviceBatches._to_float: identical values.
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif not x.is_floating_point():
            x = x.float()
        if self.mean is not None and self.std is not None:
            x = (x - self.mean) / self.std
        return x


class EpochPermutationSampler(Sampler[int]):
    """Indices in the order the fast path uses: ``randperm(n)`` seeded with ``seed + epoch``."""

    def __init__(self, n: int, seed: int, epoch_source: Callable[[], int | None]) -> None:
        self.n = n
        self.seed = seed
        self.epoch_source = epoch_source
        self.epoch = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        external = self.epoch_source()
        epoch = self.epoch if external is None else external
        self.epoch = epoch + 1
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())


class ClassicDataModule(L.LightningDataModule):
    """Wraps an :class:`ArrayDataModule`: same data and options, classic per-sample loading."""

    def __init__(self, inner: ArrayDataModule, num_workers: int = 0) -> None:
        super().__init__()
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            from scnet.errors import ConfigError

            raise ConfigError(f"data.workers must be an integer >= 0, got {num_workers!r}")
        self.inner = inner
        self.num_workers = num_workers
        for attr in ("name", "input_shape", "num_classes", "task", "mean", "std"):
            setattr(self, attr, getattr(inner, attr))

    def prepare_data(self) -> None:
        self.inner.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.inner.setup(stage)

    @property
    def splits(self) -> Any:
        return self.inner.splits

    def train_dataloader(self) -> DataLoader:
        inner = self.inner
        augment = bool(inner.augment)
        dataset = SampleDataset(
            inner.splits.train,
            crop_padding=inner.crop_padding if augment else 0,
            hflip=inner.hflip if augment else False,
            mean=inner.mean,
            std=inner.std,
        )
        sampler = EpochPermutationSampler(len(dataset), inner.seed, self._trainer_epoch)
        return self._loader(dataset, inner.batch_size, sampler=sampler, drop_last=inner.drop_last)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.inner.splits.val or self.inner.splits.test)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.inner.splits.test)

    def _eval_loader(self, split: Split) -> DataLoader:
        dataset = SampleDataset(split, mean=self.inner.mean, std=self.inner.std)
        return self._loader(dataset, self.inner.eval_batch_size or self.inner.batch_size)

    def _loader(self, dataset: Dataset, batch_size: int, **kwargs: Any) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
            **kwargs,
        )

    def _trainer_epoch(self) -> int | None:
        return None if self.trainer is None else self.trainer.current_epoch
