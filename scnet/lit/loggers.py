"""CSV (always) and Weights & Biases (online with credentials, offline without) loggers."""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger

from scnet.errors import ConfigError
from scnet.secrets import redact

WANDB_MODES = ("auto", "online", "offline", "disabled")


def has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def resolve_wandb_mode(requested: str) -> str:
    """``auto`` → online with credentials, else offline. ``WANDB_MODE`` in the env wins."""
    if requested not in WANDB_MODES:
        raise ConfigError(
            f"logger.wandb.mode={requested!r} is invalid: choose one of {', '.join(WANDB_MODES)}"
        )
    env = os.environ.get("WANDB_MODE")
    if requested == "auto":
        if env in ("online", "offline", "disabled"):
            return env
        return "online" if has_wandb_credentials() else "offline"
    return requested


def build_loggers(
    cfg: Mapping[str, Any], run_dir: Path, run_config: dict[str, Any]
) -> list[Logger]:
    from scnet.robust import appending_csv_logger  # metrics.csv survives a resume

    loggers: list[Logger] = [appending_csv_logger(str(run_dir))]
    wandb_cfg = dict(cfg.get("wandb") or {})
    mode = resolve_wandb_mode(wandb_cfg.get("mode", "auto"))
    if mode == "disabled":
        return loggers
    from lightning.pytorch.loggers import WandbLogger  # imported lazily: wandb is slow to import

    os.environ.setdefault("WANDB_SILENT", "true")
    wandb_logger = WandbLogger(
        project=wandb_cfg.get("project", "scnet"),
        entity=wandb_cfg.get("entity"),
        group=wandb_cfg.get("group"),
        tags=list(wandb_cfg.get("tags") or []),
        name=wandb_cfg.get("name"),
        save_dir=str(run_dir),
        mode=mode,
        config=redact(run_config),
    )
    from scnet.robust import redacted_argv

    with redacted_argv():  # W&B records the command line when the run starts: no secrets
        _ = wandb_logger.experiment
    loggers.append(wandb_logger)
    return loggers
