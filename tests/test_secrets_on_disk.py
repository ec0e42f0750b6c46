"""No credential reaches anything a run writes: .hydra/*.yaml, run.log, result.json,
metrics.csv, checkpoints and the offline W&B files (including its binary run record)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from scnet.robust import redacted_argv

API_KEY = "fakekey0123456789abcdef0123456789abcdef"  # shaped like a W&B key
OVERRIDE_KEY = "SECRETKEY123override"
PASSWORD = "hunter2pw"


def test_redacted_argv_masks_and_restores(monkeypatch) -> None:
    argv = [
        "scnet-run",
        f"+logger.wandb.api_key={OVERRIDE_KEY}",
        f"+db=postgresql://u:{PASSWORD}@h/d",
        "depth=20",
    ]
    monkeypatch.setattr(sys, "argv", list(argv))
    with redacted_argv():
        inside = list(sys.argv)
    assert sys.argv == argv
    assert inside == [
        "scnet-run",
        "+logger.wandb.api_key=***",
        "+db=postgresql://u:***@h/d",
        "depth=20",
    ]


def test_run_dir_holds_no_secret(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable, "-m", "scnet.cli.run", "experiment=demo", "depth=8",
            "trainer.max_epochs=1", "trainer.limit_train_batches=2", "logger.wandb.mode=offline",
            f"+logger.wandb.api_key={OVERRIDE_KEY}",
            f"+storage=postgresql://scnet:{PASSWORD}@db.example:5432/optuna",
            f"hydra.run.dir={run_dir}",
        ],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": API_KEY},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any("wandb" in p.parts for p in files)  # W&B did write its files
    assert (run_dir / ".hydra" / "overrides.yaml").is_file()
    for path in files:
        data = path.read_bytes()
        for secret in (API_KEY, OVERRIDE_KEY, PASSWORD):
            assert secret.encode() not in data, f"{secret} leaked into {path}"
    # The override itself is still recorded, masked: the run stays reproducible minus the secret.
    assert "api_key=***" in (run_dir / ".hydra" / "overrides.yaml").read_text()
    assert PASSWORD not in proc.stdout + proc.stderr
