"""How singular the hidden representations become: condition number per layer → ``condition.csv``.

Seed 003 (Oyedotun et al.) traces the failure of very deep plain nets to hidden
representations near singularity: the units of a deep layer respond alike to different
samples, so the (samples × units) activation matrix H of that layer has a huge condition
number κ(H) = σ_max / σ_min, and a high condition number means bad optimization.

:func:`condition_numbers` computes κ per layer on a fixed batch, in eval mode. The layers are
``backbone.hidden(x)`` (the post-activation outputs) where the backbone defines it
(``plainnet``), else the outputs of its SC taps. A conv map is flattened to one row per sample.
A rank-deficient H (e.g. dead ReLU units: a column of zeros) has σ_min = 0; κ is then capped at
1/ε of float64 (4.5e15) so that logs, CSV and JSON stay finite: any κ ≥ 1e15 reads "singular".

:class:`ConditionCallback` (``condition.enabled=true``) fixes the first ``samples`` training
inputs of the run and, after every ``every_n_epochs``-th training epoch (and the last one),
appends one row per layer to ``<run dir>/condition.csv`` (``epoch, layer, cond, log10_cond``) and
logs ``cond/log10_median`` and ``cond/log10_last`` (the last hidden layer), which therefore reach
``metrics.csv`` and ``result.json``. Cost: one eval forward and one SVD per layer per recorded
epoch; nothing when off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from scnet.errors import ConfigError
from scnet.utils.io import append_csv

CONDITION_FILE = "condition.csv"
COLUMNS = ["epoch", "layer", "cond", "log10_cond"]
#: κ of a rank-deficient matrix: 1/ε of float64, the largest κ float64 SVD can resolve.
SINGULAR = 1.0 / torch.finfo(torch.float64).eps


def representations(backbone: nn.Module, x: Tensor) -> list[Tensor]:
    """Per-layer hidden representations for ``x``: ``backbone.hidden(x)`` or the tap outputs."""
    hidden = getattr(backbone, "hidden", None)
    if callable(hidden):
        return list(hidden(x))
    outputs: list[Tensor] = []

    def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
        outputs.append(output[0] if isinstance(output, tuple) else output)

    handles = [tap.register_forward_hook(keep) for tap in backbone.sc_taps()]
    try:
        backbone(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


@torch.no_grad()
def condition_numbers(backbone: nn.Module, x: Tensor) -> list[float]:
    """κ = σ_max / σ_min of each layer's (samples × units) representation, in eval mode."""
    was_training = backbone.training
    backbone.eval()
    try:
        values = []
        for h in representations(backbone, x):
            s = torch.linalg.svdvals(h.flatten(1).double())
            top, bottom = float(s[0]), float(s[-1])
            values.append(min(top / bottom, SINGULAR) if bottom > 0 else SINGULAR)
        return values
    finally:
        backbone.train(was_training)


class ConditionCallback(L.Callback):
    """Record κ per layer on a fixed batch of training inputs after training epochs."""

    def __init__(self, run_dir: str | Path, samples: int = 256, every_n_epochs: int = 1) -> None:
        if int(samples) < 2:
            raise ConfigError(f"condition.samples={samples} is invalid: use 2 or more")
        if int(every_n_epochs) < 1:
            raise ConfigError(
                f"condition.every_n_epochs={every_n_epochs} is invalid: use 1 or more"
            )
        self.path = Path(run_dir) / CONDITION_FILE
        self.samples = int(samples)
        self.every = int(every_n_epochs)
        self._inputs: list[Tensor] = []

    def _held(self) -> int:
        return sum(len(x) for x in self._inputs)

    def state_dict(self) -> dict[str, Any]:
        # The probe batch travels in the checkpoint, so a resumed run measures κ on the same
        # inputs as an uninterrupted one (condition.csv is then identical).
        return {"inputs": [x.cpu() for x in self._inputs]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._inputs = list(state_dict.get("inputs", []))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # The first training inputs of the run, kept for every epoch (and in checkpoints).
        if self._held() < self.samples and isinstance(batch, (list, tuple)):
            x = batch[0]
            if isinstance(x, Tensor):
                self._inputs.append(x[: self.samples - self._held()].detach().clone())

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if not self._inputs or not ((epoch + 1) % self.every == 0 or last):
            return
        backbone = getattr(pl_module, "backbone", pl_module)
        values = condition_numbers(backbone, torch.cat(self._inputs).to(pl_module.device))
        if not values:
            return
        logs = [math.log10(v) for v in values]
        if trainer.is_global_zero:
            self._append(epoch, values, logs)
        pl_module.log("cond/log10_median", float(torch.tensor(logs).median()))
        pl_module.log("cond/log10_last", logs[-1])

    def _append(self, epoch: int, values: list[float], logs: list[float]) -> None:
        pairs = enumerate(zip(values, logs, strict=True))
        append_csv(
            self.path, COLUMNS, ([epoch, i, f"{v:.6g}", f"{lg:.4f}"] for i, (v, lg) in pairs)
        )


def build_condition(cfg: Mapping[str, Any] | None, run_dir: Path) -> list[L.Callback]:
    """The callback from the ``condition`` config block; ``[]`` when off."""
    cfg = dict(cfg or {})
    if not cfg.get("enabled", False):
        return []
    unknown = set(cfg) - {"enabled", "samples", "every_n_epochs"}
    if unknown:
        raise ConfigError(
            f"condition: unknown keys {sorted(unknown)}: allowed enabled, samples, every_n_epochs"
        )
    cfg.pop("enabled")
    return [ConditionCallback(run_dir, **cfg)]
