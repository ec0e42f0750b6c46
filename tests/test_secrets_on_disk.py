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
            # Hydra's own way to hand a job a credential (scnet refuses unknown keys such as
            # +logger.wandb.api_key or +storage since issue 11; see the refused test below).
            f"+hydra.job.env_set.WANDB_API_KEY={OVERRIDE_KEY}",
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
    assert (
        "WANDB_API_KEY=***" in (run_dir / ".hydra" / "hydra.yaml").read_text()
    )  # hydra.* overrides
    assert PASSWORD not in proc.stdout + proc.stderr


def test_refused_override_does_not_echo_a_secret(tmp_path: Path) -> None:
    """Unknown keys are refused (issue 11), and the one-line error masks what it echoes.

    (Moved from test_run_dir_holds_no_secret: ``+storage=URL`` is no longer accepted.)
    """
    proc = subprocess.run(
        [
            sys.executable, "-m", "scnet.cli.run", "experiment=demo",
            f"+storage=postgresql://scnet:{PASSWORD}@db.example:5432/optuna",
            f"+sc.api_token={OVERRIDE_KEY}", f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.startswith("scnet-run: error: +storage=postgresql://scnet:***@db")
    assert PASSWORD not in proc.stdout + proc.stderr
    assert OVERRIDE_KEY not in proc.stdout + proc.stderr
    assert not (tmp_path / "run").exists()
