"""One training run, from the composed config to ``result.json``, in one straight line:

    seed → data → model → callbacks → loggers → trainer → fit → test → result.json

Every object comes from its config group through ``_target_`` (:mod:`scnet.utils.instantiators`);
resuming (which run dir, which checkpoint, ``metrics.csv``) is :mod:`scnet.resume`'s. The CLI
(``scnet.cli.run``) composes the config, runs the checks that need no torch, and calls
:func:`run`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from scnet import resume
from scnet.errors import ConfigError, ScnetError
from scnet.lit.backbone_hooks import BackboneHooks, needs_backbone_hooks
from scnet.lit.checkpoint_io import AtomicCheckpointIO
from scnet.lit.classifier import ClassifierModule
from scnet.lit.condition import build_condition
from scnet.lit.grad_stats import build_grad_stats
from scnet.models import count_parameters
from scnet.secrets import redact
from scnet.utils import console
from scnet.utils.instantiators import build, build_all
from scnet.utils.io import atomic_write_text

log = logging.getLogger("scnet")
RESULT_FILE = resume.RESULT_FILE


class RunFailed(Exception):
    """Training started and failed; ``result.json`` (status failed) is written.

    ``exit_code``: 130 interrupted, 4 storage, 1 anything else (or the ScnetError's code).
    """

    def __init__(self, message: str, exit_code: int, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.exit_code, self.result = exit_code, result


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train and test as ``cfg`` says, in ``run_dir``; return what was written to result.json.

    Raises :class:`~scnet.errors.ScnetError` before training for a bad config, dataset,
    checkpoint or run dir (nothing is written by scnet then), and :class:`RunFailed` after
    recording a run that failed while training.
    """
    started = time.time()
    run_dir = Path(run_dir)
    bind_run_dir(cfg, run_dir)
    resume.check_run_dir(run_dir, bool(cfg.get("ckpt_path")), cfg.trainer.get("max_epochs"))
    console.quiet_libraries()
    datamodule, module = prepare(cfg)
    if cfg.get("ckpt_path"):  # read without running code; must fit this model
        from scnet.robust import check_checkpoint

        check_checkpoint(cfg.ckpt_path, module)
    console.print_config(cfg)  # the run is accepted: show what it is
    log.info("run dir: %s", run_dir)
    try:
        metrics = fit_and_test(cfg, run_dir, datamodule, module)
    except (Exception, KeyboardInterrupt) as err:
        raise failed(cfg, run_dir, module, started, err) from err
    result = {"status": "completed", "metrics": metrics, **base_result(cfg, module, started)}
    if is_global_zero():  # DDP: one process (rank 0) reports
        try:
            write_result(run_dir, result)
        except OSError as err:
            from scnet.robust import StorageError, storage_message

            raise RunFailed(storage_message(err, run_dir), StorageError.exit_code, result) from err
    return result


# ----------------------------------------------------------------------------- before training
def prepare(cfg: DictConfig) -> tuple[L.LightningDataModule, ClassifierModule]:
    """Seed, data and model: everything that can fail on bad input, before any training."""
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)
    datamodule = build_data(cfg)
    module = build_model(cfg, datamodule)  # config errors first: they are cheaper to fix
    check_options(cfg, module)
    datamodule.setup("fit")  # a missing or corrupt dataset fails here, not mid-run
    return datamodule, module


def build_data(cfg: DictConfig) -> L.LightningDataModule:
    """``data=``; ``data.pipeline=classic`` wraps it in the per-sample DataLoader module."""
    pipeline = cfg.data.get("pipeline", "fast")
    if pipeline not in ("fast", "classic"):
        raise ConfigError(f"data.pipeline={pipeline!r} is invalid: choose one of fast, classic")
    datamodule = build(cfg.data, "data", labels=("name", "pipeline", "workers"))
    if pipeline == "classic":
        from scnet.data.classic import ClassicDataModule

        return ClassicDataModule(datamodule, num_workers=int(cfg.data.get("workers", 0)))
    return datamodule


def build_model(cfg: DictConfig, datamodule: Any) -> ClassifierModule:
    """``backbone=`` (the network) inside ``model=`` (the LightningModule)."""
    shape, task = list(datamodule.input_shape), getattr(datamodule, "task", "classification")
    backbone = build(
        cfg.backbone, "backbone", labels=("name",), input_shape=shape,
        num_classes=datamodule.num_classes,
    )  # fmt: skip
    if getattr(backbone, "task", task) != task:  # e.g. backbone=bert with data=cifar10
        raise ConfigError(f"backbone={cfg.backbone.name} cannot train on data={cfg.data.name}")
    return build(cfg.model, "model", backbone=backbone, input_shape=tuple(shape), task=task)


def check_options(cfg: DictConfig, module: ClassifierModule) -> None:
    """Options otherwise read only once training has started: check them up front."""
    module.make_optimizer()  # bad optimizer arguments
    module.schedule_factory(module.make_optimizer(), total_steps=1, steps_per_epoch=1)
    optimizer_class = str(cfg.optim.optimizer.get("_target_", "")).rsplit(".", 1)[-1]
    if cfg.optim.get("name") and optimizer_class.lower() != str(cfg.optim.name).lower():
        raise ConfigError(
            f"optim.name={cfg.optim.name!r} does not match optim.optimizer "
            f"({optimizer_class}): choose the optimizer with optim=sgd|adam|adamw"
        )
    trainer_cfg = cfg.trainer
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


# ----------------------------------------------------------------------------- training
def fit_and_test(
    cfg: DictConfig, run_dir: Path, datamodule: Any, module: ClassifierModule
) -> dict[str, Any]:
    bind_run_dir(cfg, run_dir)
    callbacks = build_callbacks(cfg, run_dir, module)
    loggers = build_loggers(cfg, run_dir)
    trainer = build_trainer(cfg, run_dir, callbacks, loggers)
    resume.start(run_dir, cfg.get("ckpt_path"))  # metrics.csv: trimmed to the checkpoint, or new
    status = "failed"
    try:
        fit(trainer, module, datamodule, cfg.get("ckpt_path"))
        metrics = scalar_metrics(trainer.callback_metrics)  # test() resets callback_metrics
        best = getattr(trainer.checkpoint_callback, "best_model_path", "")
        use_best = cfg.get("test_ckpt", "last") == "best" and best
        ckpt = best if use_best else None
        with interrupts_kept(trainer, "during the test after"):
            trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
        metrics.update(scalar_metrics(trainer.callback_metrics))
        metrics["epochs"] = trainer.current_epoch
        metrics["steps"] = trainer.global_step
        status = "success"
    finally:
        try:
            close_loggers(loggers, status)
        except Exception:  # never hide why the run ended behind a logger's own failure
            if status == "success":
                raise
            log.warning("closing the loggers failed", exc_info=True)
    return metrics


def close_loggers(loggers: list[Any], status: str) -> None:
    """Finalize every logger; end the W&B run, so a later run in this process (tests, a
    resume) starts its own instead of silently logging into this one."""
    for logger in loggers:
        logger.finalize(status)
    if any(type(logger).__name__ == "WandbLogger" for logger in loggers):
        import wandb

        if wandb.run is not None:
            wandb.finish(exit_code=0 if status == "success" else 1)


def build_callbacks(cfg: DictConfig, run_dir: Path, module: ClassifierModule) -> list[L.Callback]:
    """``callbacks=`` plus the instruments (grad_stats, condition) and the backbone's hooks."""
    regression = module.task == "regression"
    auto = {
        "monitor": "val/loss" if regression else "val/acc",
        "mode": "min" if regression else "max",
    }
    node = cfg.get("callbacks")
    group = OmegaConf.to_container(node, resolve=True) if node else {}  # callbacks=none: null
    for node in group.values():  # "auto": the task's metric (docs/configuration.md)
        for key in ("monitor", "mode"):
            if isinstance(node, dict) and node.get(key) == "auto":
                node[key] = auto[key]
    callbacks = build_all(group, "callbacks")
    callbacks += build_grad_stats(cfg.get("grad_stats"), run_dir)
    callbacks += build_condition(cfg.get("condition"), run_dir)
    if needs_backbone_hooks(module.backbone):  # part of the backbone (max-norm): always on
        callbacks.append(BackboneHooks())
    return callbacks


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Any]:
    """``metrics.csv`` (always: sweeps, reports and resume read it) plus ``logger=``."""
    loggers = [resume.metrics_logger(run_dir), *build_all(cfg.get("logger"), "logger")]
    config = redact(OmegaConf.to_container(cfg, resolve=True))
    for logger in loggers[1:]:  # W&B's run config, TensorBoard's hparams
        logger.log_hyperparams(config)
    return loggers


def build_trainer(
    cfg: DictConfig, run_dir: Path, callbacks: list[L.Callback], loggers: list[Any]
) -> L.Trainer:
    from lightning.pytorch.callbacks import ModelCheckpoint

    checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    # scnet logs one line (parameters, SC) instead of Lightning's table with its FLOPs column
    # of zeros; trainer.enable_model_summary=true brings the table back.
    summary = {} if "enable_model_summary" in cfg.trainer else {"enable_model_summary": False}
    return build(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers,
        default_root_dir=str(run_dir), enable_checkpointing=checkpointing,
        plugins=[AtomicCheckpointIO()], **summary,
    )  # fmt: skip


def fit(trainer: L.Trainer, module: Any, datamodule: Any, ckpt_path: str | None) -> None:
    log.info(
        "model: %s, %s trainable parameters, SC %s",
        type(module.backbone).__name__, f"{count_parameters(module.backbone):,}",
        module.sc_connections or "off",
    )  # fmt: skip
    with interrupts_kept(trainer, "at"):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)


@contextmanager
def interrupts_kept(trainer: L.Trainer, where: str) -> Iterator[None]:
    """Re-raise Lightning's exit on Ctrl-C/SIGTERM (in ``fit`` or ``test``) as an interrupt.

    Lightning turns Ctrl-C into sys.exit(1) after its own clean-up; keep it an interrupt so
    the caller records it (result.json, exit 130) instead of vanishing. The KeyboardInterrupt
    Lightning caught is the exit's context: it says which signal (SIGTERM) if not Ctrl-C.
    ``where``: how the message places it, e.g. ``at`` (epoch N) or ``during the test after``.
    """
    try:
        yield
    except SystemExit as exit_:
        if not trainer.interrupted:
            raise
        caught = exit_.__context__
        what = str(caught) if isinstance(caught, KeyboardInterrupt) and str(caught) else ""
        raise KeyboardInterrupt(
            f"{what or 'Ctrl-C'} {where} epoch {trainer.current_epoch}, step {trainer.global_step}"
        ) from None


# ----------------------------------------------------------------------------- results
def failed(
    cfg: DictConfig, run_dir: Path, module: Any, started: float, err: BaseException
) -> RunFailed:
    """Record a run that failed mid-training in ``result.json``; the exception to raise."""
    import traceback

    from scnet.robust import StorageError, storage_message

    console.to_run_log(f"run failed:\n{traceback.format_exc()}")
    if isinstance(err, KeyboardInterrupt):
        last = resume.last_checkpoint(run_dir)
        message = f"interrupted ({str(err) or 'Ctrl-C'}); resume with ckpt_path={last}"
        code = 130
    elif isinstance(err, OSError) and err.errno is not None:
        message, code = storage_message(err, run_dir), StorageError.exit_code
    else:
        text = str(err).strip().splitlines()
        message = f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
        code = err.exit_code if isinstance(err, ScnetError) else 1
    result: dict[str, Any] = {"status": "failed", "metrics": {}, "error": message}
    if isinstance(err, KeyboardInterrupt):
        result["interrupted"] = True
    result.update(base_result(cfg, module, started))
    if is_global_zero():
        try:
            write_result(run_dir, result)
        except OSError as write_err:  # a full disk may refuse result.json too: still one line
            return RunFailed(
                f"{message}; result.json not written ({write_err.strerror})", code, result
            )
    return RunFailed(f"{message} (details: {run_dir}/run.log)", code, result)


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if getattr(v, "numel", lambda: 1)() == 1}


def write_result(run_dir: Path, result: dict[str, Any]) -> Path:
    """Atomic write (temp file beside it, fsync, rename): never a half-written result.json."""
    import json

    text = json.dumps(redact(result), indent=2, sort_keys=True) + "\n"
    return atomic_write_text(Path(run_dir) / RESULT_FILE, text)


def base_result(cfg: DictConfig, module: Any, started: float) -> dict[str, Any]:
    return {
        "params": count_parameters(module.backbone) if module is not None else None,
        "sc": module.sc_connections if module is not None else [],
        "seed": int(cfg.seed),
        "duration_s": round(time.time() - started, 3),
        "environment": environment(cfg),
    }


def environment(cfg: DictConfig) -> dict[str, Any]:
    """What results depend on beyond the config: the same seed gives the same metrics only
    on the same machine, versions and thread count (the demo: 0.9889 with 2 threads, 0.9917
    with 1)."""
    import platform

    cuda = torch.cuda.is_available() and cfg.trainer.get("accelerator") != "cpu"
    return {
        "torch": torch.__version__,
        "lightning": L.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(0) if cuda else cpu_name(),
        "accelerator": "cuda" if cuda else "cpu",
    }


def cpu_name() -> str:
    import platform

    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bind_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """``paths.output_dir`` = this run's dir, for the nodes that write into it."""
    with open_dict(cfg):
        if "paths" not in cfg:
            cfg.paths = {}
        cfg.paths.output_dir = str(run_dir)


def is_global_zero() -> bool:
    """This process is rank 0 under DDP (Lightning sets the rank once the trainer exists)."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0) == 0
