"""Optimizers and learning-rate schedules: the ``optim`` config group's objects.

``conf/optim/<name>.yaml`` holds the knobs a recipe sets (``optim.lr``, ``optim.scheduler``…)
and two ``_partial_`` nodes built from them: ``optim.optimizer`` (a torch optimizer class,
waiting for its parameters) and ``optim.lr_schedule`` (:func:`schedule`, waiting for the
optimizer and the run's step counts). The LightningModule receives both objects and completes
them in ``configure_optimizers``; nothing here reads a config by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from scnet.errors import ConfigError

SCHEDULERS = ("multistep", "cosine", "constant", "linear")

OptimizerFactory = Callable[..., torch.optim.Optimizer]
ScheduleFactory = Callable[..., LambdaLR]


def lr_factor(
    name: str,
    total_steps: int,
    steps_per_epoch: int,
    *,
    lr: float,
    milestones: Sequence[float] = (),
    gamma: float = 0.1,
    warmup_epochs: float = 0,
    warmup_steps: int = 0,
    warmup_ratio: float = 0,
    warmup_lr: float | None = None,
) -> Callable[[int], float]:
    """A step-indexed multiplier of ``lr`` implementing warm-up and the chosen decay.

    Milestones are fractions of training (0.5 = halfway) so one recipe serves any length.
    """
    if name not in SCHEDULERS:
        raise ConfigError(
            f"optim.scheduler={name!r} is invalid: choose one of {', '.join(SCHEDULERS)}"
        )
    warmup = int(round(float(warmup_epochs) * steps_per_epoch)) + int(warmup_steps or 0)
    # BERT's recipe: warm up over a fraction of all steps (Devlin et al.: 0.1).
    warmup += int(round(float(warmup_ratio or 0) * total_steps))
    warmup_factor = float(warmup_lr or lr) / lr
    marks = [int(m * total_steps) for m in milestones]
    total = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup:
            # He et al.'s constant warm-up for very deep nets; linear ramp for transformers.
            return step / warmup if name == "linear" else warmup_factor
        if name == "multistep":
            return gamma ** sum(step >= m for m in marks)
        if name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        if name == "linear":
            return max(0.0, (total - step) / max(total - warmup, 1))
        return 1.0

    return factor


def schedule(
    optimizer: torch.optim.Optimizer, *, total_steps: int, steps_per_epoch: int, name: str,
    **options: Any,
) -> LambdaLR:  # fmt: skip
    """The per-step schedule (``optim.lr_schedule``'s ``_target_``) over ``optimizer``."""
    lr = float(optimizer.defaults["lr"])
    return LambdaLR(optimizer, lr_factor(name, total_steps, steps_per_epoch, lr=lr, **options))


def no_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Biases and normalisation weights (every ≤1-d parameter: LayerNorm/BatchNorm scale and
    shift, biases), which BERT's recipe exempts from weight decay (Devlin et al.'s code:
    ``["bias", "LayerNorm.weight"]``; by shape, so BatchNorm and other norms count too)."""
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(module: torch.nn.Module, cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Trainable parameters as optimizer groups.

    ``optim.decay_norm_and_bias: true`` (He et al.'s ResNet recipe and pytorch_resnet_cifar10
    decay every parameter, BatchNorm and biases included): one group. ``false`` (``optim=adamw``,
    the BERT recipe): a second group with ``weight_decay: 0`` for what ``no_decay`` picks.
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


# ------------------------------------------------------------------ flat dicts (Python callers)
_CLASSES = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
_OPTIMIZER_KEYS = {
    "sgd": ("lr", "momentum", "weight_decay", "nesterov"),
    "adam": ("lr", "weight_decay", "eps"),
    "adamw": ("lr", "weight_decay", "eps"),
}
_SCHEDULE_KEYS = ("milestones", "gamma", "warmup_epochs", "warmup_steps", "warmup_ratio",
                  "warmup_lr")  # fmt: skip


def factories(cfg: Mapping[str, Any]) -> tuple[OptimizerFactory, ScheduleFactory]:
    """The two objects of an ``optim`` config: its ``optimizer``/``lr_schedule`` nodes when
    present (instantiated), else built from a flat dict such as ``{"name": "sgd", "lr": 0.1}``.

    Why the flat form: benchmarks and tests build modules in Python without Hydra; it maps
    the same keys the YAML nodes read, so both give the same optimizer.
    """
    if "optimizer" in cfg:  # an optim yaml: its nodes read the (possibly changed) knobs
        from hydra.utils import instantiate
        from omegaconf import OmegaConf

        node = OmegaConf.create(dict(cfg))
        return instantiate(node.optimizer), instantiate(node.lr_schedule)
    name = cfg.get("name", "sgd")
    if name not in _CLASSES:
        raise ConfigError(f"optim.name={name!r} is invalid: choose one of {', '.join(_CLASSES)}")
    # Only the keys given: torch's and schedule()'s own defaults fill the rest (the run's
    # defaults live in conf/optim/*.yaml, not here).
    kwargs = {k: cfg[k] for k in _OPTIMIZER_KEYS[name] if k in cfg}
    options = {k: cfg[k] for k in _SCHEDULE_KEYS if cfg.get(k) is not None}
    return (
        partial(_CLASSES[name], **kwargs),
        partial(schedule, name=cfg.get("scheduler", "constant"), **options),
    )


def build_optimizer(
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], cfg: Mapping[str, Any]
) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` over ``params`` (tensors, or groups with their own keys)."""
    return make_optimizer(factories(cfg)[0], params, cfg.get("name"))


def make_optimizer(
    factory: OptimizerFactory, params: Iterable[Any], name: str | None = None
) -> torch.optim.Optimizer:
    """``factory(params)`` with torch's argument errors as one line naming ``optim.*``."""
    try:
        optimizer = factory(params)
    except ValueError as err:  # torch: "Invalid learning rate: -1.0"
        raise ConfigError(f"optim: {str(err).splitlines()[0]}") from None
    lr = optimizer.defaults.get("lr")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(f"optim.lr={lr} is invalid: must be > 0")
    if name is not None and type(optimizer).__name__.lower() != str(name).lower():
        raise ConfigError(
            f"optim.name={name!r} does not match the optimizer it builds "
            f"({type(optimizer).__name__}): choose the optimizer with optim=sgd|adam|adamw"
        )
    return optimizer
