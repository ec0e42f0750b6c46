"""``results.csv``: one row per trial (the newest attempt of each point), rebuilt from the study."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from scnet.sweep.spec import SweepSpec

RESULTS_FILE = "results.csv"


def rows(study, spec: SweepSpec) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows (sorted by trial), from the study alone (works across machines)."""
    from scnet.sweep.engine import latest_by_point

    latest = latest_by_point(study)
    metric_keys: set[str] = set()
    out = []
    for point in sorted(latest):
        t = latest[point]
        metrics = t.user_attrs.get("metrics") or {}
        metric_keys.update(metrics)
        row: dict[str, Any] = {"trial": point, "state": t.state.name}
        params = dict(t.params)
        params.setdefault("seed", t.user_attrs.get("seed"))
        row.update({k: params.get(k) for k in spec.param_keys})
        row.update(metrics)
        row["duration_s"] = t.user_attrs.get("duration_s")
        row["run_dir"] = t.user_attrs.get("run_dir", "")
        row["error"] = t.user_attrs.get("error", "")
        out.append(row)
    columns = ["trial", "state", *spec.param_keys, *sorted(metric_keys)]
    columns += ["duration_s", "run_dir", "error"]
    return columns, out


def write_results(study, spec: SweepSpec, sweep_dir: Path) -> Path:
    """Rewrite results.csv atomically (several workers may write it; the newest view wins)."""
    columns, data = rows(study, spec)
    path = sweep_dir / RESULTS_FILE
    tmp = sweep_dir / f".{RESULTS_FILE}.{os.getpid()}.tmp"
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in data:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    os.replace(tmp, path)
    return path
