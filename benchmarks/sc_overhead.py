"""1. SC overhead: ResNet-56 training-step time and peak memory, sc off vs multi (both modes).

Time: the three models (same init) are stepped in interleaved rounds in one process, so load
from other processes hits all three alike; the median per-step time of each is reported.
Memory, CPU: each configuration runs in a fresh subprocess; peak = ``ru_maxrss`` after the
steps minus the RSS just before the first step (model, optimizer and data already built), so
it counts activations, gradients, momentum buffers and allocator slack of training itself.
Memory, CUDA: ``torch.cuda.max_memory_allocated`` over the steps, from a reset.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import REPO, median, sgd, timed, write
from scnet.lit.short_circuit import install_short_circuit
from scnet.models import CifarResNet

CONFIGS: dict[str, dict[str, Any]] = {
    "sc=off": {"enabled": False},
    "multi propagate": {"enabled": True, "k": 2, "strategy": "multi", "mode": "propagate"},
    "multi weight_only": {"enabled": True, "k": 2, "strategy": "multi", "mode": "weight_only"},
}


def build(config: str, depth: int, device: torch.device):
    torch.manual_seed(0)
    model = CifarResNet(depth=depth).to(device)
    install_short_circuit(
        model, {**CONFIGS[config], "weight": 0.2}, torch.zeros(2, 3, 32, 32, device=device)
    )
    return model, sgd(model)


def step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() // 1024


def memory_child(config: str, depth: int, batch: int, steps: int) -> dict[str, float]:
    """Run in a fresh process: peak memory of ``steps`` training steps, in MiB."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, opt = build(config, depth, device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        for _ in range(steps):
            step(model, opt, x, y)
        torch.cuda.synchronize(device)
        return {
            "peak_mib": (torch.cuda.max_memory_allocated(device) - base) / 2**20,
            "method": "cuda.max_memory_allocated",
        }
    base = _rss_kib()
    for _ in range(steps):
        step(model, opt, x, y)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_mib": (peak - base) / 1024,
        "method": "ru_maxrss - RSS before first step (fresh process)",
    }


def memory(config: str, depth: int, batch: int, steps: int) -> dict[str, float]:
    code = (
        "import json,sys; from benchmarks.sc_overhead import memory_child; "
        f"print(json.dumps(memory_child({config!r}, {depth}, {batch}, {steps})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(
    depth: int = 56, batch: int = 32, rounds: int = 4, steps: int = 1, quick: bool = False
) -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if quick:
        rounds = 3
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    built = {c: build(c, depth, device) for c in CONFIGS}
    for model, opt in built.values():  # warm-up (allocator, kernels)
        step(model, opt, x, y)
    times: dict[str, list[float]] = {c: [] for c in CONFIGS}
    for _ in range(rounds):
        for config, (model, opt) in built.items():
            times[config].append(
                timed(lambda m=model, o=opt: [step(m, o, x, y) for _ in range(steps)], device)
                / steps
            )
    del built
    rows = {}
    for config in CONFIGS:
        rows[config] = {
            "step_s": median(times[config]),
            "step_s_all": times[config],
            **memory(config, depth, batch, 3),
        }
    base = rows["sc=off"]
    for row in rows.values():
        row["time_ratio"] = row["step_s"] / base["step_s"]
        row["memory_ratio"] = row["peak_mib"] / base["peak_mib"]
    result = {
        "model": f"ResNet-{depth}",
        "batch": batch,
        "device": str(device),
        "rounds": rounds,
        "steps_per_round": steps,
        "rows": rows,
        "targets": {"time_ratio": 1.02, "memory_ratio": 1.01},
    }
    write("sc_overhead", result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
