"""Faults in a single run: interruption and exact resume, NaN loss, full or unwritable disks.

All in-process through ``scnet.cli.run.main(argv)`` (one Lightning import for the file), on
scikit-learn's digits with a tiny ResNet, deterministic on the CPU.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

from scnet.cli.run import main
from scnet.lit.classifier import ClassifierModule

RUN = [
    "experiment=demo",
    "depth=8",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=4",
    "trainer.deterministic=true",
    "trainer.enable_progress_bar=false",
    "data.augment=true",  # the augmentation RNG must be restored too
    "optim.scheduler=cosine",  # so must the LR schedule
    "logger.wandb.mode=disabled",
]


def result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


def state(run_dir: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    return ckpt["state_dict"]


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def interrupt_at_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ctrl-C as the given epoch starts (after the previous epoch's checkpoint)."""
    original = ClassifierModule.on_train_epoch_start

    def hook(self: ClassifierModule) -> None:
        if self.current_epoch == epoch:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(ClassifierModule, "on_train_epoch_start", hook)


def test_interrupted_run_resumes_exactly(tmp_path: Path, monkeypatch, capsys) -> None:
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main([*RUN, f"hydra.run.dir={whole}"]) == 0

    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 2)
        assert main([*RUN, f"hydra.run.dir={split}"]) == 130
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("scnet-run: error:")]
    assert "interrupted" in line and f"ckpt_path={split}/checkpoints/last.ckpt" in line
    stopped = result(split)
    assert stopped["status"] == "failed" and stopped["interrupted"] is True
    assert "ckpt_path=" in stopped["error"]
    ckpt = torch.load(split / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 1  # the last completed epoch is kept for resuming

    # Resume: the CLI maps the checkpoint to its run dir.
    assert main([*RUN, f"ckpt_path={split}/checkpoints/last.ckpt"]) == 0
    a, b = result(whole), result(split)
    assert b["status"] == "completed"
    for key in ("test/acc", "test/loss", "val/acc_best", "train/loss", "epochs", "steps"):
        assert b["metrics"][key] == a["metrics"][key], key
    sa, sb = state(whole), state(split)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key  # bit-identical on the CPU
    # metrics.csv keeps the first part and has each epoch once, as the uninterrupted run.
    rows_a, rows_b = metric_rows(whole), metric_rows(split)
    assert [r["epoch"] for r in rows_b] == [r["epoch"] for r in rows_a]
    assert [r.get("train/loss") for r in rows_b] == [r.get("train/loss") for r in rows_a]
    # The original config is kept; the resume's config sits beside it.
    assert (split / ".hydra" / "config.yaml").is_file()
    assert (split / ".hydra" / "resume-1" / "overrides.yaml").is_file()


def test_ctrl_c_during_the_final_test_is_an_interrupt_and_resumes(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """Ctrl-C after training, while the final model is tested: Lightning exits 1 there too. It
    must be exit 130 with one line and result.json saying so (not exit 1 and no result), and
    resuming must only test (training is complete), giving the uninterrupted run's metrics."""
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main([*RUN, f"hydra.run.dir={whole}"]) == 0

    def ctrl_c(self: ClassifierModule, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ClassifierModule, "test_step", ctrl_c)
        assert main([*RUN, f"hydra.run.dir={split}"]) == 130
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("scnet-run: error:")]
    assert "interrupted (Ctrl-C during the test after epoch 3" in line
    assert f"ckpt_path={split}/checkpoints/last.ckpt" in line
    stopped = result(split)
    assert stopped["status"] == "failed" and stopped["interrupted"] is True

    assert main([*RUN, f"ckpt_path={split}/checkpoints/last.ckpt"]) == 0
    a, b = result(whole), result(split)
    assert b["status"] == "completed"
    for key in ("test/acc", "test/loss", "epochs", "steps"):
        assert b["metrics"][key] == a["metrics"][key], key


def test_last_checkpoint_is_the_last_epoch_when_val_acc_has_plateaued(
    tmp_path: Path, monkeypatch
) -> None:
    """Lightning >= 2.5 writes ``save_last``'s last.ckpt only in epochs where the best improved:
    a run whose val/acc had stopped improving resumed from its best epoch, not its last (seen
    in a 30-epoch PlainNet sweep). A frozen model (lr 1e-12, no BN) never improves after
    epoch 0; interrupted as epoch 2 starts, last.ckpt must hold epoch 1, best.ckpt epoch 0."""
    run_dir = tmp_path / "flat"
    frozen = [
        "backbone=fcn", "depth=3", "data=digits", "sc=off", "optim.lr=1e-12",
        "trainer.max_epochs=3", "trainer.limit_train_batches=4",
        "trainer.enable_progress_bar=false", "logger.wandb.mode=disabled",
        f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 2)
        assert main(frozen) == 130
    load = lambda name: torch.load(run_dir / "checkpoints" / name, weights_only=False)  # noqa: E731
    assert load("best.ckpt")["epoch"] == 0
    assert load("last.ckpt")["epoch"] == 1
    assert main([*frozen[:-1], f"ckpt_path={run_dir}/checkpoints/last.ckpt"]) == 0
    assert result(run_dir)["metrics"]["epochs"] == 3 and load("last.ckpt")["epoch"] == 2


def test_nan_loss_fails_with_step_and_fix(tmp_path: Path, monkeypatch, capsys) -> None:
    original = ClassifierModule._step

    def nan_at_step_3(self, batch, stage):
        loss = original(self, batch, stage)
        return loss * float("nan") if stage == "train" and self.global_step == 3 else loss

    monkeypatch.setattr(ClassifierModule, "_step", nan_at_step_3)
    run_dir = tmp_path / "nan"
    assert main([*RUN, f"hydra.run.dir={run_dir}"]) == 1
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert "NaN loss at step 3" in line and "optim.lr" in line
    res = result(run_dir)
    assert res["status"] == "failed" and "NaN loss at step 3" in res["error"]


def _enospc_on_checkpoint_writes(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """The disk fills up half-way through every checkpoint write after the first ``after``.

    Checkpoints are written by scnet's AtomicCheckpointIO through ``scnet.utils.io.write_all``
    (temp file beside the target, then rename): the failure is injected there.
    """
    from scnet.utils import io as scnet_io

    original = scnet_io.write_all
    seen = {"n": 0}

    def write_all(handle, data, *args, **kwargs):
        if ".ckpt." in str(handle.name):
            seen["n"] += 1
            if seen["n"] > after:
                original(handle, bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device", str(handle.name))
        return original(handle, data, *args, **kwargs)

    monkeypatch.setattr(scnet_io, "write_all", write_all)


def test_disk_full_mid_run_keeps_last_checkpoint(tmp_path: Path, monkeypatch, capsys) -> None:
    run_dir = tmp_path / "full"
    # Epoch 0 writes best.ckpt and last.ckpt; the disk is full from epoch 1 on.
    _enospc_on_checkpoint_writes(monkeypatch, after=2)
    assert main([*RUN, f"hydra.run.dir={run_dir}"]) == 4
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert "no space left on device" in line and "hydra.run.dir=" in line
    assert result(run_dir)["status"] == "failed"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] == 0  # the earlier checkpoint survived intact
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_disk_full_before_start_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from scnet import robust

    def full(handle_dir: Path, size: int = 0) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(handle_dir))

    monkeypatch.setattr(robust, "probe_write", full)
    assert main([*RUN, f"hydra.run.dir={tmp_path / 'r'}"]) == 4
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("scnet-run: error: no space left on device")
    assert not (tmp_path / "r").exists()


def test_read_only_output_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root ignores permissions: make the kernel's answer explicit
        from scnet import robust

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))

        monkeypatch.setattr(robust.tempfile, "mkstemp", denied)
    try:
        assert main([*RUN, f"hydra.run.dir={locked / 'run'}"]) == 4
    finally:
        locked.chmod(stat.S_IRWXU)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "is not writable" in line and "hydra.run.dir=" in line
    assert list(locked.iterdir()) == []


# ----------------------------------------------------------------------- no data loss (issue 12)
def snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run dir and its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}


def test_resuming_a_completed_run_is_refused_and_changes_nothing(tmp_path: Path, capsys) -> None:
    """It used to re-test and rewrite result.json without val/*, train/* and lr."""
    run_dir = tmp_path / "done"
    assert main([*RUN, f"hydra.run.dir={run_dir}"]) == 0
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main([*RUN, f"ckpt_path={run_dir}/checkpoints/last.ckpt"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "already completed its 3 epochs" in line and "trainer.max_epochs=4" in line
    assert snapshot(run_dir) == before


def test_rerunning_an_interrupted_run_without_ckpt_path_is_refused(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """The same command again in the same run dir used to start over last.ckpt, best.ckpt and
    metrics.csv; now it is refused with the resume command, and nothing changes."""
    run_dir = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 2)
        assert main([*RUN, f"hydra.run.dir={run_dir}"]) == 130
    before = snapshot(run_dir)
    capsys.readouterr()
    assert main([*RUN, f"hydra.run.dir={run_dir}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"ckpt_path={run_dir}/checkpoints/last.ckpt" in line and "unfinished run" in line
    assert snapshot(run_dir) == before
    # ...and the command it prints resumes it.
    assert main([*RUN, f"ckpt_path={run_dir}/checkpoints/last.ckpt"]) == 0
    assert result(run_dir)["metrics"]["epochs"] == 3


def test_resume_after_a_kill_that_lost_the_epoch_rows_of_metrics_csv(
    tmp_path: Path, monkeypatch
) -> None:
    """A trial killed in its first epoch (after last.ckpt, before the CSV logger flushed)
    leaves a metrics.csv whose header lacks train/loss; resuming it failed with
    ``ValueError: dict contains fields not in fieldnames: 'train/loss'``."""
    run_dir = tmp_path / "killed"
    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 1)
        assert main([*RUN, f"hydra.run.dir={run_dir}"]) == 130
    (run_dir / "metrics.csv").write_text("epoch,lr,step\n0,0.05,0\n")  # what the kill left
    assert main([*RUN, f"ckpt_path={run_dir}/checkpoints/last.ckpt"]) == 0
    rows = metric_rows(run_dir)
    assert {"train/loss", "val/acc", "lr"} <= set(rows[0])
    epochs = [r["epoch"] for r in rows if r.get("train/loss")]
    assert epochs == ["1", "2"]  # the resumed epochs, each once


def test_a_weights_only_checkpoint_cannot_resume(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "light"
    assert main([*RUN, "callbacks=weights_only", f"hydra.run.dir={run_dir}"]) == 0
    assert "optimizer_states" not in torch.load(run_dir / "checkpoints" / "last.ckpt")
    capsys.readouterr()
    code = main([*RUN, "trainer.max_epochs=4", f"ckpt_path={run_dir}/checkpoints/last.ckpt"])
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "weights only" in line


@pytest.mark.slow
def test_full_tmpfs_keeps_the_previous_checkpoints(tmp_path: Path) -> None:
    """A real full disk (a 1.6 MB tmpfs holds two ResNet-8 checkpoints, not a third file) with
    $TMPDIR on another file system: Lightning's own save wrote its temp file under $TMPDIR and
    "moved" it with a truncating copy, destroying a good checkpoint. Subprocess: root only."""
    import subprocess
    import sys

    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(mount)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()[:120]}")
    try:
        run_dir = mount / "run"
        env = {**os.environ, "WANDB_MODE": "offline", "TMPDIR": str(tmp_path)}
        env.pop("SCNET_DEBUG", None)
        cmd = [sys.executable, "-m", "scnet.cli.run", *RUN, "print_config=false",
               f"hydra.run.dir={run_dir}"]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 4, done.stderr[-2000:]
        assert "no space left on device" in done.stderr.strip().splitlines()[-1]
        for name in ("best.ckpt", "last.ckpt"):
            ckpt = torch.load(run_dir / "checkpoints" / name, weights_only=True)
            assert ckpt["epoch"] == 0, name  # intact and loadable
        leftovers = [p.name for p in run_dir.rglob("*.tmp")]
        assert leftovers == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_resumed_run_continues_the_same_wandb_run(tmp_path: Path, monkeypatch) -> None:
    """The W&B run id is kept in the run dir and W&B is told resume="allow": an interrupted
    and resumed run is one W&B run, not two."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run_dir = tmp_path / "wb"
    wandb_run = [*RUN[:-1], "logger.wandb.mode=offline", "sc.weight=0.5"]
    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 2)
        assert main([*wandb_run, f"hydra.run.dir={run_dir}"]) == 130
    run_id = (run_dir / "wandb_id").read_text().strip()
    assert main([*wandb_run, f"ckpt_path={run_dir}/checkpoints/last.ckpt"]) == 0
    assert (run_dir / "wandb_id").read_text().strip() == run_id
    runs = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(name.endswith(f"-{run_id}") for name in runs), runs


def test_a_failed_csv_append_leaves_the_previous_rows(tmp_path: Path, monkeypatch) -> None:
    """grad_stats.csv / condition.csv appends are all or nothing: a full disk mid-append
    used to leave a torn last line."""
    from scnet.utils import io as scnet_io

    path = tmp_path / "condition.csv"
    scnet_io.append_csv(path, ["epoch", "cond"], [[0, 1.5]])
    before = path.read_bytes()

    def half_then_full(handle, data, *args, **kwargs):
        handle.write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scnet_io, "write_all", half_then_full)
    with pytest.raises(OSError):
        scnet_io.append_csv(path, ["epoch", "cond"], [[1, 2.5], [2, 3.5]])
    assert path.read_bytes() == before


def test_resume_keeps_grad_stats_and_condition_rows_exact(tmp_path: Path, monkeypatch) -> None:
    """The instruments' CSVs are trimmed to the checkpoint like metrics.csv: an interrupted
    and resumed run has the same rows as an uninterrupted one."""
    lab = [*RUN, "grad_stats.enabled=true", "grad_stats.batches_per_epoch=1",
           "condition.enabled=true", "condition.samples=16"]  # fmt: skip
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main([*lab, f"hydra.run.dir={whole}"]) == 0
    with monkeypatch.context() as patch:
        interrupt_at_epoch(patch, 2)
        assert main([*lab, f"hydra.run.dir={split}"]) == 130
    assert main([*lab, f"ckpt_path={split}/checkpoints/last.ckpt"]) == 0
    for name in ("grad_stats.csv", "condition.csv"):
        assert (split / name).read_text() == (whole / name).read_text(), name
