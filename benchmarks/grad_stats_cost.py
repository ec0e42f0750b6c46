"""Cost of the gradient-statistics callback (``grad_stats``), ResNet-20 training step on CPU.

    python -m benchmarks.grad_stats_cost

The real ``ClassifierModule`` (sc off) under a Lightning ``Trainer`` (no logger, checkpoints or
progress bar), fast path, batch 64. Two configurations, alternating over ``rounds`` runs:
``grad_stats.enabled=false`` (no callback: the default) and ``enabled=true`` with
``every_n_steps=2, batches_per_epoch=0`` so recorded and non-recorded steps interleave within
one run. A step's time is the wall time between consecutive ``on_train_batch_end`` calls (data,
forward, backward, optimizer, and every callback hook of that step, the CSV write included);
the first ``warmup`` steps of each run are dropped. Reported: medians of recorded steps,
non-recorded steps and steps with the callback off, and their ratios.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from benchmarks.common import BenchCIFAR, cifar_like, median, quiet_trainer, write
from benchmarks.framework import SGD_CFG
from scnet.lit.classifier import ClassifierModule
from scnet.lit.grad_stats import GradStatsCallback
from scnet.models import CifarResNet


class _StepTimes(L.Callback):
    """Per-step wall time (batch end to batch end) and whether the step was recorded."""

    def __init__(self, stats: GradStatsCallback | None) -> None:
        self.stats = stats
        self.last = 0.0
        self.rows: list[tuple[int, bool, float]] = []
        self._recorded = False

    def on_train_start(self, trainer, module) -> None:
        self.last = time.perf_counter()

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.stats is not None:
            self._recorded = self.stats.should_record(
                trainer.global_step, trainer.current_epoch, batch_idx
            )

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self.rows.append((batch_idx, self._recorded, now - self.last))
        self.last = now


def one_run(dm: BenchCIFAR, enabled: bool, steps: int, run_dir: Path) -> _StepTimes:
    run_dir.mkdir(parents=True, exist_ok=True)  # a run dir exists before training in scnet-run
    torch.manual_seed(0)
    module = ClassifierModule(
        CifarResNet(depth=20), {"enabled": False}, SGD_CFG, input_shape=(3, 32, 32)
    )
    stats = (
        GradStatsCallback(run_dir, every_n_steps=2, batches_per_epoch=0, log_wandb=False)
        if enabled
        else None
    )
    clock = _StepTimes(stats)
    # The clock goes last so its batch-end mark comes after every other callback's hooks.
    callbacks: list[L.Callback] = ([stats] if stats else []) + [clock]
    trainer = quiet_trainer(callbacks, max_steps=steps, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    return clock


def run(
    batch: int = 64, steps: int = 22, warmup: int = 2, rounds: int = 3, quick: bool = False
) -> dict[str, Any]:
    if quick:
        steps, rounds = 12, 2
    splits, source = cifar_like(batch * steps)
    dm = BenchCIFAR(splits, batch_size=batch, augment=True)
    dm.setup("fit")
    off: list[float] = []
    rec: list[float] = []
    unrec: list[float] = []
    with tempfile.TemporaryDirectory(prefix="scnet-gradstats-") as tmp:
        for r in range(rounds):  # off, on, off, on, ...
            for enabled in (False, True):
                clock = one_run(dm, enabled, steps, Path(tmp) / f"run-{r}-{enabled}")
                for idx, recorded, dt in clock.rows:
                    if idx < warmup:
                        continue
                    (rec if recorded else unrec if enabled else off).append(dt)
    result = {
        "model": "ResNet-20, sc=off, Lightning ClassifierModule",
        "batch": batch,
        "data": source,
        "steps_per_run": steps,
        "warmup_dropped": warmup,
        "rounds": rounds,
        "schedule_when_on": "every_n_steps=2, batches_per_epoch=0, per_node=false",
        "off_step_s": median(off),
        "recorded_step_s": median(rec),
        "unrecorded_step_s": median(unrec),
        "recorded_ratio": median(rec) / median(off),
        "unrecorded_ratio": median(unrec) / median(off),
        "n": {"off": len(off), "recorded": len(rec), "unrecorded": len(unrec)},
        "off_all": off,
        "recorded_all": rec,
        "unrecorded_all": unrec,
    }
    write("grad_stats_cost", result)
    return result


if __name__ == "__main__":
    r = run()
    print({k: v for k, v in r.items() if not k.endswith("_all")})
