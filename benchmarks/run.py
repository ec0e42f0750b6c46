"""Run the CPU benchmarks side by side and print the ratios (``make bench``).

    python -m benchmarks.run            # all five, defaults sized for a 2-core CPU
    python -m benchmarks.run --quick    # fewer rounds
    python -m benchmarks.run --only sc_overhead pipeline

Results: ``benchmarks/results/<name>.json``; the numbers in BENCHMARKS.md come from these.
The GPU benchmark is separate: ``python -m benchmarks.gpu_epoch`` (needs CUDA).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks import framework, orchestration, pipeline, sc_compile, sc_overhead

BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "sc_overhead": sc_overhead.run,
    "framework": framework.run,
    "pipeline": pipeline.run,
    "orchestration": orchestration.run,
    "sc_compile": sc_compile.run,  # the slowest (inductor compiles): last
}


def _verdict(value: float, target: float, le: bool = True) -> str:
    ok = value <= target if le else value >= target
    return f"{'met' if ok else 'MISSED'} ({'<=' if le else '>='} {target})"


def table(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = [f"{'benchmark':<34}{'measured':>28}  target"]
    if r := results.get("sc_overhead"):
        for name, row in r["rows"].items():
            if name == "sc=off":
                lines.append(
                    f"{'SC ' + r['model'] + ' sc=off':<34}{row['step_s']:>10.3f} s/step {row['tensor_peak_mib']:>7.1f} MiB"
                )
                continue
            lo, hi = row["time_ratio_min_max"]
            lines.append(
                f"{'SC time   ' + name:<34}{row['time_ratio']:>27.3f}x  {_verdict(row['time_ratio'], 1.02)}"
                f"  per-round {lo:.3f}-{hi:.3f}"
            )
            lines.append(
                f"{'SC memory ' + name:<34}{row['memory_ratio']:>27.3f}x  {_verdict(row['memory_ratio'], 1.01)}"
            )
    if r := results.get("framework"):
        lines.append(
            f"{'framework Lightning/plain':<34}{r['ratio']:>27.3f}x  {_verdict(r['ratio'], 1.05)}"
        )
    if r := results.get("pipeline"):
        for name, row in r["rows"].items():
            lines.append(
                f"{'pipeline ' + name:<34}{row['data_only_img_s']:>16.0f} img/s data  {row['train_img_s']:.0f} img/s train"
            )
        lines.append(
            f"{'pipeline fast/classic (data)':<34}{r['data_only_speedup']:>27.2f}x  (GPU target >= 3; CPU: no target)"
        )
        lines.append(f"{'pipeline fast/classic (train)':<34}{r['train_speedup']:>27.2f}x")
    if r := results.get("orchestration"):
        lines.append(
            f"{'scnet-run start -> first step':<34}{r['first_step_s']:>26.2f}s  {_verdict(r['first_step_s'], 2.0)}"
        )
        lines.append(
            f"{'trivial trial, whole process':<34}{r['wall_s']:>26.2f}s  {_verdict(r['wall_s'], 2.0)}"
        )
        for imp in r["imports"]:
            lines.append(f"{'import ' + imp['module']:<34}{imp['total_s']:>26.2f}s")
        d = r["sweep_driver"]["per_trial_s"]
        lines.append(f"{'sweep driver per trial':<34}{d:>26.2f}s  {_verdict(d, 2.0)}")
    if r := results.get("sc_compile"):
        lines += sc_compile.table(r)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"benchmarks on {device}, torch threads={torch.get_num_threads()}")
    results = {}
    for name in args.only:
        start = time.time()
        results[name] = BENCHMARKS[name](quick=args.quick)
        print(f"  {name}: {time.time() - start:.0f}s", flush=True)
    data = next((r["data"] for r in results.values() if "data" in r), None)
    if data:
        print(f"data: {data}")
    print("\n".join(table(results)))
    print("results: benchmarks/results/*.json")


if __name__ == "__main__":
    main()
