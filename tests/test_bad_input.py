"""Bad input to ``scnet-run``, catalogued: one line naming the problem and the fix, a non-zero
exit, no traceback, and nothing already on disk changed.

Most cases run in-process through ``scnet.cli.run.main(argv)`` (which returns the exit code),
so the table costs one import of Lightning instead of one per case; a few run as real
subprocesses to check the console behaviour end to end.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scnet.cli.common import group_options
from scnet.cli.run import main

QUICK = [
    "experiment=demo",
    "depth=8",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "logger.wandb.mode=disabled",
]


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (run.log excluded: it is checked as append-only)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "run.log"
    }


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An outputs tree holding one completed run (the thing bad input must not touch)."""
    root = tmp_path_factory.mktemp("outputs")
    assert main([*QUICK, f"hydra.run.dir={root / 'done'}"]) == 0
    # Inputs some cases point at: a corrupt checkpoint and a corrupt CIFAR-10 folder.
    (root / "inputs").mkdir()
    (root / "inputs" / "corrupt.ckpt").write_bytes(b"not a checkpoint\x00" * 64)
    cifar = root / "inputs" / "cifar" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (cifar / name).write_bytes(b"\x80\x04garbage")
    (root / "inputs" / "a-file").write_text("x")
    return root


# (case id, overrides, expected exit code, words the one-line message must contain)
CASES = [
    ("bad_depth", ["depth=7"], 2, ["depth=7", "6n+2"]),
    ("negative_sc_weight", ["sc.weight=-0.5"], 2, ["sc.weight", ">= 0"]),
    ("k_zero", ["sc.k=0"], 2, ["sc.k=0", ">= 1"]),
    ("rear_not_after_front", ["sc.connections=[[2,4]]"], 2, ["front must be < rear"]),
    ("rear_out_of_range", ["sc.connections=[[99,2]]"], 2, ["out of range", "1..7"]),
    ("mismatched_tap_shapes", ["sc.connections=[[7,2]]"], 2, ["shapes differ", "Section 3.3"]),
    ("unknown_backbone", ["backbone=vgg"], 2, ["backbone=vgg", "fcn", "resnet"]),
    ("unknown_dataset", ["data=imagenet"], 2, ["data=imagenet", "cifar10", "digits"]),
    ("unknown_sc_mode", ["sc.mode=both"], 2, ["sc.mode", "propagate", "weight_only"]),
    ("unknown_sc_strategy", ["sc.strategy=all"], 2, ["sc.strategy", "single", "multi"]),
    ("unknown_key", ["sc.wieght=0.2"], 2, ["wieght"]),
    ("bad_optim_name", ["optim.name=rmsprop"], 2, ["optim.name", "sgd", "adam"]),
    ("bad_lr", ["optim.lr=-0.1"], 2, ["optim.lr", "> 0"]),
    ("bad_scheduler", ["optim.scheduler=step"], 2, ["optim.scheduler", "cosine"]),
    ("bad_batch_size", ["data.batch_size=0"], 2, ["data.batch_size", ">= 1"]),
    ("bad_wandb_mode", ["logger.wandb.mode=sometimes"], 2, ["logger.wandb.mode", "offline"]),
    ("bad_test_ckpt", ["test_ckpt=middle"], 2, ["test_ckpt", "last or best"]),
    (
        "sync_batchnorm_on_cpu",
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"],
        2,
        ["trainer.sync_batchnorm", "false"],
    ),
    ("missing_dataset", ["data=cifar10", "data.root={out}/inputs/none"], 3, ["CIFAR-10"]),
    ("corrupt_dataset", ["data=cifar10", "data.root={out}/inputs/cifar"], 3, ["corrupt"]),
    ("missing_ckpt", ["ckpt_path={out}/inputs/nothing.ckpt"], 2, ["ckpt_path", "does not exist"]),
    ("corrupt_ckpt", ["ckpt_path={out}/inputs/corrupt.ckpt"], 2, ["corrupt.ckpt", "readable"]),
    (
        "ckpt_wrong_model",
        # max_epochs past the done run's 1: resuming a completed run is refused otherwise
        ["depth=14", "trainer.max_epochs=3", "ckpt_path={out}/done/checkpoints/last.ckpt"],
        2,
        ["last.ckpt", "does not fit", "same backbone, depth"],
    ),
    ("run_dir_under_a_file", ["hydra.run.dir={out}/inputs/a-file/run"], 4, ["a-file", "folder"]),
    ("completed_run_dir_reused", ["hydra.run.dir={out}/done"], 2, ["completed run", "new"]),
]


@pytest.mark.parametrize(
    ("overrides", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_in_process(
    outputs: Path, overrides: list[str], code: int, words: list[str], capsys, tmp_path: Path
) -> None:
    before = tree_digest(outputs)
    log_before = (outputs / "done" / "run.log").read_bytes()
    argv = [*QUICK, *(o.format(out=outputs) for o in overrides)]
    if not any(a.startswith(("hydra.run.dir=", "ckpt_path=")) for a in argv):
        argv.append(f"hydra.run.dir={tmp_path / 'run'}")
    assert main(argv) == code
    captured = capsys.readouterr()
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("scnet-run: error:")]
    assert len(errors) == 1, captured.err
    for word in words:
        assert word in errors[0], errors[0]
    assert "Traceback" not in captured.err + captured.out
    assert tree_digest(outputs) == before  # nothing existing was changed, nothing added
    assert (outputs / "done" / "run.log").read_bytes().startswith(log_before)
    assert not (tmp_path / "run").exists()  # a refused run leaves no run dir behind


def test_there_are_at_least_15_cases() -> None:
    assert len(CASES) >= 15
    assert len({c[0] for c in CASES}) == len(CASES)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "scnet.cli.run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WANDB_MODE": "offline", **(env or {})},
    )


def test_subprocess_unknown_backbone_one_line(tmp_path: Path) -> None:
    proc = _cli("backbone=vgg", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"scnet-run: error: backbone=vgg is unknown: choose one of {', '.join(group_options('backbone'))}"
    ]
    assert not (tmp_path / "r").exists()


def test_subprocess_bad_depth_traceback_only_with_debug(tmp_path: Path) -> None:
    plain = _cli(*QUICK, "depth=9", f"hydra.run.dir={tmp_path / 'a'}")
    assert plain.returncode == 2
    assert "Traceback" not in plain.stderr + plain.stdout
    assert plain.stderr.strip().splitlines()[-1].startswith("scnet-run: error: depth=9")
    debug = _cli("--debug", *QUICK, "depth=9", f"hydra.run.dir={tmp_path / 'b'}")
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr
    assert "scnet-run: error: depth=9" in debug.stderr


def test_subprocess_corrupt_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "checkpoints" / "last.ckpt"
    bad.parent.mkdir()
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    proc = _cli(*QUICK, f"ckpt_path={bad}")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert str(bad) in line and "not a readable checkpoint" in line
    assert bad.read_bytes() == b"PK\x03\x04 truncated zip"  # left as is
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]
