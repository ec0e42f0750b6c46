"""Shared CLI behaviour: one-line errors, exit codes, where the configs live."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from scnet.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = Path(os.environ.get("SCNET_CONF_DIR", REPO_ROOT / "conf"))


def debug_enabled() -> bool:
    return bool(os.environ.get("HYDRA_FULL_ERROR") or os.environ.get("SCNET_DEBUG"))


def fail(prog: str, message: str, code: int) -> None:
    """Print one line (no traceback) and exit with ``code``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def group_options(group: str) -> list[str]:
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def check_group_overrides(argv: Sequence[str]) -> None:
    """Reject ``group=unknown`` before Hydra does (Hydra's message spans many lines)."""
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir()}
    for arg in argv:
        if "=" not in arg or arg.startswith(("-", "hydra")):
            continue
        key, value = arg.lstrip("+~").split("=", 1)
        if key in groups and value not in ("null", ""):
            options = group_options(key)
            if value.strip("'\"") not in options:
                raise ConfigError(f"{key}={value} is unknown: choose one of {', '.join(options)}")


def compose_config(overrides: Sequence[str], config_name: str = "config"):
    """Compose the run config as ``scnet-run`` would, with Hydra errors as one ConfigError line."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    user = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose(config_name, overrides=user)
    except (HydraException, OmegaConfBaseException, ValueError) as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        lines = [
            ln for ln in lines if not ln.startswith(("full_key", "object_type", "reference_type"))
        ]
        raise ConfigError(" ".join(lines)) from None
