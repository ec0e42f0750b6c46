"""Let a backbone act after each optimizer step and report its own metrics.

Backbones stay plain ``nn.Module``s; two optional methods of the contract
(:class:`scnet.models.BackboneHooks`) are honoured, always (they are part of the network,
e.g. a max-norm constraint, so ``callbacks=none`` keeps them):

* ``after_optimizer_step()``: called after every optimizer step (e.g. PlainNet's max-norm
  projection, which must hold for the weights every forward pass sees);
* ``step_metrics() -> dict[str, float]``: logged (train, per epoch) after each training
  batch, e.g. the fixed-point net's iterations per input and its non-converged fraction.
"""

from __future__ import annotations

from typing import Any

import lightning as L


class BackboneHooks(L.Callback):
    """Calls the backbone's optional ``after_optimizer_step`` / ``step_metrics``."""

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        backbone = getattr(pl_module, "backbone", pl_module)
        after = getattr(backbone, "after_optimizer_step", None)
        if callable(after):
            after()
        metrics = getattr(backbone, "step_metrics", None)
        if callable(metrics):
            for key, value in metrics().items():
                pl_module.log(f"train/{key}", value, on_step=False, on_epoch=True)


def needs_backbone_hooks(backbone: Any) -> bool:
    """Only install the callback for backbones that use it (zero cost for the rest)."""
    return any(
        callable(getattr(backbone, m, None)) for m in ("after_optimizer_step", "step_metrics")
    )
