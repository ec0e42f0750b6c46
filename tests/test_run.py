"""End-to-end ``scnet-run``: the output contract, reproducibility, resume, failures, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import TINY_RUN, read_result, run_cli
from hydra import compose, initialize_config_dir

from scnet import train
from scnet.cli.common import CONF_DIR
from scnet.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """Two identical SC runs and one plain run, shared by the contract tests."""
    root = tmp_path_factory.mktemp("runs")
    dirs = {"a": root / "a", "b": root / "b", "plain": root / "plain"}
    for name, run_dir in dirs.items():
        extra = ["sc=off"] if name == "plain" else []
        proc = run_cli("run", *TINY_RUN, *extra, f"hydra.run.dir={run_dir}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        (root / f"{name}.console").write_text(proc.stdout + proc.stderr)
    return dirs


def test_run_writes_the_output_contract(tiny_runs):
    run_dir = tiny_runs["a"]
    result = read_result(run_dir)
    assert result["status"] == "completed"
    for key in (
        "test/acc",
        "test/loss",
        "val/acc",
        "val/acc_best",
        "train/loss",
        "epochs",
        "steps",
    ):
        assert key in result["metrics"], key
    assert 0.0 <= result["metrics"]["test/acc"] <= 1.0
    assert result["seed"] == 0 and result["duration_s"] > 0
    assert result["sc"] == [[3, 2], [5, 4], [7, 6]]  # ResNet-8 multi strategy, k=2
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "run.log").is_file()
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert any(row.get("train/loss") for row in rows) and any(row.get("val/acc") for row in rows)


def test_console_is_one_line_per_event(tiny_runs):
    """Issue 11: of a run's 34 lines about 12 were noise (Lightning's INFO lines twice, the
    litlogger tip, W&B's anonymous warning, a torch _pytree deprecation, a FLOPs column)."""
    lines = (tiny_runs["a"].parent / "a.console").read_text().splitlines()
    text = "\n".join(lines)
    for noise in ("litlogger", "anonymous setting", "_pytree", "FLOPs", "TPU available",
                  "Loading `train_dataloader`"):  # fmt: skip
        assert noise not in text, noise
    events = [ln for ln in lines if "] - " in ln]  # logged events (not the tree, not the bar)
    messages = [ln.split("] - ", 1)[1] for ln in events]
    assert len(messages) == len(set(messages)), "a line printed twice"
    assert sum("config" in ln and not ln.startswith(("├", "└", "│")) for ln in lines) == 1
    tree = [ln for ln in lines if ln.startswith(("├", "└", "│"))]
    assert 10 <= len(tree) <= 30  # compact: one line per section or object
    assert len(lines) - len(tree) <= 14, text  # events + the two result lines
    result = read_result(tiny_runs["a"])
    env = result["environment"]  # issue 12: what the same-seed promise depends on
    assert env["torch_threads"] >= 1 and env["torch"] and env["lightning"] and env["device"]


def test_same_command_twice_gives_identical_metrics(tiny_runs):
    first, second = read_result(tiny_runs["a"]), read_result(tiny_runs["b"])
    assert first["metrics"] == second["metrics"]


def test_sc_off_is_the_plain_backbone_with_the_same_parameters(tiny_runs):
    plain, shorted = read_result(tiny_runs["plain"]), read_result(tiny_runs["a"])
    assert plain["sc"] == []
    assert plain["params"] == shorted["params"]  # SC adds no parameters
    assert plain["metrics"] != shorted["metrics"]  # ...but does change training


def test_resume_from_last_checkpoint_continues_in_the_same_run_dir(tiny_runs, tmp_path):
    run_dir = tmp_path / "resumable"
    assert run_cli("run", *TINY_RUN, f"hydra.run.dir={run_dir}").returncode == 0
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    proc = run_cli("run", *TINY_RUN, "trainer.max_epochs=2", f"ckpt_path={ckpt}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_result(run_dir)
    assert result["status"] == "completed" and result["metrics"]["epochs"] == 2
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1  # the checkpoint moved on


def test_a_diverging_run_is_recorded_as_failed(tmp_path):
    run_dir = tmp_path / "nan"
    proc = run_cli("run", *TINY_RUN, "optim.lr=1e30", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 1
    # Lightning's INFO lines may precede it; the error itself is the last line, one line.
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("scnet-run: error:") and "NaN loss at step" in last and "optim.lr" in last
    )
    assert "Traceback" not in proc.stderr
    result = read_result(run_dir)
    assert result["status"] == "failed" and "NaN loss at step" in result["error"]


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["depth=57"], 2, "depth=57 is invalid for backbone=resnet"),
        (["backbone=transformerx"], 2, "backbone=transformerx is unknown: choose one of"),
        (
            ["data=cifar10", "data.root=/nonexistent/cifar"],
            3,
            "/nonexistent/cifar/cifar-10-batches-py",
        ),
    ],
)
def test_bad_input_cli_fails_fast_with_one_line(tmp_path, args, code, match):
    run_dir = tmp_path / "bad"
    proc = run_cli("run", *args, f"hydra.run.dir={run_dir}")
    assert proc.returncode == code
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert match in proc.stderr and "Traceback" not in proc.stderr
    assert not run_dir.exists()  # nothing left behind


def compose_run(*overrides: str):
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["sc.weight=-1"], ConfigError, "sc.weight=-1"),
        (["sc.weight=nan"], ConfigError, "sc.weight"),
        (["sc.k=0"], ConfigError, "sc.k=0"),
        (["sc.rear=99"], ConfigError, r"sc.rear=99 is out of range: taps are numbered 1..7"),
        (["sc.strategy=dense"], ConfigError, "sc.strategy"),
        (["sc.mode=sideways"], ConfigError, "sc.mode"),
        (["sc.connections=[[2,4]]"], ConfigError, "front must be < rear"),
        (["sc.connections=[[7,1]]"], ConfigError, r"shapes differ"),
        (["optim.name=lbfgs"], ConfigError, "optim.name"),
        (["backbone=fcn", "backbone.activation=swishy"], ConfigError, "activation"),
    ],
)
def test_bad_config_is_rejected_before_training(overrides, error, match):
    cfg = compose_run("experiment=demo", "depth=8", *overrides)
    with pytest.raises(error, match=match):
        datamodule, module = train.prepare(cfg)
        module.configure_optimizers  # noqa: B018 - optimizer errors surface in build_optimizer
        from scnet.lit.optim import build_optimizer

        build_optimizer(module.parameters(), cfg.optim)


def test_missing_mnist_names_the_path(tmp_path):
    cfg = compose_run("experiment=fig5_fcn", f"data.root={tmp_path}")
    with pytest.raises(DataError, match=str(tmp_path)):
        train.prepare(cfg)


@pytest.mark.slow
def test_demo_reaches_90_percent(tmp_path):
    """`make demo`'s experiment: SCResNet-20 on digits must reach >= 0.9 test accuracy."""
    run_dir = tmp_path / "demo"
    proc = run_cli(
        "run", "experiment=demo", "logger.wandb.mode=disabled", f"hydra.run.dir={run_dir}"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_result(run_dir)["metrics"]["test/acc"] >= 0.9
