"""Merge sweeps' results.csv files (e.g. seeds 0-2 and a later --seeds 3,4 look) into one.

    python docs/results/mnist1d/merge.py OUT.csv A.csv B.csv [...]
    python docs/results/mnist1d/merge.py OUT.csv "A.csv::backbone=fcn" "B.csv::backbone=fixedpoint"

Rows are concatenated in argument order and the ``trial`` column renumbered 0..n-1, so
``scnet-report NAME --output-dir D`` reads the union from ``D/sweeps/NAME/results.csv``.
``run_dir`` stays as recorded (absolute paths), which is where the curves are read from.

``FILE::KEY=VALUE[,KEY=VALUE]`` pins keys: rows of FILE whose KEY differs are dropped, and a
KEY column FILE lacks is added with VALUE (e.g. ``backbone`` for a sweep that fixes it in
``base``), so one table can hold each method at its own recipe.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def read(spec: str) -> pd.DataFrame:
    path, _, pins = spec.partition("::")
    frame = pd.read_csv(path)
    for pin in filter(None, pins.split(",")):
        key, _, value = pin.partition("=")
        if key in frame:
            frame = frame[frame[key].astype(str) == value]
        else:
            frame.insert(frame.columns.get_loc("seed") + 1, key, value)
    return frame


def main(out: str, inputs: list[str]) -> None:
    merged = pd.concat([read(s) for s in inputs], ignore_index=True)
    merged = merged[merged["state"].isin(["COMPLETE", "FAIL"])]  # drop never-claimed trials
    merged["trial"] = range(len(merged))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(out, index=False)
    print(f"{out}: {len(merged)} trials from {len(inputs)} files")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
