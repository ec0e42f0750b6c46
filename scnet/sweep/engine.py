"""The sweep engine: an Optuna study whose trials are ``scnet-run`` subprocesses.

Exactly-once design (why not just ``study.optimize``):

- Grid sweeps: the process that *creates* the study enqueues every grid point × seed once
  (``study.enqueue_trial``). Workers claim a WAITING trial by switching it to RUNNING, which
  both storages do atomically, so two workers never get the same trial. Optuna's
  ``GridSampler`` alone may hand the same point to concurrent workers, so it is only used to
  define and check the grid here.
- Each trial carries a ``point`` (its grid index; for TPE its first trial number): its run dir
  is ``runs/trial-XXXX`` whatever the attempt.
- A worker writes ``worker`` (host:pid:start time) right after its claim and a ``heartbeat``
  every few seconds while its trial runs. A RUNNING trial whose worker is gone (same host,
  process dead), whose heartbeat is older than ``stale_after``, or which is still unnamed
  ``CLAIM_GRACE_S`` after its claim (killed between the claim and the name; workers wait for
  such a trial rather than leave it behind) was interrupted: some process switches it to FAIL
  (atomic: exactly one wins, as in Optuna's own ``fail_stale_trials``) and the winner
  re-enqueues the same point, which then resumes from ``runs/trial-XXXX/checkpoints/last.ckpt``.
- Ctrl-C leaves the running trials RUNNING, so they are re-run the same way.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scnet.errors import ConfigError
from scnet.sweep import storage as storage_mod
from scnet.sweep.spec import SweepSpec, trial_overrides

READY_ATTR = "scnet_ready"
FINGERPRINT_ATTR = "scnet_fingerprint"
POLL_S = 1.0
# A claimer names itself on its trial right after the claim (milliseconds). A RUNNING trial
# still unnamed after this long lost its claimer between the two writes (kill -9).
CLAIM_GRACE_S = 30.0
RUNNER_ENV = "SCNET_SWEEP_RUNNER"


@dataclass
class Context:
    """Everything a worker needs; picklable so that spawned workers get it as is."""

    spec: SweepSpec
    overrides: list[str]
    sweep_dir: Path
    storage_url: str | None = None
    stale_after: float = 180.0
    gpus: list[str] = field(default_factory=list)
    worker_index: int = 0
    workers: int = 1

    @property
    def heartbeat_s(self) -> float:
        return max(1.0, min(30.0, self.stale_after / 6))


# ----------------------------------------------------------------------------- study


def make_sampler(spec: SweepSpec, seed: int | None = None):
    import optuna

    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({"seed": spec.seeds, **spec.grid}, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: SweepSpec):
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(ctx: Context, create: bool = False):
    """Load the study (or create it and enqueue the grid); check it is the same sweep."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage_mod.open_storage(ctx.storage_url, ctx.sweep_dir)
    kwargs = {"study_name": ctx.spec.name, "storage": storage, "sampler": make_sampler(ctx.spec)}
    kwargs["pruner"] = make_pruner(ctx.spec)
    fingerprint = ctx.spec.fingerprint(ctx.overrides)
    if create:
        try:
            study = optuna.create_study(direction=ctx.spec.direction, **kwargs)
        except optuna.exceptions.DuplicatedStudyError:
            study = None
        if study is not None:  # we created it: we alone enqueue the grid
            study.set_user_attr(FINGERPRINT_ATTR, fingerprint)
            _enqueue_missing(study, ctx.spec)
            study.set_user_attr(READY_ATTR, True)
            return study
    study = optuna.load_study(**kwargs)
    _check_same_sweep(study, ctx, fingerprint)
    if create and not _wait_ready(study):
        _enqueue_missing(study, ctx.spec)  # the creator died before finishing its enqueue
        study.set_user_attr(READY_ATTR, True)
    return study


def _wait_ready(study, timeout: float = 30.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if study.user_attrs.get(READY_ATTR):
            return True
        time.sleep(0.5)
    return False


def _check_same_sweep(study, ctx: Context, fingerprint: str) -> None:
    stored = study.user_attrs.get(FINGERPRINT_ATTR)
    if stored is not None and stored != fingerprint:
        was = json.loads(stored)
        raise ConfigError(
            f"study {ctx.spec.name!r} in {storage_mod.describe(ctx.storage_url, ctx.sweep_dir)} "
            f"was started with different settings (overrides {was.get('overrides')}); re-run with "
            "the same overrides, or pass --output-dir DIR for a separate sweep (nothing was changed)"
        )


def _enqueue_missing(study, spec: SweepSpec) -> None:
    if spec.sampler != "grid":
        return
    have = {t.user_attrs.get("point") for t in study.get_trials(deepcopy=False)}
    for point in spec.points():
        if point.index not in have:
            study.enqueue_trial(point.params, user_attrs={"point": point.index, "attempt": 1})


# ----------------------------------------------------------------------------- trial states


def latest_by_point(study) -> dict[int, Any]:
    """The newest attempt of every point (older attempts were interrupted)."""
    latest: dict[int, Any] = {}
    for t in study.get_trials(deepcopy=False):
        p = t.user_attrs.get("point", t.number)
        if p not in latest or t.number > latest[p].number:
            latest[p] = t
    return latest


def is_done(trial) -> bool:
    from optuna.trial import TrialState

    if trial.state == TrialState.FAIL:
        return "error" in trial.user_attrs  # no error attr: interrupted between fail and retry
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED)


def counts(study) -> dict[str, int]:
    """Per state, over the latest attempt of each point."""
    out: dict[str, int] = {}
    for t in latest_by_point(study).values():
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _proc_start(pid: int) -> str:
    """Process start time from /proc (guards against pid reuse); '' where unavailable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def worker_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"


def _owner_dead(owner: str) -> bool:
    host, pid, start = (owner.split(":") + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine: only its heartbeat can tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(start) and _proc_start(int(pid)) not in ("", start)


def is_stale(trial, stale_after: float, now: float | None = None) -> bool:
    from optuna.trial import TrialState

    if trial.state != TrialState.RUNNING:
        return False
    owner = trial.user_attrs.get("worker")
    if owner and _owner_dead(owner):
        return True
    beat = trial.user_attrs.get("heartbeat")
    if beat is None and trial.datetime_start is not None:
        beat = trial.datetime_start.timestamp()
    limit = stale_after if owner else min(stale_after, CLAIM_GRACE_S)
    return beat is not None and (now or time.time()) - float(beat) > limit


def is_unnamed(trial) -> bool:
    """RUNNING but its claimer has not named itself yet (just claimed, or died claiming)."""
    return trial.state.name == "RUNNING" and "worker" not in trial.user_attrs


def reclaim(study, ctx: Context) -> int:
    """Fail interrupted trials (atomically, one winner) and re-enqueue their points."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    n = 0
    for point, t in latest_by_point(study).items():
        orphan = t.state == TrialState.FAIL and "error" not in t.user_attrs
        if not orphan:
            if not is_stale(t, ctx.stale_after):
                continue
            try:
                if not storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another process reclaimed it first
        # A trial killed before it suggested has no params yet; its grid point is still in
        # the enqueued fixed params (GridSampler refuses an enqueue that lacks any of them).
        study.enqueue_trial(
            {**t.system_attrs.get("fixed_params", {}), **t.params},
            user_attrs={"point": point, "attempt": t.user_attrs.get("attempt", 1) + 1},
        )
        n += 1
    return n


# ----------------------------------------------------------------------------- worker


def pop_waiting(study):
    """Claim a WAITING trial (atomic: the storage lets one process switch it to RUNNING)."""
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                _name_owner(study, t._trial_id)
                return optuna.trial.Trial(study, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def _name_owner(study, trial_id: int) -> None:
    """Written first thing after a claim, so a killed worker's trial is recognised as such."""
    for key, value in (("worker", worker_id()), ("heartbeat", time.time())):
        study._storage.set_trial_user_attr(trial_id, key, value)


def _suggest(trial, spec: SweepSpec, point: int) -> dict[str, Any]:
    """Trial parameters (fixed ones come back as enqueued)."""
    if spec.sampler == "grid":
        params = {"seed": trial.suggest_categorical("seed", spec.seeds)}
        for key, values in spec.grid.items():
            params[key] = trial.suggest_categorical(key, values)
        return params
    params = {"seed": spec.seeds[point % len(spec.seeds)]}
    for key, d in spec.space.items():
        if d["type"] == "categorical":
            params[key] = trial.suggest_categorical(key, d["choices"])
        elif d["type"] == "int":
            step = d.get("step", 1)
            params[key] = trial.suggest_int(
                key, d["low"], d["high"], step=step, log=bool(d.get("log"))
            )
        else:
            params[key] = trial.suggest_float(
                key, d["low"], d["high"], step=d.get("step"), log=bool(d.get("log"))
            )
    return params


def budget_left(study, spec: SweepSpec) -> bool:
    return len(latest_by_point(study)) < spec.n_total


def next_trial(study, ctx: Context):
    trial = pop_waiting(study)
    if trial is None and ctx.spec.sampler == "tpe" and budget_left(study, ctx.spec):
        trial = study.ask()
        _name_owner(study, trial._trial_id)
    return trial


def worker_main(ctx: Context) -> None:
    """One worker process: claim trials until none is left, running each in a subprocess."""
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: running trials stay RUNNING
        study = open_study(ctx)
        while True:
            trial = next_trial(study, ctx)
            if trial is None:
                if reclaim(study, ctx):
                    continue
                if any(is_unnamed(t) for t in latest_by_point(study).values()):
                    time.sleep(POLL_S)  # named soon, or stale after CLAIM_GRACE_S: wait
                    continue
                return
            run_trial(study, trial, ctx)
            from scnet.sweep.results import write_results

            write_results(study, ctx.spec, ctx.sweep_dir)


def command(ctx: Context, params: dict[str, Any], point: int, run_dir: Path) -> list[str]:
    name = ctx.spec.name
    tags = ",".join("'" + f"{k}={v}".replace("'", "") + "'" for k, v in params.items())
    ours = [
        f"logger.wandb.group={name}",
        f"logger.wandb.tags=[{tags},'sweep={name}']",
        f"logger.wandb.name={name}-{point:04d}",
    ]
    runner = os.environ.get(RUNNER_ENV)  # tests swap in a fast stand-in for scnet-run
    entry = [sys.executable, runner] if runner else [sys.executable, "-m", "scnet.cli.run"]
    args = merge_overrides(merge_overrides(ctx.spec.base, ours), trial_overrides(params))
    cmd = [*entry, *merge_overrides(args, ctx.overrides)]  # later sources win, one entry per key
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file():
        cmd.append(f"ckpt_path={last}")
    return [*cmd, f"hydra.run.dir={run_dir}"]


def merge_overrides(first: Sequence[str], then: Sequence[str]) -> list[str]:
    """``first`` then ``then``, where an entry of ``then`` replaces one with the same key."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in then}
    return [o for o in first if o.split("=", 1)[0].lstrip("+~") not in keys] + list(then)


class _Heartbeat(threading.Thread):
    def __init__(self, study, trial_id: int, every: float) -> None:
        super().__init__(daemon=True)
        self.study, self.trial_id, self.every = study, trial_id, every
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            with contextlib.suppress(Exception):  # a missed beat is not fatal
                self.study._storage.set_trial_user_attr(self.trial_id, "heartbeat", time.time())


def trial_env(ctx: Context) -> dict[str, str]:
    """The trial's environment: its GPU, and its share of this machine's CPU cores.

    Each trial is a separate torch process whose intra-op pool defaults to every core, so N
    concurrent trials oversubscribe the cores N-fold and their OpenMP threads spin against
    each other: two 100-layer PlainNet runs on 2 cores took 97 s each side by side with 2
    threads, 4.5 s with 1 (BENCHMARKS.md). ``OMP_NUM_THREADS`` set by the user wins.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if ctx.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ctx.gpus[ctx.worker_index % len(ctx.gpus)]
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // max(1, ctx.workers)))
    return env


def run_trial(study, trial, ctx: Context) -> None:
    """Run one claimed trial to a final state (COMPLETE, FAIL with its reason, PRUNED)."""
    from optuna.trial import TrialState

    point = int(trial.user_attrs.get("point", trial.number))
    if "point" not in trial.user_attrs:
        trial.set_user_attr("point", point)
        trial.set_user_attr("attempt", 1)
    params = _suggest(trial, ctx.spec, point)
    run_dir = (ctx.sweep_dir / "runs" / f"trial-{point:04d}").resolve()
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("seed", params["seed"])
    result = _read_result(run_dir)
    if result.get("status") != "completed":  # completed but not told (killed in between)
        beat = _Heartbeat(study, trial._trial_id, ctx.heartbeat_s)
        beat.start()
        try:
            result, pruned = _execute(trial, ctx, params, point, run_dir)
        finally:
            beat.stopped.set()
        if pruned:
            _finish(study, trial, result, TrialState.PRUNED, None)
            return
    value = result.get("metrics", {}).get(ctx.spec.metric)
    if result.get("status") == "completed" and value is not None and math.isfinite(value):
        _finish(study, trial, result, TrialState.COMPLETE, float(value))
        return
    if result.get("status") == "completed":
        have = ", ".join(sorted(result.get("metrics", {})))
        result["error"] = f"metric {ctx.spec.metric} is missing or not finite (result has: {have})"
    _finish(study, trial, result, TrialState.FAIL, None)


def _finish(study, trial, result: dict[str, Any], state, value: float | None) -> None:
    trial.set_user_attr("metrics", result.get("metrics", {}))
    trial.set_user_attr("duration_s", result.get("duration_s"))
    if state.name != "COMPLETE":
        trial.set_user_attr("error", result.get("error") or state.name.lower())
    study.tell(trial, value, state=state)


def _read_result(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return {}


def _execute(trial, ctx: Context, params: dict[str, Any], point: int, run_dir: Path):
    """Run ``scnet-run``; return (result, pruned). Interrupts propagate (trial stays RUNNING)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = command(ctx, params, point, run_dir)
    log_path = run_dir / "sweep_trial.log"
    started = time.time()
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=trial_env(ctx))
        pruned = False
        try:
            while proc.poll() is None:
                # Wakes as soon as the trial exits (a bare sleep cost ~POLL_S per trial).
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_S)
                if proc.poll() is not None:
                    break
                if ctx.spec.pruner != "none" and _should_prune(trial, ctx.spec, run_dir):
                    pruned = True
                    proc.send_signal(signal.SIGTERM)
                    proc.wait()
        except BaseException:
            proc.send_signal(signal.SIGINT)  # let scnet-run record the interruption
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()
            raise
    result = _read_result(run_dir)
    if pruned:
        return {"metrics": result.get("metrics", {}), "error": "pruned",
                "duration_s": round(time.time() - started, 3)}, True  # fmt: skip
    if proc.returncode != 0 and result.get("status") != "failed":
        result = {
            "status": "failed",
            "metrics": {},
            "error": _exit_reason(proc.returncode, log_path),
        }
    result.setdefault("duration_s", round(time.time() - started, 3))
    return result, False


def _exit_reason(code: int, log_path: Path) -> str:
    """One line for a run that ended without result.json (bad config, killed, OOM-killed)."""
    if code < 0:
        sig = signal.Signals(-code).name
        hint = " (out of memory?)" if sig == "SIGKILL" else ""
        return f"scnet-run killed by {sig}{hint}"
    lines = [ln for ln in log_path.read_text().splitlines() if "error:" in ln]
    return lines[-1].strip() if lines else f"scnet-run exited with code {code}"


def _should_prune(trial, spec: SweepSpec, run_dir: Path) -> bool:
    """Report the per-epoch validation metric from metrics.csv and ask the pruner."""
    import csv

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return False
    reported = trial.user_attrs.get("_reported", -1)
    try:
        rows = list(csv.DictReader(path.open()))
    except (OSError, csv.Error):
        return False
    for row in rows:
        value, epoch = row.get(spec.prune_on), row.get("epoch")
        if value and epoch and int(float(epoch)) > reported:
            reported = int(float(epoch))
            trial.report(float(value), reported)
            trial.set_user_attr("_reported", reported)
    return reported >= 0 and trial.should_prune()
