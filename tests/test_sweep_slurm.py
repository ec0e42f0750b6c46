"""--launcher slurm: the real submitit code path on submitit's local executor, and DDP trials
inside a SLURM job step (simulated: the environment srun gives a one-task step)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scnet.errors import ConfigError
from scnet.sweep import engine, slurm
from scnet.sweep import spec as spec_mod
from tests.test_sweep import fake_env, invocations, results, starts, sweep_cmd, write_sweep


def test_slurm_launcher_runs_a_job_array_of_workers_on_one_study(tmp_path: Path) -> None:
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]', "[0, 1]")
    env = {**fake_env(0.2), slurm.CLUSTER_ENV: "local"}
    cmd = [*sweep_cmd(tmp_path, "tiny"), "--launcher", "slurm", "--workers", "2",
           "--partition", "gpu", "--account", "lab", "--time", "30"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "submitted 2 workers" in proc.stdout and "4 trials: 4 completed" in proc.stdout
    runs = tmp_path / "out" / "sweeps" / "tiny" / "runs"
    for i in range(4):
        log = invocations(runs / f"trial-{i:04d}")
        assert len(starts(runs / f"trial-{i:04d}")) == 1 and log[-1].get("done"), log
    pids = {x["pid"] for d in runs.iterdir() for x in starts(d)}
    assert len(pids) == 4 and all(r["state"] == "COMPLETE" for r in results(tmp_path, "tiny"))
    assert list((tmp_path / "out" / "sweeps" / "tiny" / "slurm").iterdir())  # submitit's logs


def test_slurm_launcher_refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on"]', "[0]")
    spec = spec_mod.load("tiny", tmp_path / "sw")
    ctx = engine.Context(spec=spec, overrides=[], sweep_dir=tmp_path / "out")
    monkeypatch.delenv(slurm.CLUSTER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    with pytest.raises(ConfigError, match="sbatch not found"):
        slurm.submit(ctx, slurm.SlurmOptions())
    monkeypatch.setenv(slurm.CLUSTER_ENV, "slurm")
    with pytest.raises(ConfigError, match="needs --storage postgresql://"):
        slurm.submit(ctx, slurm.SlurmOptions())
    assert not (tmp_path / "out").exists()


def test_a_ddp_trial_inside_a_slurm_job_step_starts_all_its_ranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker runs in a one-task SLURM step. With the step's variables, Lightning takes the
    trial for an srun task of a 1-process world (a DDP trial ran one rank); the trial's
    environment drops them, so Lightning's own launcher starts every rank."""
    from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

    step = {"SLURM_JOB_ID": "42", "SLURM_JOB_NAME": "scnet-sweep-tiny", "SLURM_NTASKS": "1",
            "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
            "SLURM_NODELIST": "node1"}  # fmt: skip
    for key, value in step.items():
        monkeypatch.setenv(key, value)
    assert SLURMEnvironment.detect() and SLURMEnvironment().world_size() == 1  # the bug
    spec = spec_mod.load("tiny", write_sweep(tmp_path, "tiny", '  sc: ["on"]').parent)
    env = engine.trial_env(engine.Context(spec=spec, overrides=[], sweep_dir=tmp_path))
    monkeypatch.setattr(os, "environ", env)
    assert not SLURMEnvironment.detect()  # Lightning's own environment and launcher instead
    assert not LightningEnvironment().creates_processes_externally
    assert env["SLURM_JOB_ID"] == "42"  # the job itself is still known (logs, W&B)
