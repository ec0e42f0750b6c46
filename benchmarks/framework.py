"""2. Framework overhead: our Lightning run vs a plain PyTorch loop (same model, data, optimizer).

Both train ResNet-20 (sc off) on the same device-resident batches (``DeviceBatches``) with
the same SGD. The Lightning side is the real ``ClassifierModule`` (per-step loss/acc logging,
the non-finite-loss check) under a ``Trainer`` configured like ``conf/trainer/default.yaml``
minus checkpoints, logger and progress bar. Steady-state time per step is measured from the
start of the first timed batch to the end of the last (warm-up steps excluded); the two
sides alternate in rounds so machine load hits both alike.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from benchmarks.common import BenchCIFAR, cifar_like, median, quiet_trainer, sgd, sync, write
from scnet.data.base import DeviceBatches
from scnet.lit.classifier import ClassifierModule
from scnet.models import CifarResNet

SGD_CFG = {
    "name": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "nesterov": False,
    "scheduler": "constant",
}


class _StepClock(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if batch_idx == self.warmup:
            sync(module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        sync(module.device)
        self.end, self.steps = time.perf_counter(), batch_idx + 1 - self.warmup


def lightning_step_s(dm: BenchCIFAR, steps: int, warmup: int, accelerator: str) -> float:
    torch.manual_seed(0)
    module = ClassifierModule(
        CifarResNet(depth=20), {"enabled": False}, SGD_CFG, input_shape=(3, 32, 32)
    )
    clock = _StepClock(warmup)
    trainer = quiet_trainer(
        [clock], accelerator, max_steps=steps + warmup, limit_val_batches=0, log_every_n_steps=10
    )
    trainer.fit(module, datamodule=dm)
    return (clock.end - clock.start) / clock.steps


def plain_step_s(dm: BenchCIFAR, steps: int, warmup: int, device: torch.device) -> float:
    torch.manual_seed(0)
    model = CifarResNet(depth=20).to(device)
    opt = sgd(model)
    model.train()
    split = dm.splits.train
    batches = DeviceBatches(
        split,
        dm.batch_size,
        device=device,
        shuffle=True,
        augment=dm.augmentation(),
        mean=dm.mean,
        std=dm.std,
    )
    start = 0.0
    for i, (x, y) in enumerate(batches):
        if i == warmup:
            sync(device)
            start = time.perf_counter()
        if i == warmup + steps:
            break
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    sync(device)
    return (time.perf_counter() - start) / steps


def run(
    batch: int = 64, steps: int = 15, warmup: int = 3, rounds: int = 4, quick: bool = False
) -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    if quick:
        steps, rounds = 8, 2
    splits, source = cifar_like(batch * (steps + warmup + 1))
    dm = BenchCIFAR(splits, batch_size=batch, augment=True)
    dm.setup("fit")
    light, plain = [], []
    for _ in range(rounds):  # A B A B ...: drift and load hit both sides alike
        plain.append(plain_step_s(dm, steps, warmup, device))
        light.append(lightning_step_s(dm, steps, warmup, accelerator))
    per_round = [a / b for a, b in zip(light, plain, strict=True)]
    result = {
        "model": "ResNet-20, sc=off",
        "batch": batch,
        "device": str(device),
        "data": source,
        "steps": steps,
        "warmup": warmup,
        "rounds": rounds,
        "plain_step_s": median(plain),
        "lightning_step_s": median(light),
        "plain_all": plain,
        "lightning_all": light,
        "ratio": median(light) / median(plain),
        "ratio_per_round": per_round,
        "target": 1.05,
    }
    write("framework", result)
    return result


if __name__ == "__main__":
    print(run(quick=True))
