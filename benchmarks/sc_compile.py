"""10. SC under torch.compile: ResNet-20/56 training step, eager vs compiled, plain vs SC (CPU).

    python -m benchmarks.sc_compile                       # depths 20 56, batch 128
    python -m benchmarks.sc_compile --depths 20 --rounds 3 --steps 1

Variants (same init, same batch; SGD step included): ``eager plain``, ``eager propagate``,
``eager weight_only``, ``compiled plain``, ``compiled propagate`` (inductor, default mode).
``compiled weight_only`` is not a variant: scnet-run refuses it (scnet/sc.py says why).

Time: all variants of one depth live in one process and step in alternated rounds
(A B C D E A B C D E ...), so load from other processes hits all alike; medians and the
spread of the per-round ratios are reported. Compile time: the first compiled step's wall
time minus the variant's median step. Memory: ``tensor_peak_mib``, the peak of live tensor
bytes during one step from the profiler's allocation events (the measure of
benchmarks/sc_overhead.py), in the same process after the timing rounds. Profile: inductor's
generated-kernel count per compiled variant and the self-CPU time of the top ops of one step.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common import median, sgd, timed, write
from benchmarks.sc_overhead import tensor_peak_bytes
from scnet.lit.short_circuit import install_short_circuit
from scnet.models import CifarResNet

SC = {"enabled": True, "k": 2, "strategy": "multi", "weight": 0.2}
VARIANTS: dict[str, tuple[str | None, bool]] = {  # name: (sc mode or None, compiled)
    "eager plain": (None, False),
    "eager propagate": ("propagate", False),
    "eager weight_only": ("weight_only", False),
    "compiled plain": (None, True),
    "compiled propagate": ("propagate", True),
}
COMPARISONS = [  # (variant, baseline)
    ("eager propagate", "eager plain"),
    ("eager weight_only", "eager plain"),
    ("compiled plain", "eager plain"),
    ("compiled propagate", "compiled plain"),  # the target: <= 1.02x time, <= 1.01x memory
    ("compiled propagate", "eager propagate"),  # what compiling buys an SC run
]


class Variant:
    """One model + optimizer; ``step()`` is a full training step (compiled or not)."""

    def __init__(self, mode: str | None, compiled: bool, depth: int, x: torch.Tensor) -> None:
        torch.manual_seed(0)
        self.model = CifarResNet(depth=depth)
        self.sc = install_short_circuit(self.model, {**SC, "mode": mode}, x[:2]) if mode else None
        self.run = torch.compile(self.model) if compiled else self.model
        self.opt = sgd(self.model)
        self.compiled = compiled

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        F.cross_entropy(self.run(x), y).backward()
        self.opt.step()


def _kernels() -> int:
    from torch._inductor import metrics

    return metrics.generated_kernel_count


def _top_ops(fn, n: int = 8) -> list[dict[str, Any]]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3}
        for e in rows[:n]
    ]


def measure_depth(depth: int, batch: int, rounds: int, steps: int) -> dict[str, Any]:
    cpu = torch.device("cpu")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    variants, first_step, kernels = {}, {}, {}
    torch._dynamo.reset()  # once: a reset between variants would recompile the earlier ones
    for name, (mode, compiled) in VARIANTS.items():
        before = _kernels()
        variants[name] = v = Variant(mode, compiled, depth, x)
        first_step[name] = timed(lambda v=v: v.step(x, y), cpu)  # compiles fwd + bwd
        kernels[name] = _kernels() - before if compiled else None
        print(f"  ResNet-{depth} {name}: first step {first_step[name]:.1f}s", flush=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # alternated: drift and stray load hit every variant alike
        for name, v in variants.items():
            times[name].append(timed(lambda v=v: [v.step(x, y) for _ in range(steps)], cpu) / steps)
    rows: dict[str, dict[str, Any]] = {}
    for name, v in variants.items():
        step_s = median(times[name])
        rows[name] = {
            "step_s": step_s,
            "step_s_all": times[name],
            "tensor_peak_mib": tensor_peak_bytes(lambda v=v: v.step(x, y)) / 2**20,
            "top_ops": _top_ops(lambda v=v: v.step(x, y)),
            "compile_s": first_step[name] - step_s if v.compiled else None,
            "inductor_kernels": kernels[name],
        }
    for name, base in COMPARISONS:  # per round: variant / baseline of the same round
        per_round = [
            t / b for t, b in zip(rows[name]["step_s_all"], rows[base]["step_s_all"], strict=True)
        ]
        rows[name].setdefault("ratio_vs", {})[base] = {
            "time": median(per_round),
            "time_min_max": [min(per_round), max(per_round)],
            "memory": rows[name]["tensor_peak_mib"] / rows[base]["tensor_peak_mib"],
        }
    return {"model": f"ResNet-{depth}", "rows": rows}


def run(
    depths: tuple[int, ...] = (20, 56),
    batch: int = 128,
    rounds: int = 5,
    steps: int = 2,
    threads: int = 1,
    quick: bool = False,
) -> dict[str, Any]:
    """Per-core comparison: ``threads`` torch threads (default 1, as OMP_NUM_THREADS=1)."""
    if quick:
        depths, rounds, steps = (20,), 3, 1
    start, previous = time.time(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        by_depth = {d: measure_depth(d, batch, rounds, steps) for d in depths}
    finally:
        torch.set_num_threads(previous)
    result = {
        "batch": batch,
        "rounds": rounds,
        "steps_per_round": steps,
        "torch_threads": threads,
        "depths": by_depth,
        "targets": {"compiled_sc_over_compiled_plain": {"time": 1.02, "memory": 1.01}},
    }
    result["wall_s"] = time.time() - start
    write("sc_compile", result)
    return result


def table(result: dict[str, Any]) -> list[str]:
    lines = []
    for depth, r in result["depths"].items():
        rows = r["rows"]
        for name, row in rows.items():
            extra = f"  compile {row['compile_s']:.0f}s" if row["compile_s"] is not None else ""
            lines.append(
                f"{'ResNet-' + str(depth) + ' ' + name:<34}{row['step_s']:>9.3f} s/step "
                f"{row['tensor_peak_mib']:>8.1f} MiB{extra}"
            )
        sc = rows["compiled propagate"]
        c = sc["ratio_vs"]["compiled plain"]
        lines.append(
            f"{'  compiled SC / compiled plain':<34}{c['time']:>9.3f}x time "
            f"({c['time_min_max'][0]:.3f}-{c['time_min_max'][1]:.3f}) {c['memory']:.3f}x mem"
            f"  target <= 1.02x / 1.01x: "
            f"{'met' if c['time'] <= 1.02 and c['memory'] <= 1.01 else 'MISSED'}"
        )
        for base in ("eager propagate",):
            speedup = 1 / sc["ratio_vs"][base]["time"]
            lines.append(f"{'  compiled SC speed-up vs eager SC':<34}{speedup:>9.2f}x")
        plain = rows["compiled plain"]["ratio_vs"]["eager plain"]["time"]
        lines.append(f"{'  compiled plain speed-up vs eager':<34}{1 / plain:>9.2f}x")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[20, 56])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = parser.parse_args()
    res = run(tuple(a.depths), a.batch, a.rounds, a.steps, a.threads)
    print("\n".join(table(res)))
