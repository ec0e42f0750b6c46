"""Per-tap gradient and activation statistics during training → ``grad_stats.csv`` (+ W&B).

For every tap of ``backbone.sc_taps()`` (the same endpoints the short circuit uses: each
Linear/Conv output, i.e. the pre-activation Z) and every *recorded* training step, one row:

* ``w_grad_mean``, ``w_grad_abs_mean``, ``w_grad_norm``: mean, mean |·| and L2 norm of the tap
  module's **weight gradient** ∂J/∂W (read after backward, before the optimizer step, so it
  includes whatever the short circuit added);
* ``out_grad_mean``, ``out_grad_abs_mean``, ``out_grad_norm``: the same for the tap's **output
  sensitivity** δ = ∂J/∂Z, per sample (the batch-mean of δ; the norm is divided by √N so runs
  with different batch sizes compare);
* ``act_mean``, ``act_std``: mean and std of the tap output Z over the batch and all units.

The paper's "mean gradient of the neurons of a layer" (Fig. 5/6) is ``out_grad_mean`` /
``w_grad_mean``; the figures say which one they plot.

Cost: nothing is registered when the callback is not built (``grad_stats.enabled=false``).
When on, hooks exist only during recorded steps (installed in ``on_train_batch_start``,
removed after backward), so unrecorded steps run the plain model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from scnet.errors import ConfigError
from scnet.utils.io import append_csv

GRAD_STATS_FILE = "grad_stats.csv"
NODES_FILE = "grad_nodes.csv"
COLUMNS = [
    "step", "epoch", "batch", "tap", "layer", "stage",
    "w_grad_mean", "w_grad_abs_mean", "w_grad_norm",
    "out_grad_mean", "out_grad_abs_mean", "out_grad_norm",
    "act_mean", "act_std",
]  # fmt: skip
NODE_COLUMNS = ["step", "epoch", "tap", "node", "act", "grad"]
#: Taps with at most this many output units get per-node rows when ``per_node`` is on.
MAX_NODES = 512


class GradStatsCallback(L.Callback):
    """Record per-tap gradient/activation statistics at chosen training steps.

    A step is recorded when ``every_n_steps > 0`` and ``global_step % every_n_steps == 0``,
    or when its batch index within the epoch is ``< batches_per_epoch`` (and the epoch is in
    ``epochs``, when that list is given). ``per_node`` also writes the batch-mean activation
    and output gradient of every unit (taps with ≤ 512 units) to ``grad_nodes.csv``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        every_n_steps: int = 0,
        batches_per_epoch: int = 5,
        epochs: Sequence[int] | None = None,
        per_node: bool = False,
        log_wandb: bool = True,
    ) -> None:
        super().__init__()
        _check_int("grad_stats.every_n_steps", every_n_steps)
        _check_int("grad_stats.batches_per_epoch", batches_per_epoch)
        self.path = Path(run_dir) / GRAD_STATS_FILE
        self.nodes_path = Path(run_dir) / NODES_FILE
        self.every_n_steps = every_n_steps
        self.batches_per_epoch = batches_per_epoch
        self.epochs = None if epochs is None else {int(e) for e in epochs}
        self.per_node = per_node
        self.log_wandb = log_wandb
        self._handles: list[Any] = []
        self._acts: dict[int, tuple[float, float, Tensor | None]] = {}
        self._out_grads: dict[int, Tensor] = {}
        self._batch_idx = -1

    # ------------------------------------------------------------------ schedule
    def should_record(self, global_step: int, epoch: int, batch_idx: int) -> bool:
        if self.every_n_steps > 0 and global_step % self.every_n_steps == 0:
            return True
        in_epochs = self.epochs is None or epoch in self.epochs
        return in_epochs and batch_idx < self.batches_per_epoch

    # ------------------------------------------------------------------ lightning hooks
    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._remove()
        if not self.should_record(trainer.global_step, trainer.current_epoch, batch_idx):
            return
        self._batch_idx = batch_idx
        for index, tap in enumerate(_taps(pl_module), start=1):
            self._handles.append(tap.register_forward_hook(self._forward_hook(index)))

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any
    ) -> None:
        if not self._handles:
            return
        rows = self._rows(trainer, pl_module)
        self._remove()
        self._write(rows)
        self._log(trainer, rows)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._remove()

    # ------------------------------------------------------------------ internals
    def _forward_hook(self, index: int) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
            if not (torch.is_tensor(output) and output.requires_grad):
                return
            z = output.detach()
            node_act = z.flatten(1).mean(0) if self.per_node else None
            self._acts[index] = (float(z.mean()), float(z.std()), node_act)
            n = z.shape[0]

            def grad_hook(grad: Tensor) -> None:
                # δ summed over the batch by autograd is per-sample-mean-scaled by the loss;
                # rescale by N so the numbers are per-sample sensitivities.
                self._out_grads[index] = grad.detach() * n

            output.register_hook(grad_hook)

        return hook

    def _rows(self, trainer: L.Trainer, pl_module: L.LightningModule) -> list[dict[str, Any]]:
        taps = _taps(pl_module)
        stages = _stages(pl_module, len(taps))
        rows = []
        for index, tap in enumerate(taps, start=1):
            weight = getattr(tap, "weight", None)
            wg = weight.grad if isinstance(weight, Tensor) else None
            og = self._out_grads.get(index)
            act = self._acts.get(index, (math.nan, math.nan, None))
            row = {
                "step": trainer.global_step, "epoch": trainer.current_epoch,
                "batch": self._batch_idx, "tap": index, "layer": type(tap).__name__,
                "stage": stages[index - 1],
                **_summary("w_grad", wg, per_sample=False), **_summary("out_grad", og),
                "act_mean": act[0], "act_std": act[1],
            }  # fmt: skip
            rows.append(row)
            if self.per_node and og is not None and act[2] is not None:
                self._write_nodes(trainer, index, act[2], og.flatten(1).mean(0))
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        append_csv(self.path, COLUMNS, ([row[c] for c in COLUMNS] for row in rows))

    def _write_nodes(self, trainer: L.Trainer, tap: int, act: Tensor, grad: Tensor) -> None:
        if act.numel() > MAX_NODES:
            return
        step, epoch = trainer.global_step, trainer.current_epoch
        pairs = enumerate(zip(act.tolist(), grad.tolist(), strict=True))
        append_csv(
            self.nodes_path, NODE_COLUMNS, ([step, epoch, tap, n, a, g] for n, (a, g) in pairs)
        )

    def _log(self, trainer: L.Trainer, rows: list[dict[str, Any]]) -> None:
        if not self.log_wandb:
            return
        loggers = [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]
        if not loggers:
            return
        metrics = {
            f"grad/tap{row['tap']:03d}/{key}": row[key]
            for row in rows
            for key in ("w_grad_abs_mean", "w_grad_norm", "out_grad_abs_mean", "act_std")
            if not math.isnan(row[key])
        }
        for logger in loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._acts.clear()
        self._out_grads.clear()


def _summary(prefix: str, grad: Tensor | None, per_sample: bool = True) -> dict[str, float]:
    if grad is None:
        return {
            f"{prefix}_mean": math.nan,
            f"{prefix}_abs_mean": math.nan,
            f"{prefix}_norm": math.nan,
        }
    g = grad.double()
    norm = float(g.norm())
    if per_sample:
        g = g.mean(0)  # batch-mean sensitivity per unit
        norm /= math.sqrt(grad.shape[0])
    return {
        f"{prefix}_mean": float(g.mean()),
        f"{prefix}_abs_mean": float(g.abs().mean()),
        f"{prefix}_norm": norm,
    }


def _taps(pl_module: L.LightningModule) -> list[nn.Module]:
    backbone = getattr(pl_module, "backbone", pl_module)
    return list(backbone.sc_taps())  # type: ignore[operator]


def _stages(pl_module: L.LightningModule, n: int) -> list[int]:
    """Stage of each tap where the backbone says (``stage_of_tap()``), else 1."""
    backbone = getattr(pl_module, "backbone", pl_module)
    fn = getattr(backbone, "stage_of_tap", None)
    return list(fn()) if callable(fn) else [1] * n


def _check_int(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key}={value!r} is invalid: must be an integer >= 0")


def build_grad_stats(cfg: Mapping[str, Any] | None, run_dir: Path) -> list[L.Callback]:
    """The callback from the ``grad_stats`` config block; ``[]`` (no hooks at all) when off."""
    cfg = dict(cfg or {})
    if not cfg.get("enabled", False):
        return []
    unknown = set(cfg) - {
        "enabled",
        "every_n_steps",
        "batches_per_epoch",
        "epochs",
        "per_node",
        "log_wandb",
    }
    if unknown:
        raise ConfigError(f"grad_stats: unknown keys {sorted(unknown)}")
    cfg.pop("enabled")
    return [GradStatsCallback(run_dir, **cfg)]
