"""Optimizers and learning-rate schedules from the ``optim`` config group."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from scnet.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("multistep", "cosine", "constant", "linear")


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], cfg: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """The optimizer over ``params`` (tensors, or groups whose own keys override ``cfg``)."""
    name = cfg.get("name", "sgd")
    lr = float(cfg.get("lr", 0.1))
    if not lr > 0:
        raise ConfigError(f"optim.lr={cfg.get('lr')} is invalid: must be > 0")
    decay = float(cfg.get("weight_decay", 0.0))
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=lr, momentum=float(cfg.get("momentum", 0.9)),
            weight_decay=decay, nesterov=bool(cfg.get("nesterov", False)),
        )  # fmt: skip
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=decay, eps=float(cfg.get("eps", 1e-8)))
    raise ConfigError(f"optim.name={name!r} is invalid: choose one of {', '.join(OPTIMIZERS)}")


def lr_factor(cfg: Mapping[str, Any], total_steps: int, steps_per_epoch: int):
    """A step-indexed multiplier of ``lr`` implementing warm-up and the chosen decay.

    Milestones are fractions of training (0.5 = halfway) so one recipe serves any length.
    """
    scheduler = cfg.get("scheduler", "constant")
    if scheduler not in SCHEDULERS:
        raise ConfigError(
            f"optim.scheduler={scheduler!r} is invalid: choose one of {', '.join(SCHEDULERS)}"
        )
    lr = float(cfg.get("lr", 0.1))
    warmup_steps = int(round(float(cfg.get("warmup_epochs", 0)) * steps_per_epoch))
    warmup_steps += int(cfg.get("warmup_steps", 0) or 0)
    # BERT's recipe: warm up over a fraction of all steps (Devlin et al.: 0.1).
    warmup_steps += int(round(float(cfg.get("warmup_ratio", 0) or 0) * total_steps))
    warmup_factor = float(cfg.get("warmup_lr") or lr) / lr
    milestones = [int(m * total_steps) for m in cfg.get("milestones", [])]
    gamma = float(cfg.get("gamma", 0.1))
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            # He et al.'s constant warm-up for very deep nets; linear ramp for transformers.
            return step / warmup_steps if scheduler == "linear" else warmup_factor
        if scheduler == "multistep":
            return gamma ** sum(step >= m for m in milestones)
        if scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        if scheduler == "linear":
            return max(0.0, (total - step) / max(total - warmup_steps, 1))
        return 1.0

    return factor


def no_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Biases and normalisation weights (every ≤1-d parameter: LayerNorm/BatchNorm scale and
    shift, biases), which BERT's recipe exempts from weight decay (Devlin et al.'s code:
    ``["bias", "LayerNorm.weight"]``; by shape, so BatchNorm and other norms count too)."""
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(module: torch.nn.Module, cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Trainable parameters as optimizer groups.

    ``optim.decay_norm_and_bias: true`` (the default; He et al.'s ResNet recipe and
    pytorch_resnet_cifar10 decay every parameter, BatchNorm and biases included): one group.
    ``false`` (``optim=adamw``, the BERT recipe): a second group with ``weight_decay: 0`` for
    what ``no_decay`` picks.
    """
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    decay_all = cfg.get("decay_norm_and_bias", True)
    if not isinstance(decay_all, bool):
        raise ConfigError(
            f"optim.decay_norm_and_bias={decay_all!r} is invalid: choose one of true, false"
        )
    if decay_all:
        return [{"params": [p for _, p in named]}]
    decay = [p for n, p in named if not no_decay(n, p)]
    exempt = [p for n, p in named if no_decay(n, p)]
    groups = [{"params": decay}, {"params": exempt, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def configure(module: Any, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``configure_optimizers`` body shared by the Lightning modules (per-step schedule)."""
    optimizer = build_optimizer(param_groups(module, cfg), cfg)
    trainer = module.trainer
    total_steps = int(trainer.estimated_stepping_batches)
    max_epochs = max(int(trainer.max_epochs or 1), 1)
    steps_per_epoch = max(total_steps // max_epochs, 1)
    schedule = LambdaLR(optimizer, lr_factor(cfg, total_steps, steps_per_epoch))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
