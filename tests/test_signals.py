"""Real signals to a real ``scnet-run`` process: Ctrl-C (SIGINT) and SIGTERM mid-training.

tests/test_faults.py raises KeyboardInterrupt from inside a hook; these send the signal from
outside, as a terminal or a scheduler does, then resume from the kept ``last.ckpt``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 15
# Every epoch lasts >= 0.5 s (tests/helpers/slow.py), so the run is still training ~7 s after
# its first checkpoint, when the signal comes, on an idle machine as on a loaded one.
RUN = [
    "experiment=demo", "depth=8", f"trainer.max_epochs={EPOCHS}",
    "trainer.limit_train_batches=3", "trainer.enable_progress_bar=false",
    "logger.wandb.mode=disabled", "+callbacks.slow._target_=tests.helpers.slow.SlowEpochs",
]  # fmt: skip


def _as_from_a_terminal() -> None:
    """The child's Ctrl-C as in a terminal: a CI job started in the background may run pytest
    with SIGINT ignored, which children inherit (and ``nohup scnet-run`` rightly keeps)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(run_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "scnet.cli.run", *RUN, *extra, f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)  # fmt: skip


def wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, timeout: float = 180.0) -> None:
    """Until an epoch has completed (``last.ckpt`` written) while the run still trains."""
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + timeout
    while not ckpt.is_file():
        if proc.poll() is not None:
            pytest.fail(f"run ended (rc {proc.returncode}) before a checkpoint: "
                        f"{proc.stderr.read()[-2000:]}")  # fmt: skip
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within the timeout")
        time.sleep(0.1)
    time.sleep(0.3)  # let the checkpoint write finish; the run goes on to later epochs


def interrupt(run_dir: Path, signum: signal.Signals) -> tuple[subprocess.CompletedProcess, dict]:
    proc = start(run_dir)
    wait_for_checkpoint(proc, run_dir)
    assert proc.poll() is None, "the run finished before the signal: raise EPOCHS"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done, json.loads((run_dir / "result.json").read_text())


def check_interrupted(
    done: subprocess.CompletedProcess, result: dict, run_dir: Path, cause: str
) -> None:
    assert done.returncode == 130, done.stderr[-2000:]
    # One line and the resume command: no traceback on either stream (issue 12 item 5).
    assert "Traceback" not in done.stdout + done.stderr, (done.stdout + done.stderr)[-3000:]
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("scnet-run: error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    resume = f"ckpt_path={run_dir}/checkpoints/last.ckpt"
    assert last.startswith(f"scnet-run: error: interrupted ({cause} at epoch ") and resume in last
    assert result["status"] == "failed" and result["interrupted"] is True
    assert resume in result["error"]
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow  # two CLI starts and 15 tiny epochs: ~40 s on the loaded 2-core box
def test_sigint_then_resume_completes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done, result = interrupt(run_dir, signal.SIGINT)
    check_interrupted(done, result, run_dir, "Ctrl-C")
    resumed = subprocess.run(
        [sys.executable, "-m", "scnet.cli.run", *RUN,
         f"ckpt_path={run_dir}/checkpoints/last.ckpt"],
        cwd=REPO, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = json.loads((run_dir / "result.json").read_text())
    assert final["status"] == "completed" and "interrupted" not in final
    assert final["metrics"]["epochs"] == EPOCHS
    assert (run_dir / ".hydra" / "resume-1").is_dir()


@pytest.mark.slow  # one CLI start: ~18 s
def test_sigterm_is_an_interrupt(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done, result = interrupt(run_dir, signal.SIGTERM)
    check_interrupted(done, result, run_dir, "signal SIGTERM")
