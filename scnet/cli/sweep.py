"""``scnet-sweep``: run a named sweep (``sweeps/NAME.yaml``) with Optuna, resumably.

    scnet-sweep table2                                  # one worker, SQLite study in the sweep dir
    scnet-sweep table2 --workers 4                      # 4 local workers (one GPU each)
    scnet-sweep sc_sensitivity data=digits trainer.max_epochs=2   # overrides for every trial
    scnet-sweep table2 --storage postgresql://user@host/db        # share one study across nodes
    scnet-sweep table2 --seeds 0 --set depth=20,56      # a smaller look, in its own study
    scnet-sweep table2 --dry-run                        # list the trials

Re-running the same command resumes: completed trials are kept, interrupted ones re-run from
their last checkpoint (at most max_retry times each), failed ones only with --retry-failed.
Exit codes: 0 every trial completed, or is still running in another driver that shares the
study; 1 some trials failed or were not finished; 2 bad input (one line); 130/143 stopped by
SIGINT/SIGTERM (running trials stopped, checkpoints kept).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shlex
import signal
import sys
from pathlib import Path

from scnet.cli.common import check_group_overrides, compose_config, debug_enabled, fail
from scnet.errors import ConfigError, ScnetError
from scnet.sweep import spec as spec_mod

PROG = "scnet-sweep"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("name", help=f"a sweep in sweeps/ ({', '.join(spec_mod.available())})")
    p.add_argument("overrides", nargs="*", help="scnet-run overrides applied to every trial")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--storage", default=None,
                   help="sqlite:///PATH (default: the sweep dir's optuna.db, one machine) or "
                        "postgresql://USER@HOST/DB (several machines)")  # fmt: skip
    p.add_argument("--output-dir", type=Path, default=Path("outputs"),
                   help="root for sweeps/NAME (default: outputs)")  # fmt: skip
    p.add_argument("--sweeps-dir", type=Path, default=spec_mod.SWEEPS_DIR, help=argparse.SUPPRESS)
    p.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    p.add_argument("--stale-after", type=float, default=180.0,
                   help="seconds without a heartbeat before a RUNNING trial of another host "
                        "counts as lost (default 180; fixed when the study is created)")  # fmt: skip
    p.add_argument("--max-retry", type=int, default=None,
                   help="re-runs of a lost trial (default: the sweep's max_retry, else "
                        f"{spec_mod.DEFAULT_MAX_RETRY})")  # fmt: skip
    p.add_argument("--retry-failed", action="store_true",
                   help="re-run failed trials once more, from their last checkpoint")  # fmt: skip
    p.add_argument("--gpus-per-trial", type=int, default=1, help="GPUs given to each worker")
    p.add_argument("--share-gpus", action="store_true",
                   help="allow more workers x GPUs than visible GPUs (round-robin sharing)")  # fmt: skip
    p.add_argument("--seeds", default=None, help="comma-separated seeds replacing the sweep's")
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                   help="replace a grid key's values (repeatable)")  # fmt: skip
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local worker processes (default) or a SLURM job array via submitit")  # fmt: skip
    p.add_argument("--partition", default=None, help="SLURM partition (--launcher slurm)")
    p.add_argument("--account", default=None, help="SLURM account (--launcher slurm)")
    p.add_argument("--time", type=int, default=24 * 60, metavar="MIN",
                   help="SLURM time limit per worker in minutes (default 1440)")  # fmt: skip
    p.add_argument(
        "--cpus-per-trial", type=int, default=8, help="SLURM CPUs per worker (default 8)"
    )
    p.add_argument("--export", nargs=2, metavar=("wandb", "FILE"),
                   help="write the sweep as a W&B Sweeps config to FILE and exit")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_intermixed_args(argv)  # overrides and options in any order


def check_overrides(spec: spec_mod.SweepSpec, overrides: list[str]) -> None:
    """Every override and every grid value composes (one line naming the key otherwise)."""
    from scnet.sweep.engine import merge_overrides

    for o in overrides:
        if "=" not in o:
            raise ConfigError(f"override {o!r} is not key=value")
        key = o.split("=", 1)[0].lstrip("+~")
        if key in spec.param_keys:
            raise ConfigError(
                f"{key} is varied by sweep {spec.name} ({'seeds' if key == 'seed' else 'grid/space'} "
                f"in {spec.path}); use --seeds/--set, edit the sweep file or copy it"
            )
    base = merge_overrides(spec.base, overrides)
    check_group_overrides(base)
    for key, values in spec.grid.items():  # composing each trial config is preflight's job
        for value in values:
            try:
                check_group_overrides([f"{key}={spec_mod.format_value(value)}"])
            except ConfigError as err:
                raise ConfigError(f"{spec.path}: grid.{key} value {value!r}: {err}") from None
    for key in spec.space:
        if key not in compose_config(base) and "." not in key:
            raise ConfigError(f"{spec.path}: space.{key} is not a config key")


def preflight(spec: spec_mod.SweepSpec, overrides: list[str], hardware: bool = True) -> None:
    """Compose every distinct trial config (seeds aside) and validate it as scnet-run would,
    so a sweep whose trials cannot start fails in seconds; one line per distinct error.
    ``hardware=False`` (--launcher slurm, --export, --dry-run): the trials run on other
    machines, so this one's GPUs are not checked."""
    from scnet import preflight as checks  # the run path's own checks (no torch import)
    from scnet.sweep.engine import merge_overrides

    combos = {tuple(spec_mod.trial_overrides({k: v for k, v in p.params.items() if k != "seed"}))
              for p in spec.points()} if spec.sampler == "grid" else {()}  # fmt: skip
    errors: dict[str, str] = {}
    for combo in sorted(combos):
        try:
            cfg = compose_config(merge_overrides(spec.base, [*combo, *overrides]))
            checks.validate(cfg, hardware=hardware)
        except ConfigError as err:
            errors.setdefault(str(err), " ".join(combo) or "every trial")
    if errors:
        lines = [f"{where}: {msg}" for msg, where in errors.items()]
        for line in lines[:-1]:
            print(f"{PROG}: error: {line}", file=sys.stderr)
        raise ConfigError(lines[-1])


def visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip()]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:
        return []


def gpu_slots(workers: int, per_trial: int, share: bool, ids: list[str] | None = None) -> list[str]:
    """CUDA_VISIBLE_DEVICES values, one per worker slot (empty without GPUs); refuses to put
    more trials on the GPUs than they hold unless ``share``."""
    ids = visible_gpus() if ids is None else ids
    if not ids:
        return []
    per = max(1, per_trial)
    if per > len(ids) or (workers * per > len(ids) and not share):
        raise ConfigError(
            f"--workers {workers} x --gpus-per-trial {per} needs {workers * per} GPUs, "
            f"{len(ids)} visible ({','.join(ids)}): lower --workers"
            + ("" if per > len(ids) else ", or pass --share-gpus to share them round-robin")
        )
    slots = [",".join(ids[i : i + per]) for i in range(0, len(ids) - per + 1, per)]
    idle = ids[len(slots) * per :] if workers >= len(slots) else ids[workers * per :]
    if idle:
        print(f"{PROG}: note: GPU {','.join(idle)} stays idle ({len(ids)} visible, {per} per "
              f"trial, {workers} workers)")  # fmt: skip
    return slots


def dry_run(spec: spec_mod.SweepSpec, overrides: list[str], sweep_dir: Path) -> None:
    from scnet.sweep.engine import mask_overrides, merge_overrides

    base = " ".join(mask_overrides(merge_overrides(spec.base, overrides)))
    print(f"{PROG}: {spec.name} ({spec.reproduces or spec.description}): {spec.n_total} trials")
    print(f"  every trial: scnet-run {base}")
    if spec.sampler == "grid":
        for point in spec.points():
            args = " ".join(spec_mod.trial_overrides(point.params))
            print(f"  trial-{point.index:04d}: {args}")
    else:
        print(f"  tpe over {', '.join(spec.space)}, pruner {spec.pruner}, seeds {spec.seeds}")
    print(f"  run dirs: {sweep_dir}/runs/trial-XXXX")


def progress(study, ctx, procs: list, show: bool) -> None:
    """A bar of trials done / total, updated from the shared study until the workers end."""
    from tqdm import tqdm

    from scnet.sweep.engine import is_done
    from scnet.sweep.results import latest_by_point

    bar = tqdm(total=ctx.spec.n_total, desc=ctx.spec.name, unit="trial", disable=not show)
    while any(p.is_alive() for p in procs):
        if show:
            done = sum(is_done(t, ctx.max_retry) for t in latest_by_point(study).values())
            bar.update(done - bar.n)  # redraw on change only: logs of non-tty runs stay short
        for p in procs:
            p.join(timeout=1.0 / len(procs))
    bar.close()


def sweep_dir_for(args: argparse.Namespace, spec: spec_mod.SweepSpec) -> Path:
    """``OUT/sweeps/NAME``; a --seeds/--set look lives under ``OUT/looks/TAG`` instead."""
    return (spec_mod.look_root(args.output_dir, spec) / "sweeps" / spec.name).resolve()


def report_command(args: argparse.Namespace, spec: spec_mod.SweepSpec) -> str:
    """The scnet-report command for this sweep (or look: the same --seeds/--set)."""
    words = [spec.name, *(["--seeds", args.seeds] if args.seeds is not None else [])]
    for item in args.set:
        words += ["--set", item]
    return "scnet-report " + shlex.join([*words, "--output-dir", str(args.output_dir)])


def run(args: argparse.Namespace) -> int:
    from scnet.sweep import engine, storage
    from scnet.sweep.results import write_results

    spec = spec_mod.load(args.name, args.sweeps_dir)
    if args.name != spec.name:
        print(f"{PROG}: {args.name} is an alias of {spec.name}")
    spec = spec_mod.shrink(spec, args.seeds, args.set)
    if args.workers < 1:
        raise ConfigError(f"--workers={args.workers} is invalid: use 1 or more")
    if args.stale_after < 2:
        raise ConfigError(f"--stale-after={args.stale_after} is invalid: use 2 seconds or more")
    max_retry = spec.max_retry if args.max_retry is None else args.max_retry
    if not 0 <= max_retry <= spec_mod.MAX_RETRY_LIMIT:
        raise ConfigError(
            f"--max-retry={max_retry} is invalid: use 0 to {spec_mod.MAX_RETRY_LIMIT}"
        )
    sweep_dir = sweep_dir_for(args, spec)
    url = storage.resolve_url(args.storage, sweep_dir)
    check_overrides(spec, args.overrides)
    here = args.launcher == "local" and not args.dry_run and not args.export
    preflight(spec, args.overrides, hardware=here)
    if args.dry_run:
        dry_run(spec, args.overrides, sweep_dir)
        return 0
    if args.export:
        return export(spec, args.overrides, *args.export)
    local = args.launcher == "local"
    gpus = gpu_slots(args.workers, args.gpus_per_trial, args.share_gpus) if local else []
    ctx = engine.Context(
        spec=spec, overrides=list(args.overrides), sweep_dir=sweep_dir, storage_url=url,
        stale_after=args.stale_after, workers=args.workers, max_retry=max_retry,
        gpus=gpus, parent_pid=os.getpid(),
    )  # fmt: skip
    engine.on_signals()
    try:
        study = engine.open_study(ctx)
        if args.retry_failed:
            print(f"{PROG}: re-running {engine.retry_failed(study, ctx)} failed trials")
        if not local:
            return run_slurm(study, ctx, args)
        procs = start_workers(ctx)
        try:
            progress(study, ctx, procs, show=not args.no_progress)
        except engine.Interrupted as sig:
            return stop(study, ctx, procs, sig)
    except engine.Interrupted as sig:
        print(f"{PROG}: interrupted by {sig.args[0]} before any trial started", file=sys.stderr)
        return 128 + sig.signum
    path = write_results(study, spec, sweep_dir)
    return summary(study, ctx, path, report_command(args, spec))


def export(spec: spec_mod.SweepSpec, overrides: list[str], fmt: str, path: str) -> int:
    import yaml

    from scnet.sweep.wandb_export import to_wandb

    if fmt != "wandb":
        raise ConfigError(f"--export {fmt!r} is unknown: choose wandb")
    try:
        Path(path).write_text(yaml.safe_dump(to_wandb(spec, overrides), sort_keys=False))
    except OSError as err:
        raise ConfigError(f"--export wandb {path}: cannot write ({err.strerror})") from None
    print(f"{PROG}: wrote {path}: wandb sweep {path}, then per GPU: "
          "CUDA_VISIBLE_DEVICES=i wandb agent ENTITY/PROJECT/SWEEP_ID")  # fmt: skip
    return 0


def run_slurm(study, ctx, args: argparse.Namespace) -> int:
    """Submit the workers as a job array, wait for them (Ctrl-C cancels them), summarize."""
    from scnet.sweep import engine, slurm
    from scnet.sweep.results import write_results

    opts = slurm.SlurmOptions(partition=args.partition, time_min=args.time, account=args.account,
                              gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial)  # fmt: skip
    jobs = slurm.submit(ctx, opts)
    print(f"{PROG}: submitted {len(jobs)} workers: {', '.join(j.job_id for j in jobs)} "
          f"(logs in {ctx.sweep_dir / 'slurm'})", flush=True)  # fmt: skip
    try:
        for job in jobs:
            job.wait()
    except engine.Interrupted as sig:
        for job in jobs:
            job.cancel(check=False)
        print(f"{PROG}: interrupted by {sig.args[0]}: workers cancelled; re-run to resume",
              file=sys.stderr)  # fmt: skip
        return 128 + sig.signum
    for job in jobs:
        if job.exception() is not None:
            first = str(job.exception()).strip().splitlines()[-1:] or ["?"]
            print(f"{PROG}: worker job {job.job_id} failed: {first[0]}", file=sys.stderr)
    path = write_results(study, ctx.spec, ctx.sweep_dir)
    return summary(study, ctx, path, report_command(args, ctx.spec))


def start_workers(ctx) -> list:
    from scnet.sweep import engine

    spawn = mp.get_context("spawn")
    procs = []
    for i in range(ctx.workers):
        wctx = engine.Context(**{**ctx.__dict__, "worker_index": i})
        procs.append(spawn.Process(target=engine.worker_main, args=(wctx,), name=f"worker-{i}"))
        procs[-1].start()
    return procs


def stop(study, ctx, procs: list, sig) -> int:
    """Stop the workers (each stops its trial: checkpoint kept, state recorded), one line."""
    from scnet.sweep.results import write_results

    for p in procs:
        if p.is_alive() and p.pid:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs:
        p.join()
    write_results(study, ctx.spec, ctx.sweep_dir)
    print(f"{PROG}: interrupted by {sig.args[0]}: workers and their trials stopped, checkpoints "
          "kept; re-run the same command to resume", file=sys.stderr)  # fmt: skip
    return 128 + sig.signum


def summary(study, ctx, results_path: Path, report: str) -> int:
    from scnet.sweep import storage
    from scnet.sweep.engine import error_of, is_done, owner_dead
    from scnet.sweep.results import latest_by_point

    latest = latest_by_point(study)
    by_state: dict[str, int] = {}
    for t in latest.values():
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    failed = [t for t in latest.values() if t.state.name == "FAIL" and is_done(t, ctx.max_retry)]
    # This driver's workers have ended, so a RUNNING trial whose owner lives belongs to another
    # driver (another node of the sweep), which reports it.
    elsewhere = sum(
        t.state.name == "RUNNING" and not owner_dead(t.user_attrs.get("worker", ""))
        for t in latest.values()
    )
    done = by_state.get("COMPLETE", 0) + by_state.get("PRUNED", 0) + len(failed)
    left = ctx.spec.n_total - done - elsewhere
    parts = [f"{by_state.get('COMPLETE', 0)} completed", f"{len(failed)} failed"]
    if by_state.get("PRUNED"):
        parts.append(f"{by_state['PRUNED']} pruned")
    if elsewhere:
        parts.append(f"{elsewhere} still running in another driver")
    if left > 0:
        parts.append(f"{left} not finished (re-run this command to resume)")
    print(f"{PROG}: {ctx.spec.name}: {ctx.spec.n_total} trials: {', '.join(parts)}")
    for t in sorted(failed, key=lambda t: t.user_attrs.get("point", t.number)):
        point = t.user_attrs.get("point", t.number)
        print(f"{PROG}:   trial-{point:04d} failed: {error_of(t, ctx.max_retry)}")
    if failed:
        print(
            f"{PROG}: re-run with --retry-failed to retry the failed trials from their checkpoints"
        )
    print(f"{PROG}: results: {results_path}")
    print(f"{PROG}: dashboard: {storage.dashboard_command(ctx.storage_url)}")
    print(f"{PROG}: report: {report}")
    return 1 if failed or left > 0 else 0


def main() -> None:
    args = parse_args(sys.argv[1:])
    try:
        code = run(args)
    except ScnetError as err:
        if debug_enabled():
            raise
        fail(PROG, str(err), err.exit_code)
    sys.exit(code)


if __name__ == "__main__":
    main()
