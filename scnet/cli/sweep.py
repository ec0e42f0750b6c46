"""``scnet-sweep``: run a named sweep (``sweeps/NAME.yaml``) with Optuna, resumably.

    scnet-sweep table2                                  # one worker, file storage
    scnet-sweep table2 --workers 4                      # 4 local workers (GPUs round-robin)
    scnet-sweep sc_sensitivity data=digits trainer.max_epochs=2   # overrides for every trial
    scnet-sweep table2 --storage postgresql://user@host/db        # share one study
    scnet-sweep table2 --dry-run                        # list the trials

Re-running the same command resumes: completed trials are kept, interrupted ones re-run
(from their last checkpoint). Exit codes: 0 every trial completed, or is still running in
another driver that shares the study; 1 some trials failed or were interrupted (re-run to
resume them); 2 bad input (one line).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
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
    p.add_argument("--storage", default=None, help="postgresql://… URL or journal file path")
    p.add_argument("--output-dir", type=Path, default=Path("outputs"),
                   help="root for sweeps/NAME (default: outputs)")  # fmt: skip
    p.add_argument("--sweeps-dir", type=Path, default=spec_mod.SWEEPS_DIR, help=argparse.SUPPRESS)
    p.add_argument("--dry-run", action="store_true", help="list the trials and exit")
    p.add_argument("--stale-after", type=float, default=180.0,
                   help="seconds without heartbeat before a RUNNING trial counts as interrupted")  # fmt: skip
    p.add_argument("--gpus-per-trial", type=int, default=1, help="GPUs given to each worker")
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
                f"in {spec.path}); edit the sweep file or copy it under a new name"
            )
    base = merge_overrides(spec.base, overrides)
    check_group_overrides(base)
    compose_config(base)
    for key, values in spec.grid.items():
        for value in values:
            one = f"{key}={spec_mod.format_value(value)}"
            try:
                check_group_overrides([one])
                compose_config(merge_overrides(spec.base, [one, *overrides]))
            except ConfigError as err:
                raise ConfigError(f"{spec.path}: grid.{key} value {value!r}: {err}") from None
    for key in spec.space:
        if key not in compose_config(base) and "." not in key:
            raise ConfigError(f"{spec.path}: space.{key} is not a config key")


def gpu_slots(per_trial: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES values, one per worker slot (empty without GPUs)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [d for d in visible.split(",") if d.strip()]
    else:
        try:
            import torch

            ids = [str(i) for i in range(torch.cuda.device_count())]
        except Exception:
            ids = []
    per = max(1, per_trial)
    return [",".join(ids[i : i + per]) for i in range(0, len(ids) - per + 1, per)]


def dry_run(spec: spec_mod.SweepSpec, overrides: list[str], sweep_dir: Path) -> None:
    from scnet.sweep.engine import merge_overrides

    base = " ".join(merge_overrides(spec.base, overrides))
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

    from scnet.sweep.engine import is_done, latest_by_point

    bar = tqdm(total=ctx.spec.n_total, desc=ctx.spec.name, unit="trial", disable=not show)
    while True:
        done = sum(is_done(t) for t in latest_by_point(study).values())
        if done != bar.n:  # redraw on change only: logs of non-tty runs stay short
            bar.update(done - bar.n)
        if not any(p.is_alive() for p in procs):
            break
        time.sleep(1.0)
    bar.close()


def run(args: argparse.Namespace) -> int:
    from scnet.sweep import engine, storage
    from scnet.sweep.results import write_results

    spec = spec_mod.load(args.name, args.sweeps_dir)
    if args.name != spec.name:
        print(f"{PROG}: {args.name} is an alias of {spec.name}")
    if args.workers < 1:
        raise ConfigError(f"--workers={args.workers} is invalid: use 1 or more")
    check_overrides(spec, args.overrides)
    sweep_dir = (args.output_dir / "sweeps" / spec.name).resolve()
    if args.dry_run:
        dry_run(spec, args.overrides, sweep_dir)
        return 0
    ctx = engine.Context(
        spec=spec, overrides=list(args.overrides), sweep_dir=sweep_dir, storage_url=args.storage,
        stale_after=args.stale_after, gpus=gpu_slots(args.gpus_per_trial), workers=args.workers,
    )  # fmt: skip
    study = engine.open_study(ctx, create=True)
    engine.reclaim(study, ctx)
    spawn = mp.get_context("spawn")
    procs = []
    for i in range(args.workers):
        wctx = engine.Context(**{**ctx.__dict__, "worker_index": i})
        procs.append(spawn.Process(target=engine.worker_main, args=(wctx,), name=f"worker-{i}"))
        procs[-1].start()
    try:
        progress(study, ctx, procs, show=not args.no_progress)
    finally:
        for p in procs:
            p.join()
    path = write_results(study, spec, sweep_dir)
    return summary(study, ctx, path, storage.describe(args.storage, sweep_dir))


def summary(study, ctx, results_path: Path, where: str) -> int:
    from scnet.sweep.engine import is_stale, is_unnamed, latest_by_point

    latest = latest_by_point(study)
    by_state: dict[str, int] = {}
    for t in latest.values():
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    failed = by_state.get("FAIL", 0)
    # This driver's workers have ended, so a RUNNING trial with a live heartbeat belongs to
    # another driver (another node of the sweep), which reports it and exits 1 if it fails.
    elsewhere = sum(
        t.state.name == "RUNNING" and not is_unnamed(t) and not is_stale(t, ctx.stale_after)
        for t in latest.values()
    )
    done = by_state.get("COMPLETE", 0) + by_state.get("PRUNED", 0) + failed
    left = ctx.spec.n_total - done - elsewhere
    parts = [f"{by_state.get('COMPLETE', 0)} completed", f"{failed} failed"]
    if by_state.get("PRUNED"):
        parts.append(f"{by_state['PRUNED']} pruned")
    if elsewhere:
        parts.append(f"{elsewhere} still running in another driver")
    if left > 0:
        parts.append(f"{left} not finished (re-run this command to resume)")
    print(f"{PROG}: {ctx.spec.name}: {ctx.spec.n_total} trials: {', '.join(parts)}")
    for point, t in sorted(latest.items()):
        if t.state.name == "FAIL":
            print(f"{PROG}:   trial-{point:04d} failed: {t.user_attrs.get('error', 'interrupted')}")
    print(f"{PROG}: results: {results_path}")
    url = where if "://" in where else f"{where}"
    if "://" not in where:
        print(
            f"{PROG}: dashboard: optuna-dashboard {url}   (journal file; pip install optuna-dashboard)"
        )
    else:
        print(f"{PROG}: dashboard: optuna-dashboard '{url}'   (pip install optuna-dashboard)")
    print(f"{PROG}: report: scnet-report {ctx.spec.name}")
    return 1 if failed or left > 0 else 0


def main() -> None:
    args = parse_args(sys.argv[1:])
    try:
        code = run(args)
    except ScnetError as err:
        if debug_enabled():
            raise
        fail(PROG, str(err), err.exit_code)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(code)


if __name__ == "__main__":
    main()
