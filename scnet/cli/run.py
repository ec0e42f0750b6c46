"""``scnet-run``: one Lightning training run configured by Hydra.

    scnet-run backbone=resnet depth=56 sc.weight=0.2
    scnet-run experiment=demo
    scnet-run sc=off data=digits trainer.max_epochs=5
    scnet-run ... ckpt_path=<run dir>/checkpoints/last.ckpt   # resume in that run dir

Exit codes: 0 completed; 1 the run failed while training (``result.json`` says why);
2 bad configuration; 3 missing or corrupt data; 4 the run dir cannot be written; 130
interrupted (Ctrl-C / SIGTERM; ``checkpoints/last.ckpt`` is kept for resuming). Errors are one
line; pass ``--debug`` (or set SCNET_DEBUG=1 / HYDRA_FULL_ERROR=1) for the traceback.

``main(argv)`` returns the exit code instead of exiting, so tests and tools can call it
in-process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from scnet.cli.common import CONF_DIR, check_group_overrides, compose_config, debug_enabled
from scnet.errors import ConfigError, ScnetError

PROG = "scnet-run"
log = logging.getLogger("scnet")


def _error(message: str, code: int) -> int:
    """Print the one-line error and return ``code`` (the caller exits with it)."""
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _resume_dir(argv: list[str]) -> list[str]:
    """Resuming from ``<run dir>/checkpoints/x.ckpt`` continues in that run dir."""
    ckpt = next((a.split("=", 1)[1] for a in argv if a.startswith("ckpt_path=")), None)
    if not ckpt or ckpt == "null" or any(a.startswith("hydra.run.dir=") for a in argv):
        return argv
    path = Path(ckpt)
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt} does not exist: pass a checkpoint file such as <run dir>/checkpoints/last.ckpt"
        )
    if path.parent.name == "checkpoints":
        return [*argv, f"hydra.run.dir={path.parent.parent}"]
    return argv


def _check_run_dir(run_dir: Path, resuming: bool) -> None:
    from scnet.train import RESULT_FILE

    result = run_dir / RESULT_FILE
    if result.is_file() and not resuming and '"completed"' in result.read_text():
        raise ConfigError(
            f"hydra.run.dir={run_dir} already holds a completed run; choose a new hydra.run.dir "
            "(nothing was overwritten)"
        )


def execute(
    cfg, run_dir: Path, hydra_subdir: str = ".hydra", preexisting: set[str] | None = None
) -> int:
    """Run one configured training; return the process exit code."""
    from scnet import robust, train

    started = time.time()
    module = None
    try:
        _check_run_dir(run_dir, resuming=bool(cfg.get("ckpt_path")))
        datamodule, module = train.prepare(cfg)
        if cfg.get("ckpt_path"):
            robust.check_checkpoint(cfg.ckpt_path, module)
    except ScnetError as err:
        if debug_enabled():
            traceback.print_exc()
        _undo_hydra_files(run_dir, hydra_subdir, preexisting)
        return _error(str(err), err.exit_code)
    log.info("run dir: %s", run_dir)
    try:
        metrics = train.fit_and_test(cfg, run_dir, datamodule, module)
    except (Exception, KeyboardInterrupt) as err:
        return _failed(cfg, run_dir, module, started, err)
    result = {"status": "completed", "metrics": metrics}
    result.update(train.base_result(cfg, module, started))
    if _global_rank() != 0:  # DDP: one process (rank 0) reports
        return 0
    try:
        path = train.write_result(run_dir, result)
    except OSError as err:
        return _error(robust.storage_message(err, run_dir), robust.StorageError.exit_code)
    summary = "  ".join(
        f"{k}={metrics[k]:.4f}" for k in ("test/acc", "test/loss", "val/acc_best") if k in metrics
    )
    print(f"{PROG}: completed in {result['duration_s']:.1f}s  {summary}\n{PROG}: results in {path}")
    return 0


def _global_rank() -> int:
    """This process's rank under DDP (Lightning sets it once the trainer exists), else 0."""
    from lightning.pytorch.utilities import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def _failed(cfg, run_dir: Path, module, started: float, err: BaseException) -> int:
    """Record a run that failed mid-training in ``result.json``; return the exit code."""
    from scnet import robust, train

    log.error("run failed:\n%s", traceback.format_exc())
    if isinstance(err, KeyboardInterrupt):
        message = (
            f"interrupted ({str(err) or 'Ctrl-C'}); resume with "
            f"ckpt_path={run_dir}/checkpoints/last.ckpt"
        )
        code = 130
    elif isinstance(err, OSError) and err.errno is not None:
        message, code = robust.storage_message(err, run_dir), robust.StorageError.exit_code
    else:
        message = _one_line(err)
        code = err.exit_code if isinstance(err, ScnetError) else 1
    result = {"status": "failed", "metrics": {}, "error": message}
    if isinstance(err, KeyboardInterrupt):
        result["interrupted"] = True
    result.update(train.base_result(cfg, module, started))
    if debug_enabled():
        traceback.print_exc()
    try:
        train.write_result(run_dir, result)
    except OSError as write_err:  # a full disk may refuse result.json too: still one line
        return _error(f"{message}; result.json not written ({write_err.strerror})", code)
    return _error(f"{message} (details: {run_dir}/run.log)", code)


def _undo_hydra_files(run_dir: Path, hydra_subdir: str, preexisting: set[str] | None) -> None:
    """A refused run leaves no trace: remove what Hydra wrote for it, and only that."""
    import shutil

    if preexisting is None:  # the run dir is new
        _remove_if_only_hydra(run_dir)
        return
    if hydra_subdir.startswith(".hydra/resume-"):
        shutil.rmtree(run_dir / hydra_subdir, ignore_errors=True)
    for name in (".hydra", "run.log"):
        if name not in preexisting:
            path = run_dir / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(
                missing_ok=True
            )


def _remove_if_only_hydra(run_dir: Path) -> None:
    """Bad input leaves nothing behind: drop the run dir Hydra just created if it is empty."""
    contents = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    if contents <= {".hydra", "run.log"}:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)


def _explicit_run_dir(argv: list[str]) -> Path | None:
    value = next((a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")), None)
    return Path(value) if value else None


def _preflight(argv: list[str]) -> tuple[list[str], set[str] | None]:
    """Every check that needs no data or model, done before Hydra writes anything."""
    from scnet import robust

    check_group_overrides(argv)
    cfg = compose_config(argv)  # unknown keys, bad syntax: one line instead of Hydra's block
    argv = _resume_dir(argv)
    run_dir = _explicit_run_dir(argv)
    resuming = bool(cfg.get("ckpt_path"))
    if run_dir is not None:
        _check_run_dir(run_dir, resuming)  # before Hydra rewrites the old run's .hydra/
    robust.check_writable(run_dir or Path("outputs"))
    preexisting = {p.name for p in run_dir.iterdir()} if run_dir and run_dir.is_dir() else None
    if resuming and run_dir is not None and (run_dir / ".hydra").is_dir():
        # Keep the original run's config: the resume's goes into .hydra/resume-N.
        n = len(list((run_dir / ".hydra").glob("resume-*"))) + 1
        argv = [*argv, f"hydra.output_subdir=.hydra/resume-{n}"]
    return argv, preexisting


def main(argv: list[str] | None = None) -> int:
    """``scnet-run``: returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    saved_env = os.environ.get("SCNET_DEBUG")
    if "--debug" in argv:
        argv.remove("--debug")
        os.environ["SCNET_DEBUG"] = "1"
    try:
        return _main(argv)
    except SystemExit as exit_:  # Hydra (and Lightning) exit; callers in-process get the code
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        if saved_env is None:
            os.environ.pop("SCNET_DEBUG", None)
        else:
            os.environ["SCNET_DEBUG"] = saved_env


def _main(argv: list[str]) -> int:
    try:
        argv, preexisting = _preflight(argv)
    except ScnetError as err:
        if debug_enabled():
            traceback.print_exc()
        return _error(str(err), err.exit_code)
    return _hydra_main(argv, preexisting)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (kill, SLURM pre-emption) ends a run like Ctrl-C: result.json says so."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _hydra_main(argv: list[str], preexisting: set[str] | None = None) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from scnet.robust import redact_hydra_dir

    outcome = {"code": 1}

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def entry(cfg) -> None:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        redact_hydra_dir(run_dir, hydra_cfg.output_subdir or ".hydra")
        subdir = hydra_cfg.output_subdir or ".hydra"
        outcome["code"] = execute(cfg, run_dir, subdir, preexisting)

    saved_argv = sys.argv
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if in_main_thread else None
    sys.argv = [saved_argv[0] if saved_argv else PROG, *argv]
    try:
        entry()
    finally:
        sys.argv = saved_argv
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return outcome["code"]


if __name__ == "__main__":
    sys.exit(main())
