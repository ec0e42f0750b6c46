"""A callback that makes every training epoch last at least ``seconds`` (signal tests).

A run must still be training when a test signals it. Tiny epochs take ~1 s on a loaded CI
machine and ~0.05 s on an idle one, so the run could end between the first checkpoint and the
signal; padding each epoch makes "still training" hold whatever the machine's speed.
Used from a subprocess as ``+callbacks.slow._target_=tests.helpers.slow.SlowEpochs``.
"""

from __future__ import annotations

import time

import lightning as L


class SlowEpochs(L.Callback):
    def __init__(self, seconds: float = 0.5) -> None:
        self.seconds = seconds

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        time.sleep(self.seconds)
