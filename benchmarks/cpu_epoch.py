"""CPU epoch time of ResNet-20 on CIFAR-10-shaped data (fast path), as a run pays it.

    python -m benchmarks.cpu_epoch                 # one full epoch: 50k train + 10k test images
    python -m benchmarks.cpu_epoch --train 5120    # a fraction, extrapolated (stated as such)

The real ``ClassifierModule`` (sc multi propagate, k=2, w=0.2 as ``conf/sc/on.yaml``) under a
Lightning ``Trainer`` without logger/checkpoints/progress bar, batch 128, pad-crop-flip
augmentation, validation on the 10k test images once per epoch (as the CIFAR runs do).
Reported: train seconds, validation seconds, and minutes per epoch scaled to 50k + 10k images.
Not part of ``make bench`` (an epoch takes minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import lightning as L
import torch

from benchmarks.common import BenchCIFAR, cifar_like, quiet_trainer, write
from benchmarks.framework import SGD_CFG
from scnet.lit.classifier import ClassifierModule
from scnet.models import CifarResNet

SC_ON = {"enabled": True, "k": 2, "strategy": "multi", "mode": "propagate", "weight": 0.2}
FULL_TRAIN, FULL_TEST = 50_000, 10_000


class _Clock(L.Callback):
    """Wall time of the training part and of the validation part of the epoch."""

    def __init__(self) -> None:
        self.marks: dict[str, float] = {}

    def on_train_epoch_start(self, trainer, module) -> None:
        self.marks["train_start"] = time.perf_counter()

    def on_validation_epoch_start(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            self.marks["val_start"] = time.perf_counter()

    def on_validation_epoch_end(self, trainer, module) -> None:
        if not trainer.sanity_checking:
            self.marks["val_end"] = time.perf_counter()


def run(depth: int = 20, n_train: int = FULL_TRAIN, n_test: int = FULL_TEST) -> dict[str, Any]:
    splits, source = cifar_like(n_train, n_test)
    dm = BenchCIFAR(splits, batch_size=128, eval_batch_size=500, augment=True)
    torch.manual_seed(0)
    module = ClassifierModule(CifarResNet(depth=depth), SC_ON, SGD_CFG, input_shape=(3, 32, 32))
    clock = _Clock()
    trainer = quiet_trainer([clock], max_epochs=1, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    m = clock.marks
    train_s, val_s = m["val_start"] - m["train_start"], m["val_end"] - m["val_start"]
    scaled = train_s * FULL_TRAIN / n_train + val_s * FULL_TEST / n_test
    result = {
        "model": f"ResNet-{depth}, sc multi propagate k=2",
        "data": source,
        "batch": 128,
        "train_images": n_train,
        "test_images": n_test,
        "train_s": train_s,
        "val_s": val_s,
        "train_img_s": n_train / train_s,
        "epoch_min_50k_10k": scaled / 60,
        "extrapolated": n_train != FULL_TRAIN or n_test != FULL_TEST,
        "torch_threads": torch.get_num_threads(),
    }
    write("cpu_epoch", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--train", type=int, default=FULL_TRAIN)
    parser.add_argument("--test", type=int, default=FULL_TEST)
    a = parser.parse_args()
    print(run(a.depth, a.train, a.test))
