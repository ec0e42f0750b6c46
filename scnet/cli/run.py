"""``scnet-run``: one Lightning training run configured by Hydra, with Hydra's own flags.

    scnet-run backbone=resnet depth=56 sc.weight=0.2
    scnet-run experiment=demo
    scnet-run sc=off data=digits trainer.max_epochs=5
    scnet-run ... ckpt_path=<run dir>/checkpoints/last.ckpt   # resume in that run dir
    scnet-run --help | --hydra-help | --cfg job|hydra|all | --info | --shell-completion
    scnet-run -m sc.weight=0.1,0.5 seed=0,1                    # one run per combination
    scnet-run -cd my_configs experiment=mine                   # your own configs beside scnet's

Exit codes: 0 completed; 1 the run failed while training (``result.json`` says why);
2 bad configuration or command line; 3 missing or corrupt data; 4 the run dir cannot be
written; 130 interrupted (Ctrl-C / SIGTERM; ``checkpoints/last.ckpt`` is kept for resuming).
Errors are one line; pass ``--debug`` (or set SCNET_DEBUG=1 / HYDRA_FULL_ERROR=1) for the
traceback. Every value is checked by :mod:`scnet.preflight` before Lightning is imported.

``main(argv)`` returns the exit code instead of exiting, so tests and tools can call it
in-process.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from argparse import Namespace
from pathlib import Path

from scnet.cli.common import (
    CONF_DIR,
    check_group_overrides,
    compose_config,
    debug_enabled,
    override_value,
    path_override,
)
from scnet.errors import ConfigError, ScnetError

INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C

PROG = "scnet-run"
log = logging.getLogger("scnet")


def _error(message: str, code: int) -> int:
    """Print the one-line error and return ``code`` (the caller exits with it)."""
    from scnet.secrets import redact_message  # an echoed override may hold a credential

    print(f"{PROG}: error: {redact_message(message)}", file=sys.stderr)
    return code


def _resume_dir(argv: list[str]) -> list[str]:
    """Resuming from ``<run dir>/checkpoints/x.ckpt`` continues in that run dir."""
    ckpt = override_value(argv, "ckpt_path")
    if not ckpt or any(a.startswith("hydra.run.dir=") for a in argv):
        return argv
    path = Path(ckpt)
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt} does not exist: pass a checkpoint file such as <run dir>/checkpoints/last.ckpt"
        )
    from scnet.resume import run_dir_of  # standard library only: no torch yet

    run_dir = run_dir_of(path)
    return [*argv, path_override("hydra.run.dir", run_dir)] if run_dir else argv


def _check_run_dir(run_dir: Path, resuming: bool, max_epochs: int | None = None) -> None:
    from scnet.resume import check_run_dir  # standard library only: no torch yet

    check_run_dir(run_dir, resuming, max_epochs)


def execute(
    cfg, run_dir: Path, hydra_subdir: str = ".hydra", preexisting: set[str] | None = None
) -> int:
    """Run one configured training (:func:`scnet.train.run`); return the process exit code."""
    from scnet import train

    try:
        result = train.run(cfg, run_dir)
    except ScnetError as err:  # refused before training: nothing of this run is kept
        if debug_enabled():
            traceback.print_exc()
        _undo_hydra_files(run_dir, hydra_subdir, preexisting)
        return _error(str(err), err.exit_code)
    except train.RunFailed as err:  # failed while training: result.json says so
        if debug_enabled():
            traceback.print_exc()
        return _error(str(err), err.exit_code)
    except KeyboardInterrupt:  # before the first step: nothing worth keeping was written
        _undo_hydra_files(run_dir, hydra_subdir, preexisting)
        return _error("interrupted before training started; nothing was written", INTERRUPTED)
    if not train.is_global_zero():  # DDP: one process (rank 0) reports
        return 0
    metrics = result["metrics"]
    summary = "  ".join(
        f"{k}={metrics[k]:.4f}" for k in ("test/acc", "test/loss", "val/acc_best") if k in metrics
    )
    path = run_dir / train.RESULT_FILE
    print(f"{PROG}: completed in {result['duration_s']:.1f}s  {summary}\n{PROG}: results in {path}")
    return 0


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
    """Bad input leaves nothing behind: drop the run dir Hydra just created if it is empty,
    and the folders above it that Hydra created for it (``outputs/runs/<date>``)."""
    contents = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    if contents <= {".hydra", "run.log"}:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        parent = run_dir.absolute().parent
        while _KEEP_DIRS and parent not in _KEEP_DIRS and parent.is_dir():
            if any(parent.iterdir()):
                break
            parent.rmdir()
            parent = parent.parent


# Folders that existed before this command (set by the preflight): never removed as "empty".
_KEEP_DIRS: set[Path] = set()


def _remember_dirs(root: Path) -> None:
    """``root``, its ancestors and two levels below it (``runs/<date>``) as they are now."""
    root = root.absolute()
    _KEEP_DIRS.clear()
    _KEEP_DIRS.update(p for p in (root, *root.parents) if p.is_dir())
    if root.is_dir():
        _KEEP_DIRS.update(p for p in [*root.glob("*"), *root.glob("*/*")] if p.is_dir())


def _explicit_run_dir(overrides: list[str]) -> Path | None:
    value = override_value(overrides, "hydra.run.dir")
    return Path(value) if value else None


def _output_root(cfg) -> Path:
    """Where Hydra will create run dirs when ``hydra.run.dir`` is not given."""
    try:
        return Path(str(cfg.paths.output_root))
    except Exception:  # a config without a paths group: Hydra's default below the cwd
        return Path("outputs")


def _parse(argv: list[str]) -> Namespace:
    """Hydra's own command-line parser: scnet-run takes exactly the flags any Hydra app takes."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()
    parser.prog = PROG

    def refuse(message: str) -> None:  # argparse would print usage + error on two lines
        raise ConfigError(f"{message}; see {PROG} --help")

    parser.error = refuse  # type: ignore[method-assign]
    # Flags and overrides in any order (Hydra's own parse_args stops at the first flag after
    # an override); Hydra then gets them flags first (see _hydra_argv).
    return parser.parse_intermixed_args(argv)


def _config_dir(args: Namespace) -> str | None:
    return args.config_dir or args.config_path


def _flags(argv: list[str], overrides: list[str]) -> list[str]:
    """``argv`` without its overrides (Hydra's flags and their values)."""
    rest = list(argv)
    for override in overrides:
        rest.remove(override)
    return rest


def _hydra_argv(argv: list[str], args: Namespace, overrides: list[str] | None = None) -> list[str]:
    """Flags first, then the overrides: the order Hydra's parser accepts."""
    return [*_flags(argv, args.overrides), *(args.overrides if overrides is None else overrides)]


def _check_config(args: Namespace, overrides: list[str]):
    """Compose and validate one job's config: every problem is one ConfigError line."""
    from scnet.preflight import validate

    check_group_overrides(overrides, _config_dir(args))
    cfg = compose_config(overrides, args.config_name or "config", _config_dir(args))
    validate(cfg)
    return cfg


def _preflight(args: Namespace) -> tuple[list[str], set[str] | None]:
    """Every check that needs no data or model, done before Hydra writes anything."""
    from scnet import robust

    overrides = list(args.overrides)
    cfg = _check_config(args, overrides)
    overrides = _resume_dir(overrides)
    resuming = bool(cfg.get("ckpt_path"))
    if resuming:  # opened with weights_only=True: a crafted file cannot run code
        robust.read_checkpoint(cfg.ckpt_path)
    run_dir = _explicit_run_dir(overrides)
    if run_dir is not None:  # before Hydra rewrites the old run's .hydra/
        _check_run_dir(run_dir, resuming, cfg.get("trainer", {}).get("max_epochs"))
    robust.check_writable(run_dir or _output_root(cfg))
    _remember_dirs(run_dir.parent if run_dir else _output_root(cfg))
    preexisting = {p.name for p in run_dir.iterdir()} if run_dir and run_dir.is_dir() else None
    if resuming and run_dir is not None and (run_dir / ".hydra").is_dir():
        # Keep the original run's config: the resume's goes into .hydra/resume-N.
        n = len(list((run_dir / ".hydra").glob("resume-*"))) + 1
        overrides = [*overrides, f"hydra.output_subdir=.hydra/resume-{n}"]
    return overrides, preexisting


def _preflight_multirun(args: Namespace) -> None:
    """Validate every job of a ``-m`` sweep before the first one starts."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from scnet import robust

    user = [o for o in args.overrides if not o.lstrip("+~").startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(user)
        jobs = BasicSweeper.split_arguments(parsed, None)[0]
    except Exception:  # another sweeper's syntax (e.g. Optuna's interval()): check the base
        check_group_overrides(args.overrides, _config_dir(args))
        jobs = [[o for o in user if "," not in o and "(" not in o]]
    for job in jobs:
        cfg = _check_config(args, job)
        if cfg.get("ckpt_path"):
            raise ConfigError("ckpt_path cannot be swept with -m: resume one run at a time")
    robust.check_writable(_output_root(cfg))


def main(argv: list[str] | None = None) -> int:
    """``scnet-run``: returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _KEEP_DIRS.clear()  # set by this command's preflight, never by an earlier in-process one
    saved_env = os.environ.get("SCNET_DEBUG")
    if "--debug" in argv:
        argv.remove("--debug")
        os.environ["SCNET_DEBUG"] = "1"
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if in_main_thread else None
    try:
        return _main(argv)
    except KeyboardInterrupt:  # outside a run (imports, preflight, between -m jobs)
        if debug_enabled():
            traceback.print_exc()
        return _error("interrupted; no run was started or changed", INTERRUPTED)
    except SystemExit as exit_:  # Hydra (and Lightning) exit; callers in-process get the code
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if saved_env is None:
            os.environ.pop("SCNET_DEBUG", None)
        else:
            os.environ["SCNET_DEBUG"] = saved_env


def _main(argv: list[str]) -> int:
    try:
        args = _parse(argv)
        if args.help or args.hydra_help or args.shell_completion:
            # scnet's help page (conf/hydra/help/scnet.yaml) lists its groups and options.
            extra = ["hydra/help=scnet"] if args.help else []
            return _hydra_main([*_hydra_argv(argv, args), *extra], mode="info")
        if args.cfg or args.info:
            check_group_overrides(args.overrides, _config_dir(args))
            compose_config(args.overrides, args.config_name or "config", _config_dir(args))
            return _hydra_main(_hydra_argv(argv, args), mode="info")
        if args.multirun:
            _preflight_multirun(args)
            return _hydra_main(_hydra_argv(argv, args), mode="multirun")
        overrides, preexisting = _preflight(args)
    except ScnetError as err:
        if debug_enabled():
            traceback.print_exc()
        return _error(str(err), err.exit_code)
    return _hydra_main(_hydra_argv(argv, args, overrides), preexisting)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    """SIGTERM (kill, SLURM pre-emption) ends a run like Ctrl-C: result.json says so."""
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _hydra_main(argv: list[str], preexisting: set[str] | None = None, mode: str = "run") -> int:
    """Hand the command line to ``hydra.main``; returns the run's (or the worst job's) code."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from scnet.robust import redact_hydra_dir

    codes: list[int] = []

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def entry(cfg) -> int:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        subdir = hydra_cfg.output_subdir or ".hydra"
        redact_hydra_dir(run_dir, subdir)
        code = execute(cfg, run_dir, subdir, preexisting if mode == "run" else None)
        codes.append(code)
        return code

    saved_argv = sys.argv
    sys.argv = [saved_argv[0] if saved_argv else PROG, *argv]
    saved_logging = _logging_state()
    try:
        entry()
    finally:
        sys.argv = saved_argv
        _restore_logging(saved_logging)  # in-process callers get their logging back
    if mode == "info":
        return 0
    if mode == "multirun":  # every job ran; the first failure's code (0 if none failed)
        return next((c for c in codes if c), 0)
    return codes[0] if codes else 1


def _logging_state() -> list[tuple[logging.Logger, list[logging.Handler], int]]:
    """Hydra configures logging for each job (console + run.log handlers on these loggers)."""
    loggers = [logging.getLogger(), logging.getLogger("hydra"), log]
    return [(lg, list(lg.handlers), lg.level) for lg in loggers]


def _restore_logging(state: list[tuple[logging.Logger, list[logging.Handler], int]]) -> None:
    for logger, handlers, level in state:
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()  # closes run.log
        logger.handlers[:] = handlers
        logger.setLevel(level)


if __name__ == "__main__":
    sys.exit(main())
