"""4. Orchestration: ``scnet-run`` start -> first training step, and per-trial process overhead.

A trivial run (``experiment=demo depth=8``, 2 training batches, 1 val/test batch, W&B
disabled) is launched as ``python -m scnet.cli.run`` exactly as a sweep driver launches a
trial. ``SCNET_T0`` is set to the launch time, so the run logs "first training step X s
after process start" including interpreter start-up. Per-trial overhead = process wall time
minus the time spent training and testing (first step -> process exit is an upper bound on
that; reported separately). Import costs come from ``python -X importtime``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, median, write

TRIVIAL = [
    "experiment=demo",
    "depth=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
    "logger.wandb.mode=disabled",
]
SWEEP = """\
description: driver-overhead benchmark
reproduces: nothing
metric: test/acc
direction: maximize
sampler: grid
base: [experiment=demo]
seeds: {seeds}
grid:
  sc: ["on", "off"]
report:
  table: null
  figures: []
"""
FAKE_RUNNER = REPO / "tests" / "sweep_fake_run.py"
FIRST_STEP = re.compile(r"first training step ([0-9.]+)s after process start")


def one_trial(run_dir: Path) -> dict[str, float]:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    start = time.time()
    env["SCNET_T0"] = repr(start)
    proc = subprocess.run(
        [sys.executable, "-m", "scnet.cli.run", *TRIVIAL, f"hydra.run.dir={run_dir}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.time() - start
    if proc.returncode != 0:
        raise RuntimeError(f"trivial run failed ({proc.returncode}): {proc.stderr[-500:]}")
    log = (run_dir / "run.log").read_text()
    match = FIRST_STEP.search(log)
    if match is None:
        raise RuntimeError("the run did not log its first training step time")
    first = float(match.group(1))
    return {"wall_s": wall, "first_step_s": first, "after_first_step_s": wall - first}


def sweep_wall(tmp: Path, n_seeds: int) -> float:
    """Wall time of ``scnet-sweep`` over ``2 * n_seeds`` trials run by the fake runner.

    The fake runner (tests/sweep_fake_run.py, FAKE_SLEEP=0) keeps the run-dir contract without
    importing Lightning, so the wall time is the driver's own work (Optuna study, ask/tell,
    spawning a Python process per trial, reading result.json, the CSV row) plus a bare
    interpreter start per trial.
    """
    name = f"bench{n_seeds}"
    (tmp / "sw").mkdir(exist_ok=True)
    (tmp / "sw" / f"{name}.yaml").write_text(SWEEP.format(seeds=list(range(n_seeds))))
    env = {**os.environ, "SCNET_SWEEP_RUNNER": str(FAKE_RUNNER), "FAKE_SLEEP": "0"}
    env["PYTHONPATH"] = str(REPO)
    cmd = [sys.executable, "-m", "scnet.cli.sweep", name, "--sweeps-dir", str(tmp / "sw"),
           "--output-dir", str(tmp / "out"), "--no-progress"]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"sweep failed ({proc.returncode}): {proc.stderr[-500:]}")
    return wall


def sweep_driver(small: int = 1, large: int = 5, rounds: int = 2) -> dict[str, Any]:
    """Per-trial driver overhead = slope of sweep wall time over the number of trials."""
    walls: dict[int, list[float]] = {small: [], large: []}
    for r in range(rounds):  # small, large, small, large: drift hits both
        for n in (small, large):
            with tempfile.TemporaryDirectory(prefix=f"scnet-sweep-{r}-") as tmp:
                walls[n].append(sweep_wall(Path(tmp), n))
    per_trial = (median(walls[large]) - median(walls[small])) / (2 * (large - small))
    return {
        "method": "slope of scnet-sweep wall time, fake runner (FAKE_SLEEP=0), "
        f"{2 * small} vs {2 * large} trials, medians of {rounds} alternating rounds",
        "walls": {f"{2 * n} trials": w for n, w in walls.items()},
        "per_trial_s": per_trial,
        "fixed_s": median(walls[small]) - 2 * small * per_trial,
    }


def _reclaim(ctx, barrier, locked: bool) -> None:
    import contextlib

    from scnet.sweep import engine

    study = engine.open_study(ctx)
    barrier.wait()  # every reclaimer starts its pass at once
    guard = engine.lock(study._storage, ctx) if locked else contextlib.nullcontext()
    with guard:
        engine.reclaim(study, ctx)


def reclaim_race(rounds: int = 8, reclaimers: int = 6, locked: bool = True) -> dict[str, Any]:
    """WAITING copies made when ``reclaimers`` processes re-queue one lost trial at once.

    ``locked=False`` runs the same pass without the study lock: Optuna's FAIL is atomic, but
    the re-queue of a FAILed-and-not-yet-re-queued trial is a separate read-then-write, which
    is the race the lock closes (the issue measured 2-6 copies in 7 of 8 rounds before).
    """
    import multiprocessing as mp
    import socket

    from scnet.sweep import engine
    from scnet.sweep import spec as spec_mod

    fork = mp.get_context("fork")
    copies: list[int] = []
    with tempfile.TemporaryDirectory(prefix="scnet-race-") as tmp:
        (Path(tmp) / "race.yaml").write_text(
            SWEEP.format(seeds=[0]).replace('["on", "off"]', '["on"]')
        )
        spec = spec_mod.load("race", Path(tmp))
        for r in range(rounds):
            ctx = engine.Context(spec=spec, overrides=[], sweep_dir=Path(tmp) / f"r{r}")
            study = engine.open_study(ctx)
            trial = engine.next_trial(study, ctx)
            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()  # the trial's worker: a process of this host that is gone (kill -9)
            owner = f"{socket.gethostname()}:{dead.pid}:1"
            study._storage.set_trial_user_attr(trial._trial_id, "worker", owner)
            barrier = fork.Barrier(reclaimers)
            procs = [
                fork.Process(target=_reclaim, args=(ctx, barrier, locked))
                for _ in range(reclaimers)
            ]
            for proc in procs:
                proc.start()
            for proc in procs:
                proc.join()
            copies.append(len(study.get_trials(deepcopy=False, states=(engine_state("WAITING"),))))
    return {"locked": locked, "rounds": rounds, "reclaimers": reclaimers, "copies": copies,
            "rounds_with_duplicates": sum(c > 1 for c in copies), "rounds_lost": sum(c == 0 for c in copies)}  # fmt: skip


def engine_state(name: str):
    from optuna.trial import TrialState

    return TrialState[name]


def import_profile(module: str, top: int = 8) -> dict[str, Any]:
    """Self-reported cumulative import times (``-X importtime``) of the heaviest packages."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip())) // 2
            rows.append((int(parts[1]) / 1e6, depth, name.strip()))
    total = max((r[0] for r in rows), default=0.0)
    shallow = sorted((r for r in rows if r[1] <= 2), reverse=True)[:top]
    return {
        "module": module,
        "total_s": total,
        "top": [{"s": s, "package": n} for s, _, n in shallow],
    }


def run(trials: int = 3, quick: bool = False) -> dict[str, Any]:
    if quick:
        trials = 2
    with tempfile.TemporaryDirectory(prefix="scnet-bench-") as tmp:
        results = [one_trial(Path(tmp) / f"trial-{i}") for i in range(trials)]
    imports = [import_profile(m) for m in ("torch", "lightning", "scnet.train")]
    driver = sweep_driver(rounds=1 if quick else 2)
    races = [reclaim_race(rounds=4 if quick else 8, locked=lk) for lk in (True, False)]
    result = {
        "command": "python -m scnet.cli.run " + " ".join(TRIVIAL) + " hydra.run.dir=<tmp>",
        "trials": results,
        "first_step_s": median([r["first_step_s"] for r in results]),
        "wall_s": median([r["wall_s"] for r in results]),
        "after_first_step_s": median([r["after_first_step_s"] for r in results]),
        "imports": imports,
        "sweep_driver": driver,
        "reclaim_race": races,
        "target_s": 2.0,
    }
    write("orchestration", result)
    return result


if __name__ == "__main__":
    print(run(quick=True))
