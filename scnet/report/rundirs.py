"""``scnet-report --runs DIR…``: a results table from arbitrary run dirs, not only named sweeps.

Each run dir follows the output contract (DESIGN.md "Runs"): ``.hydra/config.yaml`` (the
composed config), ``result.json`` (status, metrics, seed, duration) and ``metrics.csv``. The
table has the columns a sweep's ``results.csv`` has (``state``, ``seed``, the metrics,
``run_dir``) plus one column per config key that differs between the runs, so every table
and figure builder works on it unchanged.

Which keys count: a key that differs between runs, except the seed, the run's name and
bookkeeping (paths, loggers, resume). ``sc.enabled`` becomes ``sc`` (``on``/``off``); the
other ``sc.*`` keys count only when they differ between SC runs, and are ``–`` (not
applicable) for runs with SC off, so an SC run finds its baseline whatever ``sc.weight`` the
plain run's config happened to carry. A key the other keys already determine
(``backbone.depth`` given ``depth``, a backbone's width given its name) is left out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from scnet.errors import ConfigError
from scnet.report.tables import NOT_APPLICABLE, _cell

#: Keys that never describe what a run is (bookkeeping), by exact name or prefix.
IGNORED = ("seed", "name", "ckpt_path", "sc.tag", "test_ckpt")
IGNORED_PREFIXES = ("hydra", "logger", "paths", "callbacks", "data.root", "data.seed",
                    "trainer.default_root_dir", "trainer.enable_progress_bar")  # fmt: skip


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """``{"sc": {"weight": 0.2}}`` → ``{"sc.weight": 0.2}``; lists as JSON text."""
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(config, list):
        return {prefix[:-1]: json.dumps(config)}
    return {prefix[:-1]: config}


def _ignored(key: str) -> bool:
    return key in IGNORED or any(key == p or key.startswith(p + ".") for p in IGNORED_PREFIXES)


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The flat config, and the rest of its row: ``state``, ``seed``, ``duration_s``, metrics."""
    if not run_dir.is_dir():
        raise ConfigError(f"--runs: {run_dir} is not a directory")
    config_path = run_dir / ".hydra" / "config.yaml"
    if not config_path.is_file():
        raise ConfigError(f"--runs: {run_dir} is not a run dir (no .hydra/config.yaml)")
    try:
        config = yaml.safe_load(config_path.read_text()) or {}
        result_path = run_dir / "result.json"
        result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    except (yaml.YAMLError, json.JSONDecodeError, OSError) as err:
        raise ConfigError(f"--runs: {run_dir}: unreadable ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict) or not isinstance(result, dict):
        raise ConfigError(f"--runs: {run_dir}: config.yaml or result.json is not a mapping")
    state = {"completed": "COMPLETE", "failed": "FAIL"}.get(result.get("status"), "INCOMPLETE")
    metrics = {k: v for k, v in (result.get("metrics") or {}).items() if "/" in k}
    row = {"state": state, "seed": result.get("seed", config.get("seed")),
           "duration_s": result.get("duration_s"), **metrics, "run_dir": str(run_dir.resolve()),
           "error": result.get("error", "")}  # fmt: skip
    return {k: v for k, v in flatten(config).items() if not _ignored(k)}, row


def _varying(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    return [c for c in columns if c in frame and frame[c].map(_cell).nunique() > 1]


def load_runs(run_dirs: list[Path], metric: str) -> pd.DataFrame:
    """The runs as a results table with ``attrs`` ``keys``, ``metric``, ``expected``, ``sweep``."""
    if not run_dirs:
        raise ConfigError("--runs needs at least one run dir")
    pairs = [read_run(Path(d)) for d in run_dirs]
    config_keys = list(dict.fromkeys(k for config, _ in pairs for k in config))
    frame = pd.DataFrame([{**config, **row} for config, row in pairs])
    if metric not in frame:
        have = ", ".join(sorted(c for c in frame if "/" in c)) or "no metrics"
        raise ConfigError(f"--metric {metric}: no run has it (the runs have {have})")
    keys = _varying(frame, [k for k in config_keys if not k.startswith("sc.")])
    sc_keys = [k for k in config_keys if k.startswith("sc.") and k != "sc.enabled"]
    if _varying(frame, ["sc.enabled"]):
        on = frame["sc.enabled"].astype(str).str.lower().isin(("true", "1"))
        frame["sc"] = ["on" if x else "off" for x in on]
        sc_keys = _varying(frame[on], sc_keys)
        for key in sc_keys:  # a plain run's SC settings are not applicable, not a setting
            frame[key] = frame[key].astype(object).where(on, NOT_APPLICABLE)
        keys += ["sc", *sc_keys]
    else:
        keys += _varying(frame, sc_keys)
    keys = _dedupe(frame, keys)
    extra = [c for c in frame if "/" in c and c != metric]
    frame = frame[[*keys, "state", "seed", "duration_s", metric, "run_dir", "error", *extra]]
    expected = [dict(zip(keys, v, strict=True)) for v in
                dict.fromkeys(tuple(r) for r in frame[keys].itertuples(index=False))]  # fmt: skip
    frame.attrs.update({"keys": keys, "metric": metric, "expected": expected,
                        "sweep": f"{len(pairs)} run dirs"})  # fmt: skip
    return frame


def _dedupe(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """Drop a key that the kept keys already determine (``backbone.depth`` given ``depth``,
    ``backbone.width`` given ``backbone.name``): the table shows what was varied, once.

    Keys are considered shallowest first, then most distinct values, then shortest name; one
    is kept when some group of rows equal on the kept keys has two values of it. ``sc`` is
    always kept (it is what the report compares).
    """
    cells = frame[keys].map(_cell) if keys else frame[keys]
    order = sorted(keys, key=lambda k: (k != "sc", k.count("."), -cells[k].nunique(), len(k)))
    kept: list[str] = []
    for key in order:
        determined = bool(kept) and cells.groupby(kept)[key].nunique().max() <= 1
        if key == "sc" or not determined:
            kept.append(key)
    return [k for k in keys if k in kept]
