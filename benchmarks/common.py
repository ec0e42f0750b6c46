"""Shared helpers: CIFAR-shaped data, timing, hardware description, result files."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from scnet.data.base import ArraySplits, Split
from scnet.data.cifar10 import CIFAR10DataModule

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def hardware() -> dict[str, Any]:
    """CPU model, core count, torch version, and the GPU if one is visible."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
    }


def cifar_like(n_train: int, n_test: int = 1000, seed: int = 0) -> tuple[ArraySplits, str]:
    """Real CIFAR-10 (first ``n_train`` images) when it is under data/, else seeded random uint8."""
    from scnet.data.cifar10 import CIFAR10DataModule

    dm = CIFAR10DataModule(root=str(REPO / "data"))
    if not dm._missing():
        dm.setup("fit")
        s = dm.splits
        return ArraySplits(
            Split(s.train.x[:n_train], s.train.y[:n_train]),
            Split(s.test.x[:n_test], s.test.y[:n_test]),
        ), "CIFAR-10 (data/cifar-10-batches-py)"
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (n_train + n_test,), generator=g)
    splits = ArraySplits(Split(x[:n_train], y[:n_train]), Split(x[n_train:], y[n_train:]))
    return splits, "random uint8 3x32x32, CIFAR-10-shaped (CIFAR-10 not on disk)"


class BenchCIFAR(CIFAR10DataModule):
    """CIFAR-10's shape, normalization and augmentation over given splits (no files needed)."""

    def __init__(self, splits: ArraySplits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._given = splits

    def load(self) -> ArraySplits:
        return self._given


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer of conf/optim/sgd.yaml (constant lr: schedules cost nothing per step)."""
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware(),
        **payload,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def quiet_trainer(
    callbacks: list[L.Callback], accelerator: str = "cpu", **kwargs: Any
) -> L.Trainer:
    """A Lightning Trainer with logging, checkpoints, progress and summary off: only training
    is timed. ``kwargs`` set the run length (``max_steps``/``max_epochs``) and the like."""
    return L.Trainer(
        accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks, **kwargs,
    )  # fmt: skip
