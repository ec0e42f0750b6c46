"""``results.csv``: one row per trial (the newest attempt of each point), rebuilt from the study."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scnet.sweep.spec import SweepSpec
from scnet.utils.io import atomic_write_text

RESULTS_FILE = "results.csv"


def latest_by_point(study) -> dict[int, Any]:
    """The newest attempt of every point (older attempts were interrupted or retried)."""
    latest: dict[int, Any] = {}
    for t in study.get_trials(deepcopy=False):
        p = t.user_attrs.get("point", t.number)
        if p not in latest or t.number > latest[p].number:
            latest[p] = t
    return latest


def rows(study, spec: SweepSpec) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows (sorted by trial), from the study alone (works across machines)."""
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
        lost = t.state.name == "FAIL" and "error" not in t.user_attrs
        row["error"] = "lost (node loss or kill -9)" if lost else t.user_attrs.get("error", "")
        out.append(row)
    columns = ["trial", "state", *spec.param_keys, *sorted(metric_keys)]
    columns += ["duration_s", "run_dir", "error"]
    return columns, out


def write_results(study, spec: SweepSpec, sweep_dir: Path) -> Path:
    """Rewrite results.csv atomically from the newest view of the study.

    Several workers and drivers write it. The study is read *inside* an exclusive lock, so the
    last writer always holds the newest view: without the lock a driver that read the study
    just before another's final trial completed could replace the complete file with a stale
    one (seen with three drivers on PostgreSQL).
    """
    path = sweep_dir / RESULTS_FILE
    with _locked(sweep_dir / f".{RESULTS_FILE}.lock"):
        columns, data = rows(study, spec)
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in data:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
        atomic_write_text(path, buffer.getvalue())
    return path


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (Linux NFS maps flock to POSIX locks, so it holds across
    nodes; Lustre needs its ``flock`` mount option)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
