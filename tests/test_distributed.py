"""DDP: rank-aware batching (fast, in-process) and a real 2-process gloo run that must follow
the same trajectory as one process with the same global batch (slow, subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scnet.data import DeviceBatches, Split
from scnet.data.augment import make_augment


def _split(n: int) -> Split:
    # Image-like uint8 inputs whose first pixel encodes the sample id (augmentation-proof
    # ids are carried in y).
    x = torch.arange(n, dtype=torch.uint8).repeat_interleave(16).reshape(n, 1, 4, 4)
    return Split(x, torch.arange(n))


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("n", [24, 25, 31])
@pytest.mark.parametrize("augment", [False, True])
def test_shards_union_is_the_single_process_batch(world_size: int, n: int, augment: bool) -> None:
    per_rank = 4
    aug = make_augment(1, True) if augment else None
    kwargs = dict(shuffle=True, seed=7, augment=aug)
    single = DeviceBatches(_split(n), per_rank * world_size, **kwargs)
    ranks = [
        DeviceBatches(_split(n), per_rank, rank=r, world_size=world_size, **kwargs)
        for r in range(world_size)
    ]
    assert len({len(r) for r in ranks}) == 1  # every process takes the same number of steps
    per_rank_batches = [list(r) for r in ranks]
    single_batches = list(single)
    # A last global batch too small to give every rank a sample is dropped (n=25, W=3 → 1 left).
    dropped = n % (per_rank * world_size) and n % (per_rank * world_size) < world_size
    assert len(per_rank_batches[0]) == len(single_batches) - bool(dropped)
    for step, (xs, ys) in enumerate(single_batches[: len(per_rank_batches[0])]):
        x_cat = torch.cat([per_rank_batches[r][step][0] for r in range(world_size)])
        y_cat = torch.cat([per_rank_batches[r][step][1] for r in range(world_size)])
        assert torch.equal(y_cat, ys)
        assert torch.equal(x_cat, xs)  # same augmentation draws as the single process
        sizes = [len(per_rank_batches[r][step][1]) for r in range(world_size)]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_rank_outside_world_is_rejected() -> None:
    with pytest.raises(ValueError, match="rank=2"):
        DeviceBatches(_split(8), 2, rank=2, world_size=2)


def test_epoch_is_read_at_the_first_batch() -> None:
    """Lightning creates the iterator before restoring the epoch on resume."""
    epoch = {"now": 0}
    loader = DeviceBatches(_split(12), 4, shuffle=True, epoch_source=lambda: epoch["now"])
    reference = [b[1] for b in DeviceBatches(_split(12), 4, shuffle=True, epoch=5)]
    iterator = iter(loader)
    epoch["now"] = 5  # restored after iter(), before the first batch
    assert all(torch.equal(a[1], b) for a, b in zip(iterator, reference, strict=True))


# ------------------------------------------------------------------ a real 2-process DDP run
COMMON = [
    "backbone=fcn",
    "data=synthetic",  # 1000 samples: 10 global batches of 100, no short last batch
    "trainer.max_epochs=2",
    "trainer.accelerator=cpu",
    "trainer.enable_progress_bar=false",
    "logger.wandb.mode=disabled",
    "seed=3",
]


def _run(run_dir: Path, *overrides: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "scnet.cli.run", *COMMON, *overrides, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "WANDB_MODE": "offline",
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["propagate", "weight_only"])
def test_ddp_two_processes_match_one_process(tmp_path: Path, mode: str) -> None:
    """2 gloo processes × batch 50 == 1 process × batch 100, SC on, after 20 SGD steps."""
    console = _run(
        tmp_path / "ddp",
        "trainer=ddp",
        "trainer.devices=2",
        "data.batch_size=50",
        f"sc.mode={mode}",
    )
    # DDP prints once (rank 0), without Lightning's sync_dist advice for val/test metrics.
    assert console.count("first training step") == 1 and console.count("run dir:") == 1
    assert "sync_dist" not in console and console.count("scnet-run: completed") == 1
    _run(tmp_path / "one", "data.batch_size=100", f"sc.mode={mode}")
    ddp, one = _params(tmp_path / "ddp"), _params(tmp_path / "one")
    assert ddp.keys() == one.keys()
    for key in one:
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-5, atol=1e-6, msg=key)
    # Both trained for 20 optimizer steps (not a comparison of two initialisations).
    for run in ("ddp", "one"):
        result = json.loads((tmp_path / run / "result.json").read_text())
        assert result["status"] == "completed" and result["metrics"]["steps"] == 20
    # Only rank 0 reports; the other process leaves its own log.
    assert (tmp_path / "ddp" / "result.json").is_file()
    assert (tmp_path / "ddp" / "train_ddp_process_1.log").is_file()
