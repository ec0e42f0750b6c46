"""GPU-only checks: they skip here (no GPU) and run wherever a CUDA device is visible.

Each has a CPU twin elsewhere in the suite (bf16 autocast on CPU, gloo DDP, inductor on CPU);
these run the same code paths on the hardware the presets target.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import REPO, TINY_RUN, cli_env, read_result, run_cli
from tests.helpers.run_if import RunIf


@RunIf(min_gpus=1, bf16_cuda=True)
def test_trainer_gpu_preset_trains_with_sc(tmp_path):
    """`trainer=gpu` (bf16-mixed, cuDNN autotune) with SC on: a real run completes on CUDA."""
    run_dir = tmp_path / "run"
    proc = run_cli(
        "run", *TINY_RUN, "trainer=gpu", "channels_last=true", f"hydra.run.dir={run_dir}"
    )
    assert proc.returncode == 0, proc.stderr
    result = read_result(run_dir)
    assert result["status"] == "completed" and result["sc"]
    assert result["environment"]["accelerator"] == "cuda"


@RunIf(min_gpus=1)
def test_compiled_sc_equals_eager_sc_on_cuda():
    """The compile-able SC on CUDA inductor: gradients equal eager SC (float32, rel < 1e-4)."""
    from scnet.models.resnet import CifarResNet
    from tests.test_sc_compile import SC_ON, flat_grads, install_short_circuit, rel

    def grads(compiled: bool) -> torch.Tensor:
        torch.manual_seed(0)
        torch._dynamo.reset()
        model = CifarResNet(depth=20, num_classes=10, input_shape=(3, 16, 16)).cuda()
        g = torch.Generator(device="cuda").manual_seed(1)
        x = torch.randn(16, 3, 16, 16, device="cuda", generator=g)
        y = torch.randint(0, 10, (16,), device="cuda", generator=g)
        install_short_circuit(model, SC_ON, x[:2])
        run = torch.compile(model) if compiled else model
        F.cross_entropy(run(x), y).backward()
        return flat_grads(model)

    assert rel(grads(True), grads(False)) < 1e-4


@RunIf(min_gpus=2)
def test_ddp_on_two_gpus_completes(tmp_path):
    """`trainer=ddp` on two GPUs (NCCL): one result.json, written by rank 0."""
    run_dir = tmp_path / "run"
    proc = run_cli(
        "run", *TINY_RUN, "trainer=ddp", "trainer.devices=2", f"hydra.run.dir={run_dir}",
        env=cli_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_result(run_dir)["status"] == "completed"


@RunIf(min_gpus=1)
@pytest.mark.slow
def test_gpu_epoch_benchmark_runs_every_variant():
    """`benchmarks/gpu_epoch.py` on a real GPU: eager/compiled × SC on/off, one epoch."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_epoch", "--depths", "20", "--epochs", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
