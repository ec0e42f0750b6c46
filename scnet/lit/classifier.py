"""LightningModule for image / vector classification (and regression) with a short circuit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scnet.lit import optim
from scnet.lit.short_circuit import install_short_circuit
from scnet.sc import ShortCircuit
from scnet.speed import apply_channels_last, maybe_compile, to_channels_last


class ClassifierModule(L.LightningModule):
    """Owns a backbone and its SC hooks; logs loss and accuracy for train/val/test.

    Args:
        backbone: any scnet backbone (forward → logits, ``sc_taps()``).
        sc: the ``sc`` config (enabled, weight, k, rear, strategy, mode, connections).
        optim: the ``optim`` config.
        input_shape: one sample's shape, used to find tap shapes for the planner.
        task: ``classification`` (cross-entropy, accuracy) or ``regression`` (MSE).
        channels_last: NHWC weights and input batches (see :mod:`scnet.speed`).
        compile: ``torch.compile`` the backbone (skipped, with a warning, while an SC is
            attached: compiled graphs drop its gradient hooks).
    """

    def __init__(
        self,
        backbone: nn.Module,
        sc: Mapping[str, Any],
        optim: Mapping[str, Any],
        input_shape: tuple[int, ...],
        task: str = "classification",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.optim_cfg = dict(optim)
        self.task = task
        example = torch.zeros(2, *input_shape)
        self.short_circuit: ShortCircuit | None = install_short_circuit(backbone, sc, example)
        self.best_val_acc = float("-inf")
        self.channels_last = channels_last
        if channels_last:
            apply_channels_last(backbone)
        # Kept out of the module tree (no second copy of the weights in the state dict).
        self.__dict__["_run_backbone"] = maybe_compile(
            backbone, compile, self.short_circuit
        )

    @property
    def sc_connections(self) -> list[list[int]]:
        return [list(c) for c in self.short_circuit.connections] if self.short_circuit else []

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last:
            x = to_channels_last(x)
        return self.__dict__["_run_backbone"](x)

    def _step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        out = self(x)
        # Under DDP only training is sharded (each process evaluates the whole val/test
        # split), so only train metrics need averaging over processes; once per epoch.
        sync = stage == "train"
        if self.task == "regression":
            loss = F.mse_loss(out, y)
            self.log(
                f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, sync_dist=sync
            )
            return loss
        loss = F.cross_entropy(out, y)
        acc = (out.argmax(1) == y).float().mean()
        self.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "train",
            sync_dist=sync,
        )  # fmt: skip
        self.log(f"{stage}/acc", acc, on_step=False, on_epoch=True, prog_bar=True, sync_dist=sync)
        return loss

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        loss = self._step(batch, "train")
        if not torch.isfinite(loss):
            # A NaN/inf loss never recovers; stop with a clear reason instead of training on.
            raise FloatingPointError(
                f"{'NaN' if torch.isnan(loss) else 'infinite'} loss at step {self.global_step} "
                f"(epoch {self.current_epoch}); lower optim.lr, add optim.warmup_epochs or set "
                "trainer.gradient_clip_val"
            )
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        key = "val/acc" if self.task != "regression" else "val/loss"
        value = self.trainer.callback_metrics.get(key)
        if value is None:
            return
        score = float(value) if self.task != "regression" else -float(value)
        self.best_val_acc = max(self.best_val_acc, score)
        name = "val/acc_best" if self.task != "regression" else "val/loss_best"
        self.log(name, abs(self.best_val_acc) if self.task == "regression" else self.best_val_acc)

    def on_train_epoch_start(self) -> None:
        self.log(
            "lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=False, on_epoch=True
        )

    def configure_optimizers(self) -> dict[str, Any]:
        return optim.configure(self, self.optim_cfg)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["scnet_best_val"] = self.best_val_acc

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_val_acc = checkpoint.get("scnet_best_val", float("-inf"))
