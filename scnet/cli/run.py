"""``scnet-run``: one Lightning training run configured by Hydra.

    scnet-run backbone=resnet depth=56 sc.weight=0.2
    scnet-run experiment=demo
    scnet-run sc=off data=digits trainer.max_epochs=5
    scnet-run ... ckpt_path=<run dir>/checkpoints/last.ckpt   # resume in that run dir

Exit codes: 0 completed; 1 the run failed while training (``result.json`` says why);
2 bad configuration; 3 missing or corrupt data. Errors are one line; set HYDRA_FULL_ERROR=1
(or SCNET_DEBUG=1) for the traceback.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path

from scnet.cli.common import CONF_DIR, check_group_overrides, compose_config, debug_enabled, fail
from scnet.errors import ScnetError

PROG = "scnet-run"
log = logging.getLogger("scnet")


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
        fail(
            PROG,
            f"ckpt_path={ckpt} does not exist: pass a checkpoint file such as <run dir>/checkpoints/last.ckpt",
            2,
        )
    if path.parent.name == "checkpoints":
        return [*argv, f"hydra.run.dir={path.parent.parent}"]
    return argv


def _check_run_dir(run_dir: Path, resuming: bool) -> None:
    from scnet.errors import ConfigError
    from scnet.train import RESULT_FILE

    result = run_dir / RESULT_FILE
    if result.exists() and not resuming and '"completed"' in result.read_text():
        raise ConfigError(
            f"hydra.run.dir={run_dir} already holds a completed run; choose a new hydra.run.dir "
            "(nothing was overwritten)"
        )


def execute(cfg, run_dir: Path) -> int:
    """Run one configured training; return the process exit code."""
    from scnet import train

    started = time.time()
    module = None
    try:
        _check_run_dir(run_dir, resuming=bool(cfg.get("ckpt_path")))
        datamodule, module = train.prepare(cfg)
    except ScnetError as err:
        if debug_enabled():
            traceback.print_exc()
        _remove_if_only_hydra(run_dir)
        fail(PROG, str(err), err.exit_code)
    log.info("run dir: %s", run_dir)
    try:
        metrics = train.fit_and_test(cfg, run_dir, datamodule, module)
    except (Exception, KeyboardInterrupt) as err:
        log.error("run failed:\n%s", traceback.format_exc())
        result = {"status": "failed", "metrics": {}, "error": _one_line(err)}
        result.update(train.base_result(cfg, module, started))
        train.write_result(run_dir, result)
        if debug_enabled():
            traceback.print_exc()
        code = (
            130
            if isinstance(err, KeyboardInterrupt)
            else (err.exit_code if isinstance(err, ScnetError) else 1)
        )
        fail(PROG, f"{result['error']} (details: {run_dir}/run.log)", code)
    result = {"status": "completed", "metrics": metrics}
    result.update(train.base_result(cfg, module, started))
    path = train.write_result(run_dir, result)
    summary = "  ".join(
        f"{k}={metrics[k]:.4f}" for k in ("test/acc", "test/loss", "val/acc_best") if k in metrics
    )
    print(f"{PROG}: completed in {result['duration_s']:.1f}s  {summary}\n{PROG}: results in {path}")
    return 0


def _remove_if_only_hydra(run_dir: Path) -> None:
    """Bad input leaves nothing behind: drop the run dir Hydra just created if it is empty."""
    contents = {p.name for p in run_dir.iterdir()} if run_dir.is_dir() else set()
    if contents <= {".hydra", "run.log"}:
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)


def main() -> None:
    argv = sys.argv[1:]
    if not debug_enabled():
        try:
            check_group_overrides(argv)
            compose_config(argv)  # unknown keys, bad syntax: one line instead of Hydra's block
        except ScnetError as err:
            fail(PROG, str(err), err.exit_code)
    sys.argv = [sys.argv[0], *_resume_dir(argv)]
    _hydra_main()


def _hydra_main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def entry(cfg) -> None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        code = execute(cfg, run_dir)
        if code:
            sys.exit(code)

    entry()


if __name__ == "__main__":
    main()
