"""One training run: config → data, backbone, SC, Lightning trainer → ``result.json``.

The CLI (``scnet.cli.run``) wraps this with Hydra and error reporting; sweeps call the CLI
in a subprocess per trial.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from scnet.errors import ConfigError
from scnet.lit.backbone_hooks import extra_callbacks
from scnet.lit.classifier import ClassifierModule
from scnet.lit.loggers import build_loggers
from scnet.lit.multiple_choice import MultipleChoiceModule
from scnet.models import count_parameters
from scnet.secrets import redact
from scnet.speed import FirstStepTimer

log = logging.getLogger("scnet")
RESULT_FILE = "result.json"


def to_container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def build(cfg_section: DictConfig, what: str, **kwargs: Any) -> Any:
    """Instantiate a config group (``_target_``), turning Hydra's errors into one line."""
    node = to_container(cfg_section)
    node.pop("name", None)  # a label for run names, not a constructor argument
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"{what}: {str(cause).splitlines()[0]}") from None


def build_datamodule(cfg: DictConfig) -> L.LightningDataModule:
    """The data module; ``data.pipeline=classic`` wraps it in the per-sample DataLoader one."""
    pipeline = cfg.data.get("pipeline", "fast")
    if pipeline not in ("fast", "classic"):
        raise ConfigError(f"data.pipeline={pipeline!r} is invalid: choose one of fast, classic")
    node = {k: v for k, v in to_container(cfg.data).items() if k not in ("pipeline", "workers")}
    datamodule = build(OmegaConf.create(node), "data")
    if pipeline == "classic":
        from scnet.data.classic import ClassicDataModule

        return ClassicDataModule(datamodule, num_workers=int(cfg.data.get("workers", 0)))
    return datamodule


def build_backbone(cfg: DictConfig, datamodule: Any) -> Any:
    return build(
        cfg.backbone, "backbone",
        input_shape=list(datamodule.input_shape), num_classes=datamodule.num_classes,
    )  # fmt: skip


def build_module(cfg: DictConfig, datamodule: Any) -> ClassifierModule:
    backbone = build_backbone(cfg, datamodule)
    task = getattr(datamodule, "task", "classification")
    if getattr(backbone, "task", task) != task:  # e.g. backbone=bert with data=cifar10
        raise ConfigError(f"backbone={cfg.backbone.name} cannot train on data={cfg.data.name}")
    module_cls = MultipleChoiceModule if task == "multiple_choice" else ClassifierModule
    return module_cls(
        backbone, sc=to_container(cfg.sc), optim=to_container(cfg.optim),
        input_shape=tuple(datamodule.input_shape), task=task,
        channels_last=bool(cfg.get("channels_last", False)), compile=bool(cfg.get("compile", False)),
    )  # fmt: skip


def trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``trainer`` config minus unset (null) keys, so Lightning's own defaults apply."""
    return {k: v for k, v in to_container(cfg.trainer).items() if v is not None}


def prepare(cfg: DictConfig) -> tuple[Any, ClassifierModule]:
    """Everything that can fail on bad input, done before any training starts."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    module = build_module(cfg, datamodule)  # config errors first: they are cheaper to fix
    check_run_options(cfg, module)
    datamodule.setup("fit")  # a missing or corrupt dataset fails here, not mid-run
    return datamodule, module


def check_run_options(cfg: DictConfig, module: ClassifierModule) -> None:
    """Options otherwise read only once training has started: check them up front."""
    from scnet.lit import optim
    from scnet.lit.loggers import resolve_wandb_mode

    optim_cfg = to_container(cfg.optim)
    optim.build_optimizer(optim.param_groups(module, optim_cfg), optim_cfg)
    optim.lr_factor(optim_cfg, 1, 1)  # unknown scheduler
    resolve_wandb_mode(str(cfg.logger.get("wandb", {}).get("mode", "auto")))
    trainer_cfg = cfg.get("trainer", {})
    on_cpu = trainer_cfg.get("accelerator") == "cpu" or (
        trainer_cfg.get("accelerator") == "auto" and not torch.cuda.is_available()
    )
    has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    if trainer_cfg.get("sync_batchnorm") and on_cpu and has_bn:
        raise ConfigError(
            "trainer.sync_batchnorm=true needs GPUs (torch's SyncBatchNorm is CUDA-only): set "
            "trainer.sync_batchnorm=false on the CPU (batch statistics are then per process)"
        )
    if cfg.get("test_ckpt", "last") not in ("last", "best"):
        raise ConfigError(f"test_ckpt={cfg.get('test_ckpt')!r} is invalid: choose last or best")


def fit_and_test(
    cfg: DictConfig, run_dir: Path, datamodule: Any, module: ClassifierModule
) -> dict[str, Any]:
    monitor = "val/loss" if module.task == "regression" else "val/acc"
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="best", monitor=monitor,
        mode="min" if module.task == "regression" else "max", save_top_k=1,
        auto_insert_metric_name=False, enable_version_counter=False,
    )  # fmt: skip
    # last.ckpt from its own callback: Lightning >= 2.5 writes save_last=True's copy only in
    # epochs where the best improved, so a run whose val/acc had plateaued resumed from its
    # best epoch, not its last. Saved after validation, like best, so val/acc_best is in it.
    last = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="last", monitor=None, save_top_k=1,
        save_on_train_epoch_end=False, enable_version_counter=False,
    )  # fmt: skip
    loggers = build_loggers(cfg.logger, run_dir, redact(to_container(cfg)))
    # grad stats, max-norm projection, fixed-point metrics, first-step timing
    callbacks = [checkpoint, last, FirstStepTimer(), *extra_callbacks(cfg, run_dir, module)]
    trainer = L.Trainer(
        **trainer_kwargs(cfg), logger=loggers, callbacks=callbacks, default_root_dir=str(run_dir)
    )
    if cfg.get("ckpt_path"):
        trim_metrics(run_dir / "metrics.csv", checkpoint_epoch(cfg.ckpt_path))
    else:  # a fresh start in a reused (failed) run dir: no stale rows
        (run_dir / "metrics.csv").unlink(missing_ok=True)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except SystemExit as exit_:
        # Lightning turns Ctrl-C into sys.exit(1) after its own clean-up; keep it an interrupt
        # so the caller records it (result.json) instead of vanishing. The KeyboardInterrupt
        # Lightning caught is the exit's context: it says which signal (SIGTERM) if not Ctrl-C.
        if trainer.interrupted:
            caught = exit_.__context__
            what = str(caught) if isinstance(caught, KeyboardInterrupt) and str(caught) else ""
            raise KeyboardInterrupt(
                f"{what or 'Ctrl-C'} at epoch {trainer.current_epoch}, step {trainer.global_step}"
            ) from None
        raise
    metrics = scalar_metrics(trainer.callback_metrics)  # test() resets callback_metrics
    test_ckpt = cfg.get("test_ckpt", "last")
    if test_ckpt not in ("last", "best"):
        raise ConfigError(f"test_ckpt={test_ckpt!r} is invalid: choose last or best")
    use_best = test_ckpt == "best" and checkpoint.best_model_path
    trainer.test(
        module, datamodule=datamodule, ckpt_path="best" if use_best else None, verbose=False
    )
    metrics.update(scalar_metrics(trainer.callback_metrics))
    metrics["epochs"] = trainer.current_epoch
    metrics["steps"] = trainer.global_step
    for logger in loggers:
        logger.finalize("success")
    return metrics


def checkpoint_epoch(path: str | Path) -> int:
    """The epoch a Lightning checkpoint was saved in (its ``epoch`` entry)."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    return int(ckpt.get("epoch", 0))


def trim_metrics(path: Path, last_epoch: int) -> None:
    """Drop ``metrics.csv`` rows logged after the checkpoint being resumed from.

    Rows of epochs the resumed run will redo would otherwise appear twice; earlier rows stay,
    and the resumed run appends after them.
    """
    if not path.is_file():
        return
    import csv

    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)
    keep = [r for r in rows if not r.get("epoch") or int(float(r["epoch"])) <= last_epoch]
    if len(keep) == len(rows):
        return
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(keep)
    os.replace(tmp, path)


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def write_result(run_dir: Path, result: dict[str, Any]) -> Path:
    """Atomic write, so a crash never leaves a half-written result.json."""
    path = run_dir / RESULT_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(redact(result), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def base_result(cfg: DictConfig, module: ClassifierModule | None, started: float) -> dict[str, Any]:
    return {
        "params": count_parameters(module.backbone) if module is not None else None,
        "sc": module.sc_connections if module is not None else [],
        "seed": int(cfg.seed),
        "duration_s": round(time.time() - started, 3),
    }
