"""``--launcher slurm``: the sweep's workers as a submitit job array against one shared study.

Each array task is one worker (one trial at a time, on the GPUs SLURM gives the task); the
study (PostgreSQL) coordinates them exactly as it does local workers and other drivers.
Re-running the same command resumes. ``SCNET_SUBMITIT_CLUSTER=local`` runs the same code on
submitit's local executor (tests; a machine without SLURM).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass

from scnet.errors import ConfigError
from scnet.sweep import engine, storage

CLUSTER_ENV = "SCNET_SUBMITIT_CLUSTER"


@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 24 * 60
    account: str | None = None
    gpus_per_trial: int = 1
    cpus_per_trial: int = 8


def job_worker(ctx: engine.Context) -> int:
    """One array task: a worker with no local driver to die with; SLURM sets its GPUs."""
    engine.worker_main(dataclasses.replace(ctx, parent_pid=0, gpus=[], workers=1))
    return 0


def submit(ctx: engine.Context, opts: SlurmOptions):
    """Submit ``ctx.workers`` workers as one job array; returns the submitit jobs."""
    import submitit

    cluster = os.environ.get(CLUSTER_ENV) or ("slurm" if shutil.which("sbatch") else "")
    if not cluster:
        raise ConfigError("--launcher slurm: sbatch not found (run this on a SLURM login node)")
    if cluster != "local" and storage.is_sqlite(ctx.storage_url):
        raise ConfigError(
            "--launcher slurm needs --storage postgresql://USER@HOST/DB reachable from the "
            "compute nodes (SQLite is not safe on a shared file system)"
        )
    executor = submitit.AutoExecutor(folder=ctx.sweep_dir / "slurm" / "%j", cluster=cluster)
    named = {"slurm_partition": opts.partition, "slurm_account": opts.account}
    executor.update_parameters(
        name=f"scnet-sweep-{ctx.spec.name}", timeout_min=opts.time_min, nodes=1,
        tasks_per_node=1, cpus_per_task=opts.cpus_per_trial, gpus_per_node=opts.gpus_per_trial,
        slurm_signal_delay_s=120,  # SIGTERM 2 min before the limit: the trial keeps last.ckpt
        slurm_array_parallelism=ctx.workers, **{k: v for k, v in named.items() if v},
    )  # fmt: skip
    contexts = [dataclasses.replace(ctx, worker_index=i) for i in range(ctx.workers)]
    return executor.map_array(job_worker, contexts)
