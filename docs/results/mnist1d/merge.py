"""Merge sweeps' results.csv files (e.g. seeds 0-2 and a later --seeds 3,4 look) into one.

    python docs/results/mnist1d/merge.py OUT.csv A.csv B.csv [...]

Rows are concatenated in argument order and the ``trial`` column renumbered 0..n-1, so
``scnet-report NAME --output-dir D`` reads the union from ``D/sweeps/NAME/results.csv``.
``run_dir`` stays as recorded (absolute paths), which is where the curves are read from.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def main(out: str, inputs: list[str]) -> None:
    merged = pd.concat([pd.read_csv(p) for p in inputs], ignore_index=True)
    merged = merged[merged["state"].isin(["COMPLETE", "FAIL"])]  # drop never-claimed trials
    merged["trial"] = range(len(merged))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(out, index=False)
    print(f"{out}: {len(merged)} trials from {len(inputs)} files")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
