"""LightningModule for classification, regression and multiple-choice QA with a short circuit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scnet.errors import ConfigError
from scnet.lit import optim
from scnet.lit.short_circuit import install_short_circuit
from scnet.sc import ShortCircuit
from scnet.speed import apply_channels_last, maybe_compile, to_channels_last

# Multiple choice: tap shapes are (T, H) for every encoder layer whatever T is, so the SC
# planner's probe forward uses a short sequence.
PROBE_LENGTH = 16


class ClassifierModule(L.LightningModule):
    """Owns a backbone and its SC hooks; logs loss and accuracy for train/val/test.

    Built by ``conf/model/default.yaml`` (``scnet.train`` adds the backbone and what the data
    module knows: ``input_shape`` and ``task``).

    Args:
        backbone: any :class:`scnet.models.Backbone` (forward → logits, ``sc_taps()``).
        sc: the ``sc`` config (enabled, weight, k, rear, strategy, mode, connections).
        optimizer: a ``_partial_`` torch optimizer (``optim.optimizer``), completed with the
            parameter groups; a flat dict such as ``{"name": "sgd", "lr": 0.1}`` also works
            (Python callers, see :func:`scnet.lit.optim.factories`).
        input_shape: one sample's shape, used to find tap shapes for the planner.
        task: ``classification`` (cross-entropy, accuracy), ``regression`` (MSE) or
            ``multiple_choice`` (batches of token tensors, cross-entropy over the options).
        channels_last: NHWC weights and input batches (see :mod:`scnet.speed`).
        compile: ``torch.compile`` the backbone (see :func:`scnet.speed.maybe_compile`).
        lr_schedule: a ``_partial_`` :func:`scnet.lit.optim.schedule` (``optim.lr_schedule``),
            completed with the optimizer and the run's step counts; None with a flat dict.
        decay_norm_and_bias: ``optim.decay_norm_and_bias`` (see :func:`optim.param_groups`).
    """

    def __init__(
        self,
        backbone: nn.Module,
        sc: Mapping[str, Any],
        optimizer: optim.OptimizerFactory | Mapping[str, Any],
        input_shape: tuple[int, ...],
        task: str = "classification",
        channels_last: bool = False,
        compile: bool = False,
        lr_schedule: optim.ScheduleFactory | None = None,
        decay_norm_and_bias: bool | None = None,
    ) -> None:
        super().__init__()
        if task == "multiple_choice" and getattr(backbone, "task", None) != task:
            raise ConfigError(
                f"backbone {type(backbone).__name__} cannot do multiple-choice QA: choose "
                "backbone=bert, roberta or minilm"
            )
        self.backbone = backbone
        self.task = task
        if isinstance(optimizer, Mapping):
            flat = dict(optimizer)
            optimizer, lr_schedule = optim.factories(flat)
            decay_norm_and_bias = flat.get("decay_norm_and_bias", True)
        self.optimizer_factory = optimizer
        self.schedule_factory = lr_schedule
        self.decay_norm_and_bias = True if decay_norm_and_bias is None else decay_norm_and_bias
        if task == "multiple_choice":
            n_choices, length = input_shape
            input_shape = (n_choices, min(length, PROBE_LENGTH))
            channels_last = False  # an image-layout option: meaningless for token batches
        example = torch.zeros(2, *input_shape)
        self.short_circuit: ShortCircuit | None = install_short_circuit(backbone, sc, example)
        self.best_val_acc = float("-inf")
        self.channels_last = channels_last
        if channels_last:
            apply_channels_last(backbone)
        # Kept out of the module tree (no second copy of the weights in the state dict).
        self.__dict__["_run_backbone"] = maybe_compile(backbone, compile, self.short_circuit)

    @property
    def sc_connections(self) -> list[list[int]]:
        return [list(c) for c in self.short_circuit.connections] if self.short_circuit else []

    def forward(self, x: Tensor | Mapping[str, Tensor]) -> Tensor:
        if isinstance(x, Mapping):  # multiple choice: {input_ids, attention_mask, ...}
            return self.backbone(**x)
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

    def make_optimizer(self) -> torch.optim.Optimizer:
        groups = optim.param_groups(self, {"decay_norm_and_bias": self.decay_norm_and_bias})
        return optim.make_optimizer(self.optimizer_factory, groups)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.make_optimizer()
        total_steps = int(self.trainer.estimated_stepping_batches)
        max_epochs = max(int(self.trainer.max_epochs or 1), 1)
        steps_per_epoch = max(total_steps // max_epochs, 1)
        schedule = self.schedule_factory(
            optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["scnet_best_val"] = self.best_val_acc

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_val_acc = checkpoint.get("scnet_best_val", float("-inf"))
