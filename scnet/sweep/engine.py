"""The sweep engine: an Optuna study whose trials are ``scnet-run`` subprocesses.

Coordination is Optuna's: the grid is enqueued with ``enqueue_trial(skip_if_exists=True)``,
workers pop WAITING trials (one atomic WAITING -> RUNNING write each), TPE trials come from
``study.ask``, liveness is Optuna's heartbeat (``heartbeat_interval``/``grace_period``) and
``fail_stale_trials`` fails the trials of lost workers. Each FAILed attempt that was
interrupted is re-queued as a new WAITING copy of the same point, like Optuna's
``RetryHeartbeatStaleTrialCallback``, bounded by ``max_retry``.

What Optuna lacks, kept here, each for a reason:
- the study lock (``storage.study_lock``): reclaim, re-queue, budget check and claim are one
  serialized pass, so a stale trial is re-queued exactly once even when its reclaimer dies;
- trials as subprocesses, with per-worker GPU and CPU-thread pinning;
- the run-dir lock: the trial process holds ``flock`` on ``runs/trial-XXXX/.lock`` (inherited
  from its worker), so a re-queued attempt waits for an earlier one that is still alive, and no
  run dir is ever trained by two processes at once;
- resume from the run dir's ``checkpoints/last.ckpt``; pruning from its ``metrics.csv``.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import fcntl
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scnet.cli.common import path_override
from scnet.errors import ConfigError
from scnet.secrets import redact, redact_text
from scnet.sweep import storage as storage_mod
from scnet.sweep.results import latest_by_point, write_results
from scnet.sweep.spec import SweepSpec, trial_overrides
from scnet.utils.io import atomic_write_text

IDENTITY_ATTR = "scnet_identity"
HEARTBEAT_ATTR = "scnet_heartbeat"  # [interval, grace] in s, fixed when the study is created
POLL_S = 1.0
TRIAL_STOP_S = 60.0  # a stopped trial gets this long to write its checkpoint and result
RUNNER_ENV = "SCNET_SWEEP_RUNNER"
# srun's per-step task variables. A trial inherits its worker's SLURM job step (one task): with
# them Lightning's SLURMEnvironment takes SLURM_NTASKS=1 as the world size and a DDP trial
# starts one process; without them Lightning launches all of its ranks itself.
SLURM_STEP_VARS = ("SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NTASKS_PER_NODE", "SLURM_PROCID",
                   "SLURM_LOCALID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_TASKS_PER_NODE")  # fmt: skip
PR_SET_PDEATHSIG = 1


class Interrupted(BaseException):
    """SIGINT/SIGTERM reached a driver or worker (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Context:
    """Everything a worker needs; picklable so that spawned workers get it as is."""

    spec: SweepSpec
    overrides: list[str]
    sweep_dir: Path
    storage_url: str = ""
    stale_after: float = 180.0
    gpus: list[str] = field(default_factory=list)
    worker_index: int = 0
    workers: int = 1
    max_retry: int = 2
    parent_pid: int = 0  # a local worker exits when this process (its driver) dies

    def __post_init__(self) -> None:
        self.storage_url = storage_mod.resolve_url(self.storage_url or None, self.sweep_dir)

    @property
    def grace_s(self) -> int:
        return max(2, math.ceil(self.stale_after))

    @property
    def heartbeat_s(self) -> int:
        return max(1, min(30, self.grace_s // 3))

    def identity(self) -> dict[str, Any]:
        """What makes two invocations the same study (secrets masked: it is stored)."""
        return {
            "sweep": json.loads(self.spec.fingerprint([])),
            "overrides": mask_overrides(self.overrides),
            "output_dir": str(self.sweep_dir),
        }


def mask_overrides(overrides: Sequence[str]) -> list[str]:
    """``key=value`` strings with secret-looking keys' values and URL passwords masked."""
    out = []
    for o in overrides:
        if "=" not in o:
            out.append(redact_text(o))
            continue
        key, _, value = o.partition("=")
        out.append(f"{key}={redact({key.lstrip('+~').rsplit('.', 1)[-1]: value}).popitem()[1]}")
    return out


# ----------------------------------------------------------------------------- study


def _sampler(spec: SweepSpec):
    import optuna

    if spec.sampler == "grid":  # every trial is enqueued with fixed params: nothing to sample
        return optuna.samplers.RandomSampler(seed=0)
    return optuna.samplers.TPESampler()  # unseeded: concurrent workers must differ


def _pruner(spec: SweepSpec):
    import optuna

    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def open_study(ctx: Context):
    """Create or load the study, check it is the same sweep, and enqueue missing grid points."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = storage_mod.open_storage(ctx.storage_url, ctx.heartbeat_s, ctx.grace_s)
    kwargs = {"study_name": ctx.spec.study_name, "storage": storage, "sampler": _sampler(ctx.spec),
              "pruner": _pruner(ctx.spec)}  # fmt: skip
    with lock(storage, ctx):
        study = optuna.create_study(direction=ctx.spec.direction, load_if_exists=True, **kwargs)
        attrs = study.user_attrs
        if IDENTITY_ATTR in attrs:
            _check_identity(attrs[IDENTITY_ATTR], ctx)
        else:  # new (or its creator died before this write, under the same lock)
            study.set_user_attr(IDENTITY_ATTR, ctx.identity())
            study.set_user_attr(HEARTBEAT_ATTR, [ctx.heartbeat_s, ctx.grace_s])
        storage.heartbeat_interval, storage.grace_period = study.user_attrs[HEARTBEAT_ATTR]
        _enqueue_grid(study, ctx.spec)
    return study


def _check_identity(stored: dict[str, Any], ctx: Context) -> None:
    now = ctx.identity()

    def show(key: str, value: Any) -> str:
        if key == "output_dir":
            return f"--output-dir {Path(value).parents[1]}"
        return f"overrides {value}" if key == "overrides" else "other sweep-file settings"

    for key in ("output_dir", "overrides", "sweep"):
        if stored.get(key) != now[key]:
            raise ConfigError(
                f"study {ctx.spec.study_name!r} in {storage_mod.describe(ctx.storage_url)} was "
                f"started with {show(key, stored.get(key))} (now {show(key, now[key])}); re-run "
                "with the same, or use another --storage for a separate sweep (nothing was changed)"
            )


def _enqueue_grid(study, spec: SweepSpec) -> None:
    """Enqueue every grid point not in the study yet (idempotent; called under the lock)."""
    if spec.sampler != "grid":
        return
    have = {t.user_attrs.get("point") for t in study.get_trials(deepcopy=False)}
    for point in spec.points():
        if point.index not in have:
            study.enqueue_trial(
                point.params, user_attrs={"point": point.index, "attempt": 1}, skip_if_exists=True
            )


@contextlib.contextmanager
def lock(storage, ctx: Context) -> Iterator[None]:
    rdb = getattr(storage, "_backend", storage)  # a study's storage is a cache around it
    with storage_mod.study_lock(rdb, ctx.storage_url, ctx.spec.study_name):
        yield


# ----------------------------------------------------------------------------- trial states


def retries_after(trial) -> int:
    """Automatic re-runs a re-queued copy of this FAILed attempt would have used."""
    return trial.user_attrs.get("retries", 0) + (not trial.user_attrs.get("interrupted"))


def is_done(trial, max_retry: int) -> bool:
    """Finished for good: COMPLETE, PRUNED, or FAIL that is not re-queued automatically (an
    error of the trial's own, or lost more than ``max_retry`` times)."""
    if trial.state.name == "FAIL":
        own_error = "error" in trial.user_attrs and not trial.user_attrs.get("interrupted")
        return own_error or retries_after(trial) > max_retry
    return trial.state.name in ("COMPLETE", "PRUNED")


def error_of(trial, max_retry: int) -> str:
    if "error" in trial.user_attrs and not trial.user_attrs.get("interrupted"):
        return trial.user_attrs["error"]
    return f"lost {retries_after(trial)} times (node loss, kill -9; max_retry {max_retry})"


def _proc_start(pid: int) -> str:
    """Process start time from /proc (guards against pid reuse); '' where unavailable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def worker_id() -> str:
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_proc_start(pid)}"


def owner_dead(owner: str) -> bool:
    """True when ``owner`` is a process of this host that no longer exists (no need to wait
    for its heartbeat to lapse); other hosts' trials are judged by their heartbeat alone."""
    host, pid, start = (owner.split(":") + ["", "", ""])[:3]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return bool(start) and _proc_start(int(pid)) not in ("", start)


def reclaim(study, ctx: Context) -> int:
    """Fail lost RUNNING trials and re-queue interrupted points once. Call under the lock."""
    import optuna
    from optuna.trial import TrialState

    optuna.storages.fail_stale_trials(study)  # heartbeat older than the grace period
    storage = study._storage
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        # Claims are named under this lock, so an unnamed RUNNING trial lost its claimer.
        owner = t.user_attrs.get("worker")
        if owner is None or owner_dead(owner):
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
    n = 0
    for t in latest_by_point(study).values():
        if t.state == TrialState.FAIL and not is_done(t, ctx.max_retry):
            requeue(study, t, retries_after(t))  # an interruption (Ctrl-C) does not count
            n += 1
    return n


def requeue(study, t, retries: int) -> None:
    """A WAITING copy of trial ``t`` (same point and params), as Optuna's retry callback adds."""
    import optuna

    system_attrs = {**t.system_attrs}
    system_attrs["retry_history"] = [*system_attrs.get("retry_history", []), t.number]
    point = t.user_attrs.get("point", t.number)
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            params=t.params,
            distributions=t.distributions,
            user_attrs={
                "point": point,
                "attempt": t.user_attrs.get("attempt", 1) + 1,
                "retries": retries,
            },
            system_attrs=system_attrs,
        )  # fmt: skip
    )


def retry_failed(study, ctx: Context) -> int:
    """--retry-failed: re-queue every point whose newest attempt failed with an error, once per
    invocation (so a deterministic failure cannot loop)."""
    with lock(study._storage, ctx):
        failed = [
            t
            for t in latest_by_point(study).values()
            if t.state.name == "FAIL" and is_done(t, ctx.max_retry)
        ]
        for t in failed:
            requeue(study, t, 0)
    return len(failed)


# ----------------------------------------------------------------------------- worker


def next_trial(study, ctx: Context):
    """Reclaim, then claim a WAITING trial or ask a new TPE one: one pass under the lock."""
    import optuna

    with lock(study._storage, ctx):
        reclaim(study, ctx)
        trial_id = study._pop_waiting_trial_id()  # Optuna's atomic WAITING -> RUNNING
        tpe_left = ctx.spec.sampler == "tpe" and len(latest_by_point(study)) < ctx.spec.n_total
        if trial_id is None and tpe_left:  # the budget, counted under the lock: exact
            trial_id = study.ask()._trial_id
        if trial_id is None:
            return None
        study._storage.set_trial_user_attr(trial_id, "worker", worker_id())
        study._storage.record_heartbeat(trial_id)
    return optuna.Trial(study, trial_id)


def die_with(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (driver kill -9)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
    if parent_pid and os.getppid() != parent_pid:  # it died before the prctl
        os.kill(os.getpid(), sig)


def on_signals(handler=None) -> None:
    """SIGINT/SIGTERM raise :class:`Interrupted` once; later signals are ignored (cleanup runs)."""
    fired: list[int] = []

    def raise_once(signum: int, _frame) -> None:
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler or raise_once)


def worker_main(ctx: Context) -> None:
    """One worker process: claim trials until none is left, running each in a subprocess."""
    on_signals()
    if ctx.parent_pid:
        die_with(ctx.parent_pid)
    import optuna

    try:
        study = open_study(ctx)
        while (trial := next_trial(study, ctx)) is not None:
            try:
                run_trial(study, trial, ctx)
            except optuna.exceptions.UpdateFinishedTrialError:
                _taken_over(trial)
            write_results(study, ctx.spec, ctx.sweep_dir)
    except Interrupted as sig:
        sys.exit(128 + sig.signum)


def _taken_over(trial) -> None:
    """Our heartbeat lapsed (a paused or overloaded host) and another process failed the trial
    and re-queued it; the re-queued attempt waits on the run-dir lock and adopts our result."""
    print(f"trial {trial.number} was taken over by another worker", file=sys.stderr)


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
        cmd.append(path_override("ckpt_path", last))
    return [*cmd, path_override("hydra.run.dir", run_dir)]


def merge_overrides(first: Sequence[str], then: Sequence[str]) -> list[str]:
    """``first`` then ``then``, where an entry of ``then`` replaces one with the same key."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in then}
    return [o for o in first if o.split("=", 1)[0].lstrip("+~") not in keys] + list(then)


def trial_env(ctx: Context) -> dict[str, str]:
    """The trial's environment: its GPU, and its share of this machine's CPU cores.

    Each trial is a separate torch process whose intra-op pool defaults to every core, so N
    concurrent trials oversubscribe the cores N-fold and their OpenMP threads spin against
    each other: two 100-layer PlainNet runs on 2 cores took 97 s each side by side with 2
    threads, 4.5 s with 1 (BENCHMARKS.md). ``OMP_NUM_THREADS`` set by the user wins. srun's
    task variables are dropped (``SLURM_STEP_VARS``) so DDP trials start all their ranks.
    """
    env = {k: v for k, v in os.environ.items() if k not in SLURM_STEP_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    if ctx.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ctx.gpus[ctx.worker_index % len(ctx.gpus)]
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // max(1, ctx.workers)))
    return env


@contextlib.contextmanager
def run_dir_lock(run_dir: Path) -> Iterator[int]:
    """An exclusive ``flock`` on the run dir, waited for; its fd is handed to the trial process,
    so the lock lives as long as the trial does, even if this worker is killed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # an earlier attempt still running: wait for it
        yield fd
    finally:
        os.close(fd)


def run_trial(study, trial, ctx: Context) -> None:
    """Run one claimed trial to a final state (COMPLETE, FAIL with its reason, PRUNED)."""
    from optuna.storages._heartbeat import get_heartbeat_thread
    from optuna.trial import TrialState

    if "point" not in trial.user_attrs:  # a new TPE trial: its number names its run dir
        trial.set_user_attr("point", trial.number)
        trial.set_user_attr("attempt", 1)
    point = int(trial.user_attrs["point"])
    params = _suggest(trial, ctx.spec, point)
    run_dir = (ctx.sweep_dir / "runs" / f"trial-{point:04d}").resolve()
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("seed", params["seed"])
    with get_heartbeat_thread(trial._trial_id, study._storage), run_dir_lock(run_dir) as fd:
        result, state = _read_result(run_dir), None
        problem = _adopt_problem(run_dir, command(ctx, params, point, run_dir))
        if problem:
            result = {"status": "failed", "metrics": {}, "error": problem}
        elif result.get("status") != "completed":  # else: completed but not told (killed between)
            try:
                result, state = _execute(trial, ctx, params, point, run_dir, fd)
            except Interrupted as sig:
                trial.set_user_attr("interrupted", sig.args[0])
                _finish(study, trial, {"error": f"interrupted by {sig.args[0]}"}, TrialState.FAIL)
                raise
        value = result.get("metrics", {}).get(ctx.spec.metric)
        if state is None and result.get("status") == "completed":
            if value is not None and math.isfinite(value):
                state = TrialState.COMPLETE
            else:
                have = ", ".join(sorted(result.get("metrics", {})))
                result["error"] = f"metric {ctx.spec.metric} is missing or not finite (has: {have})"
        _finish(study, trial, result, state or TrialState.FAIL, value)


def _finish(study, trial, result: dict[str, Any], state, value: float | None = None) -> None:
    trial.set_user_attr("metrics", result.get("metrics", {}))
    trial.set_user_attr("duration_s", result.get("duration_s"))
    if state.name != "COMPLETE":
        trial.set_user_attr("error", redact_text(str(result.get("error") or state.name.lower())))
    try:
        study.tell(trial, value if state.name == "COMPLETE" else None, state=state)
    except ValueError:  # "Cannot tell a FAIL trial": taken over
        _taken_over(trial)


def _read_result(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "result.json").read_text())
    except (OSError, ValueError):
        return {}


def _pdeathsig() -> None:  # runs in the forked child, before exec
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _execute(trial, ctx: Context, params: dict[str, Any], point: int, run_dir: Path, fd: int):
    """Run ``scnet-run``; return (result, PRUNED state or None). Stops it on Interrupted."""
    from optuna.trial import TrialState

    cmd = command(ctx, params, point, run_dir)
    log_path = run_dir / "sweep_trial.log"
    started = time.time()
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(mask_overrides(cmd))}\n")
        log.flush()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=trial_env(ctx),
                                pass_fds=(fd,), preexec_fn=_pdeathsig)  # fmt: skip
        pruned = False
        try:
            while proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=POLL_S)  # wakes as soon as the trial exits
                running = proc.poll() is None and ctx.spec.pruner != "none"
                if running and _should_prune(trial, ctx.spec, run_dir):
                    pruned = True
                    proc.send_signal(signal.SIGTERM)
                    proc.wait()
        except Interrupted as sig:
            if sig.signum == signal.SIGTERM:  # Ctrl-C reached the whole process group already
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=TRIAL_STOP_S)
            if proc.poll() is None:
                proc.kill()
            raise
    result = _read_result(run_dir)
    result.setdefault("duration_s", round(time.time() - started, 3))
    if pruned:
        return {"metrics": result.get("metrics", {}), "error": "pruned"}, TrialState.PRUNED
    if proc.returncode != 0 and result.get("status") != "failed":
        result = {
            "status": "failed",
            "metrics": {},
            "error": _exit_reason(proc.returncode, log_path),
        }
    return result, None


def _adopt_problem(run_dir: Path, cmd: list[str]) -> str:
    """Never resume a run dir made by another configuration (records this one's first)."""
    args = [a for a in mask_overrides(cmd[1:]) if not a.startswith("ckpt_path=")]
    path = run_dir / "sweep_trial.json"
    before = _recorded_args(path)
    if before is not None:
        if before != args:
            diff = sorted(set(before) ^ set(args))[:2]
            return f"{run_dir} was made by another configuration (differs in {diff}); move it away"
        return ""
    atomic_write_text(path, json.dumps({"args": args}))  # a kill -9 mid-write leaves no torn file
    return ""


def _recorded_args(path: Path) -> list[str] | None:
    """The args a run dir was made with; None when there is no readable record.

    An unreadable record (torn by an older scnet killed while writing it) names no run: it was
    written before the trial started, under the run-dir lock, so nothing ran from it.
    """
    try:
        args = json.loads(path.read_text()).get("args")
    except (OSError, ValueError, AttributeError):
        return None
    return args if isinstance(args, list) else None


def _exit_reason(code: int, log_path: Path) -> str:
    """One line for a run that ended without result.json (bad config, killed, OOM-killed)."""
    if code < 0:
        sig = signal.Signals(-code).name
        hint = " (out of memory?)" if sig == "SIGKILL" else ""
        return f"scnet-run killed by {sig}{hint}"
    lines = [ln for ln in log_path.read_text().splitlines() if "error:" in ln]
    return lines[-1].strip() if lines else f"scnet-run exited with code {code}"


def _suggest(trial, spec: SweepSpec, point: int) -> dict[str, Any]:
    """Trial parameters (enqueued ones come back as they were fixed)."""
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
            params[key] = trial.suggest_int(
                key, d["low"], d["high"], step=d.get("step", 1), log=bool(d.get("log"))
            )
        else:
            params[key] = trial.suggest_float(
                key, d["low"], d["high"], step=d.get("step"), log=bool(d.get("log"))
            )
    return params


def _should_prune(trial, spec: SweepSpec, run_dir: Path) -> bool:
    """Report the per-epoch validation metric from metrics.csv and ask the pruner."""
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
