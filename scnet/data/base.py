"""Whole-dataset-as-tensors data modules and device-resident batch iterators.

A dataset is loaded once into tensors (uint8 where the source is uint8), copied once to the
trainer's device, and cut into batches there. Shuffling, augmentation, the uint8 -> float
conversion and normalization all happen per batch on the device, vectorized; there are no
DataLoader workers and no per-sample Python on the hot path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from scnet.data.augment import Augment, make_augment, normalize
from scnet.errors import ConfigError, DataError

log = logging.getLogger(__name__)

Batch = tuple[Tensor, Tensor]


@dataclass
class Split:
    """Inputs ``x`` (N, C, H, W) and targets ``y`` (N,) or (N, D) of one split."""

    x: Tensor
    y: Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"split has {len(self.x)} inputs but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: Tensor) -> Split:
        """The samples at ``index`` (a copy)."""
        return Split(self.x[index], self.y[index])


@dataclass
class ArraySplits:
    """The raw splits a data module loads; ``val`` is ``None`` when the source has none."""

    train: Split
    test: Split
    val: Split | None = None


class DeviceBatches:
    """An iterable of ``(x, y)`` batches cut from tensors that live on ``device``.

    Each ``iter()`` is one epoch. With ``shuffle`` the order (and the augmentation) of epoch
    ``e`` comes from a generator seeded with ``seed + e``, so a run is reproducible and a
    resumed run continues the same sequence. The epoch is ``epoch_source()`` when that is
    given and returns an int (the data modules pass the trainer's ``current_epoch``: Lightning
    also calls ``iter()`` once just to check a loader, so counting calls would drift), else an
    internal counter that advances on every ``iter()``. The generator is a CPU one so the
    sequence does not depend on the device.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        epoch: int = 0,
        augment: Augment | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        epoch_source: Callable[[], int | None] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _check_batch_size(batch_size, "batch_size")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} is outside world_size={world_size}")
        self.device = torch.device(device)
        # .to() is a no-op when the data is already there, so callers may pre-place it.
        self.x = split.x.to(self.device)
        self.y = split.y.to(self.device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = epoch
        self.epoch_source = epoch_source
        self.augment = augment
        self.rank = rank
        self.world_size = world_size
        self._mean = None if mean is None else torch.tensor(mean, device=self.device)
        self._std = None if std is None else torch.tensor(std, device=self.device)

    @property
    def global_batch_size(self) -> int:
        """Samples per step over all processes: ``batch_size`` on each of ``world_size``."""
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        n, size = len(self.x), self.global_batch_size
        if self.drop_last or (self.world_size > 1 and n % size and n % size < self.world_size):
            # Distributed: a last global batch too small to give every process a sample is
            # dropped, since a process with no batch would hang the gradient all-reduce.
            return n // size
        return -(-n // size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch`` (e.g. after resuming)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Batch]:
        if self.epoch_source is not None:
            # Read the trainer's epoch at the first batch, not here: on resume Lightning
            # creates the iterator before it restores the epoch counter (as DataLoader
            # samplers, which also start lazily), so an eager read would replay epoch 0.
            return self._lazy_epoch()
        # Seed and advance eagerly here, not inside the generator body, so the epoch counter
        # moves when iteration starts even if the consumer never pulls a batch.
        return self._batches(self._next_generator(None))

    def _next_generator(self, external: int | None) -> torch.Generator:
        epoch = self.epoch if external is None else external
        self.epoch = epoch + 1
        return torch.Generator().manual_seed(self.seed + epoch)

    def _lazy_epoch(self) -> Iterator[Batch]:
        assert self.epoch_source is not None
        yield from self._batches(self._next_generator(self.epoch_source()))

    def _batches(self, generator: torch.Generator) -> Iterator[Batch]:
        n = len(self.x)
        order = torch.randperm(n, generator=generator).to(self.device) if self.shuffle else None
        for b in range(len(self)):
            lo, hi = self._shard(b, n)
            # With augmentation, draw it for the whole global batch and keep this process's
            # share: the random draws then match a single process with the global batch
            # (augmentation is cheap next to forward/backward).
            full = self.augment is not None and self.world_size > 1
            glo, ghi = self._shard_bounds(b, n) if full else (lo, hi)
            index = slice(glo, ghi) if order is None else order[glo:ghi]
            xb, yb = self.x[index], self.y[index]
            # Augment the raw (possibly uint8) pixels: cheaper, and zero padding then means a
            # black border, as in the standard recipe.
            if self.augment is not None:
                xb = self.augment(xb, generator)
            if full:
                xb, yb = xb[lo - glo : hi - glo], yb[lo - glo : hi - glo]
            yield self._to_float(xb), yb

    def _shard_bounds(self, b: int, n: int) -> tuple[int, int]:
        """Global batch ``b``'s bounds in the epoch order."""
        lo = b * self.global_batch_size
        return lo, min(lo + self.global_batch_size, n)

    def _shard(self, b: int, n: int) -> tuple[int, int]:
        """This process's slice of global batch ``b``.

        Every process draws the same permutation (same seed and epoch) and takes its
        contiguous share of each global batch, so the union over processes is exactly the
        batch one process would see with ``batch_size × world_size``: with equal shares and a
        mean loss, DDP's averaged gradient equals the single-process gradient. A short last
        batch is split as evenly as possible (``tensor_split`` rule).
        """
        lo, hi = self._shard_bounds(b, n)
        base, extra = divmod(hi - lo, self.world_size)
        start = lo + self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def _to_float(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif not x.is_floating_point():
            x = x.float()
        if self._mean is not None and self._std is not None:
            x = normalize(x, self._mean, self._std)
        return x


def _check_batch_size(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"data.{name} must be an integer >= 1, got {value!r}")


class ArrayDataModule(L.LightningDataModule):
    """Base for every scnet dataset: whole splits as tensors, batches cut on the device.

    Subclasses implement :meth:`load` and set ``name``, ``input_shape`` (C, H, W),
    ``num_classes`` (the model's output size), ``mean``/``std`` (per channel, or ``None`` for
    no normalization) and ``task`` (``"classification"`` or ``"regression"``). Optional:
    ``crop_padding``/``hflip`` (what ``augment=True`` does) and :meth:`download_data`.

    Validation: with ``val_size > 0`` that many samples (or, for ``0 < val_size < 1``, that
    fraction of the training set) are held out of the training set by a
    permutation seeded with ``split_seed`` (fixed by default, independent of the run ``seed``,
    so every run of a sweep is scored on the same samples). With ``val_size == 0`` the source's
    own validation split is used if it has one, otherwise **validation uses the test set**.
    """

    name: str = "array"
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    task: str = "classification"
    crop_padding: int = 0
    hflip: bool = False

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        val_size: int | float = 0,
        augment: bool = False,
        seed: int = 0,
        root: str = "data",
        download: bool = False,
        drop_last: bool = False,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            # Config files may carry bookkeeping keys (e.g. a name); don't fail, but say so.
            log.warning("%s ignores unknown options: %s", type(self).__name__, sorted(kwargs))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_size = val_size
        self.augment = augment
        self.seed = seed
        self.root = Path(root)
        self.download = download
        self.drop_last = drop_last
        self.split_seed = split_seed
        self._check_options()
        self._splits: ArraySplits | None = None
        self._on_device: dict[tuple[int, str], Split] = {}

    # ----------------------------------------------------------------- subclass interface
    def load(self) -> ArraySplits:
        """Read the raw splits (raise :class:`DataError` if they are missing or corrupt)."""
        raise NotImplementedError

    def download_data(self) -> None:
        """Fetch the dataset into ``root`` if it is not there yet (no-op by default)."""

    def _try_download(self) -> None:
        """``download_data``; offline, the missing-files line names the path and the reason,
        and the folders the attempt created are removed (bad input leaves nothing behind)."""
        root = Path(getattr(self, "root", ".")).absolute()
        new = [p for p in (root, *root.parents) if not p.exists()]
        try:
            self.download_data()
        except DataError as failed:
            for folder in new:  # innermost first; only folders still empty
                with contextlib.suppress(OSError):
                    folder.rmdir()
            try:
                self.load()
            except DataError as missing:
                raise DataError(f"{missing}; data.download=true failed: {failed}") from None
            raise

    # ------------------------------------------------------------------- lightning hooks
    def prepare_data(self) -> None:
        """Download once per node (Lightning calls this on one process only)."""
        if self.download:
            self._try_download()

    def setup(self, stage: str | None = None) -> None:
        """Load the data once and carve the validation split; later calls are no-ops."""
        self._check_options()
        if self._splits is not None:
            return
        if self.download:  # also works without a Trainer; download_data is idempotent
            self._try_download()
        splits = self.load()
        self._splits = self._carve_val(splits)
        log.info("%s: %s", self.name, self.sizes)

    def train_dataloader(self) -> DeviceBatches:
        self._check_options()
        return DeviceBatches(
            self._placed("train"),
            self.batch_size,
            device=self._device(),
            shuffle=True,
            drop_last=self.drop_last,
            seed=self.seed,
            augment=self.augmentation(),
            mean=self.mean,
            std=self.std,
            epoch_source=self._trainer_epoch,
            **self._distributed(),
        )

    def val_dataloader(self) -> DeviceBatches:
        return self._eval_loader("val")

    def test_dataloader(self) -> DeviceBatches:
        return self._eval_loader("test")

    # ----------------------------------------------------------------------- helpers
    @property
    def splits(self) -> ArraySplits:
        """The loaded splits (after :meth:`setup`); ``val`` is always set."""
        if self._splits is None:
            raise RuntimeError(f"{type(self).__name__}.setup() has not been called")
        return self._splits

    @property
    def sizes(self) -> dict[str, int]:
        """Sample counts per split, for logging."""
        s = self.splits
        return {"train": len(s.train), "val": len(s.val or s.test), "test": len(s.test)}

    def augmentation(self) -> Augment | None:
        """The training-time augmentation, or ``None`` when ``augment`` is off."""
        if not self.augment:
            return None
        return make_augment(self.crop_padding, self.hflip)

    def _check_options(self) -> None:
        _check_batch_size(self.batch_size, "batch_size")
        if self.eval_batch_size is not None:
            _check_batch_size(self.eval_batch_size, "eval_batch_size")
        size = self.val_size
        is_count = isinstance(size, int) and not isinstance(size, bool) and size >= 0
        is_fraction = isinstance(size, float) and 0 < size < 1
        if not (is_count or is_fraction):
            raise ConfigError(
                f"data.val_size={size!r} is invalid: use a sample count >= 0 or a fraction in (0, 1)"
            )

    def _val_count(self, n_train: int) -> int:
        """A fraction lets one recipe (e.g. He et al.'s 5k of 50k = 0.1) fit any dataset."""
        if isinstance(self.val_size, float):
            return max(1, round(self.val_size * n_train))
        return self.val_size

    def _carve_val(self, splits: ArraySplits) -> ArraySplits:
        n = len(splits.train)
        count = self._val_count(n)
        if count == 0:
            return ArraySplits(splits.train, splits.test, splits.val or splits.test)
        if count >= n:
            raise ConfigError(
                f"data.val_size={self.val_size} leaves no training data ({n} training samples)"
            )
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.split_seed))
        val_idx, train_idx = perm[:count], perm[count:]
        # Sorting keeps the remaining samples in source order, which keeps memory access
        # regular and makes the split independent of how the permutation is consumed.
        train = splits.train.subset(train_idx.sort().values)
        val = splits.train.subset(val_idx.sort().values)
        return ArraySplits(train, splits.test, val)

    def _distributed(self) -> dict[str, int]:
        """This process's rank and the number of processes (DDP), from the trainer.

        Only training is sharded; validation and test run on the whole split in every
        process, so metrics (and checkpoint decisions based on them) agree on all ranks
        without a cross-process reduction.
        """
        trainer = self.trainer
        if trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": int(trainer.global_rank), "world_size": int(trainer.world_size)}

    def _trainer_epoch(self) -> int | None:
        """The epoch being trained (restored on resume), or ``None`` without a trainer."""
        return None if self.trainer is None else self.trainer.current_epoch

    def _device(self) -> torch.device:
        """The attached trainer's device (batches are built there), else the CPU."""
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _placed(self, which: str) -> Split:
        """Split ``which`` on the trainer's device, copied there at most once."""
        split = getattr(self.splits, which)
        device = self._device()
        key = (id(split), str(device))  # val may be the test split: then share one copy
        if key not in self._on_device:
            self._on_device[key] = Split(split.x.to(device), split.y.to(device))
        return self._on_device[key]

    def _eval_loader(self, which: str) -> DeviceBatches:
        self._check_options()
        return DeviceBatches(
            self._placed(which),
            self.eval_batch_size or self.batch_size,
            device=self._device(),
            mean=self.mean,
            std=self.std,
        )


# --------------------------------------------------------------------------- downloads
def file_digest(path: Path, algorithm: str = "md5", chunk: int = 1 << 20) -> str:
    """Hex digest (any ``hashlib`` algorithm) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """Hex md5 of a file (the checksum the CIFAR-10 and MNIST releases publish)."""
    return file_digest(path, "md5")


def check_md5(path: Path, md5: str) -> None:
    """Raise :class:`DataError` unless ``path`` has checksum ``md5``."""
    actual = file_md5(path)
    if actual != md5:
        raise DataError(f"checksum mismatch for {path}: md5 {actual}, expected {md5}")


def _fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Stream ``url`` to ``dest`` (the single network call; tests replace it)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f)


def download(urls: Sequence[str], dest: Path, md5: str | None, what: str) -> Path:
    """Download ``dest`` from the first of ``urls`` that works and passes the md5 check.

    An existing file with the right checksum is kept; the download goes to ``*.part`` and
    is renamed only once verified, so an interrupted run never leaves a bad file behind.
    """
    dest = Path(dest)
    if dest.exists() and (md5 is None or file_md5(dest) == md5):
        return dest
    created = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = []
    for url in urls:
        log.info("downloading %s from %s", what, url)
        try:
            _fetch(url, part)
            if md5 is not None:
                check_md5(part, md5)
        except (urllib.error.URLError, OSError, TimeoutError, DataError) as err:
            part.unlink(missing_ok=True)
            reason = getattr(err, "reason", err)
            failures.append(f"{url}: {reason}")
            continue
        part.replace(dest)
        return dest
    for folder in created:  # innermost first: a failed download leaves no empty folders
        with contextlib.suppress(OSError):
            folder.rmdir()
    raise DataError(
        f"could not download {what} to {dest} ({'; '.join(failures)}); "
        f"check the network or place the file there by hand"
    )
