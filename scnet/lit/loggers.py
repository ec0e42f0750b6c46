"""CSV (always) and Weights & Biases (online with credentials, offline without) loggers."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger

from scnet.errors import ConfigError

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


def wandb_logger(
    run_dir: Path,
    mode: str = "auto",
    **options: Any,
) -> Logger | None:
    """``logger.wandb``'s ``_target_``: a WandbLogger, or None when ``mode=disabled``.

    The run id is kept in the run dir (:func:`scnet.resume.wandb_id`) and W&B is told
    ``resume="allow"``, so a resumed run continues the same W&B run instead of starting a
    second one. ``options`` are WandbLogger's (project, entity, group, tags, name, ...).
    """
    mode = resolve_wandb_mode(mode)
    if mode == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger  # imported lazily: wandb is slow to import

    from scnet.resume import wandb_id
    from scnet.robust import redacted_argv

    os.environ.setdefault("WANDB_SILENT", "true")
    options["tags"] = list(options.get("tags") or [])
    logger = WandbLogger(
        save_dir=str(run_dir), mode=mode, id=wandb_id(run_dir),
        resume="allow", **options,
    )  # fmt: skip
    logger._wandb_init.pop("anonymous", None)  # Lightning passes it; W&B warns it is a no-op
    with redacted_argv():  # W&B records the command line when the run starts: no secrets
        _ = logger.experiment
    return logger
