"""Shared test helpers: running the CLIs in a subprocess, offline and into tmp dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A 1-epoch ResNet-8 on sklearn digits: the cheapest real run (≈10 s, mostly imports).
TINY_RUN = ["experiment=demo", "depth=8", "trainer.max_epochs=1", "logger.wandb.mode=disabled"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("SCNET_DEBUG", None)
    env.update(extra)
    return env


def run_cli(module: str, *args: str, env: dict[str, str] | None = None, timeout: int = 600):
    """Run ``python -m scnet.cli.<module> args`` from the repo root; returns CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", f"scnet.cli.{module}", *args],
        cwd=REPO, env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture
def cli():
    return run_cli
