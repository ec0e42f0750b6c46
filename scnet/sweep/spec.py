"""Sweep files (``sweeps/NAME.yaml``): loading, validation and the trials they define.

A sweep names a grid (``sampler: grid``, every combination of ``grid`` values, once per seed)
or a search space (``sampler: tpe``) over ``scnet-run`` override keys. Every problem with a
file is reported as one :class:`~scnet.errors.ConfigError` line that names the file and key.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scnet.errors import ConfigError
from scnet.shipped import shipped_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
SWEEPS_DIR = shipped_dir("sweeps", "SCNET_SWEEPS_DIR")  # a wheel ships sweeps/ inside scnet/

KEYS = {
    "description", "reproduces", "metric", "direction", "sampler", "base", "seeds", "grid",
    "space", "n_trials", "pruner", "prune_on", "cost", "report", "alias_of", "max_retry",
}  # fmt: skip
DEFAULT_MAX_RETRY = 2  # re-runs of a trial lost to node loss / kill -9 before it counts as failed
MAX_RETRY_LIMIT = 10
SAMPLERS = ("grid", "tpe")
DIRECTIONS = ("maximize", "minimize")
PRUNERS = ("none", "median", "hyperband")
SPACE_TYPES = ("float", "int", "categorical")
Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Point:
    """One trial's parameters: ``index`` names its run dir (``runs/trial-XXXX``)."""

    index: int
    params: dict[str, Scalar]


@dataclass
class SweepSpec:
    """A validated sweep file."""

    name: str
    path: Path
    metric: str
    direction: str
    sampler: str
    description: str = ""
    reproduces: str = ""
    base: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    grid: dict[str, list[Scalar]] = field(default_factory=dict)
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_trials: int = 0
    pruner: str = "none"
    prune_on: str = ""
    cost: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    max_retry: int = DEFAULT_MAX_RETRY
    tag: str = ""  # set by shrink(): a smaller look kept in its own study

    @property
    def study_name(self) -> str:
        return f"{self.name}@{self.tag}" if self.tag else self.name

    @property
    def param_keys(self) -> list[str]:
        """The keys that vary between trials, ``seed`` first."""
        keys = self.grid if self.sampler == "grid" else self.space
        return ["seed", *keys]

    def points(self) -> list[Point]:
        """Every grid point × seed, in a stable order (grid sweeps only)."""
        keys = list(self.grid)
        combos = itertools.product(*(self.grid[k] for k in keys)) if keys else [()]
        out: list[Point] = []
        for combo in combos:
            for seed in self.seeds:
                out.append(Point(len(out), {"seed": seed, **dict(zip(keys, combo, strict=True))}))
        return out

    @property
    def n_total(self) -> int:
        return len(self.points()) if self.sampler == "grid" else self.n_trials

    def fingerprint(self, overrides: Sequence[str]) -> str:
        """What makes two invocations the same study (resume must not mix different sweeps)."""
        data = {
            "sampler": self.sampler, "base": self.base, "seeds": self.seeds, "grid": self.grid,
            "space": self.space, "n_trials": self.n_trials, "metric": self.metric,
            "direction": self.direction, "overrides": list(overrides),
        }  # fmt: skip
        return json.dumps(data, sort_keys=True)


def available(sweeps_dir: Path = SWEEPS_DIR) -> list[str]:
    return sorted(p.stem for p in sweeps_dir.glob("*.yaml"))


def load(name: str, sweeps_dir: Path = SWEEPS_DIR, _seen: tuple[str, ...] = ()) -> SweepSpec:
    """Read and validate ``sweeps_dir/name.yaml`` or a sweep file by path (following ``alias_of``)."""
    path = sweeps_dir / f"{name}.yaml"
    if name.endswith((".yaml", ".yml")) or os.sep in name:  # the user's own file, by path
        path, sweeps_dir, name = Path(name), Path(name).parent, Path(name).stem
    if not path.is_file():
        names = ", ".join(available(sweeps_dir)) or "(none)"
        raise ConfigError(f"unknown sweep {name!r}: choose one of {names} (in {sweeps_dir})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}:{where} malformed YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys (metric, sampler, grid, ...)")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key {unknown[0]!r}: allowed keys are {', '.join(sorted(KEYS))}"
        )
    if data.get("alias_of"):
        target = str(data["alias_of"])
        if target in _seen or target == name:
            raise ConfigError(f"{path}: alias_of={target!r} forms a cycle")
        return load(target, sweeps_dir, (*_seen, name))
    return _validate(name, path, data)


def _validate(name: str, path: Path, data: dict[str, Any]) -> SweepSpec:
    def bad(key: str, msg: str) -> ConfigError:
        return ConfigError(f"{path}: {key} {msg}")

    for key in ("metric", "direction", "sampler"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise bad(key, "is required (a string)")
    if data["direction"] not in DIRECTIONS:
        raise bad(
            "direction", f"={data['direction']!r} is invalid: choose {' or '.join(DIRECTIONS)}"
        )
    if data["sampler"] not in SAMPLERS:
        raise bad("sampler", f"={data['sampler']!r} is invalid: choose {' or '.join(SAMPLERS)}")
    base = data.get("base") or []
    if not isinstance(base, list) or not all(isinstance(b, str) and "=" in b for b in base):
        raise bad("base", "must be a list of key=value override strings")
    seeds = data.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise bad("seeds", "must be a non-empty list of integers")
    if len(set(seeds)) != len(seeds):
        raise bad("seeds", "has duplicates")
    spec = SweepSpec(
        name=name, path=path, metric=data["metric"], direction=data["direction"],
        sampler=data["sampler"], description=str(data.get("description") or ""),
        reproduces=str(data.get("reproduces") or ""), base=list(base), seeds=list(seeds),
        cost=dict(data.get("cost") or {}), report=_report(data.get("report"), bad),
    )  # fmt: skip
    retry = data.get("max_retry", DEFAULT_MAX_RETRY)
    if not _is_int(retry) or not 0 <= retry <= MAX_RETRY_LIMIT:
        raise bad("max_retry", f"must be an integer from 0 to {MAX_RETRY_LIMIT}")
    spec.max_retry = int(retry)
    if spec.sampler == "grid":
        spec.grid = _grid(data.get("grid"), bad)
        for key in ("space", "n_trials", "pruner"):
            if data.get(key) not in (None, "none"):
                raise bad(key, "is only for sampler: tpe")
    else:
        spec.space = _space(data.get("space"), bad)
        n = data.get("n_trials")
        if not _is_int(n) or n < 1:
            raise bad("n_trials", "must be a positive integer for sampler: tpe")
        spec.n_trials = int(n)
        spec.pruner = str(data.get("pruner") or "none")
        if spec.pruner not in PRUNERS:
            raise bad("pruner", f"={spec.pruner!r} is invalid: choose one of {', '.join(PRUNERS)}")
        spec.prune_on = str(data.get("prune_on") or "val/acc")
        if data.get("grid"):
            raise bad("grid", "is only for sampler: grid (use space: for tpe)")
    for key in spec.param_keys[1:]:
        if key == "seed" or key.startswith("hydra"):
            raise bad(f"grid/space key {key!r}", "is not allowed (seeds go in seeds:)")
    return spec


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _grid(grid: Any, bad: Any) -> dict[str, list[Scalar]]:
    if grid is None:
        return {}
    if not isinstance(grid, dict):
        raise bad("grid", "must map override keys to lists of values")
    out: dict[str, list[Scalar]] = {}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise bad(f"grid.{key}", "must be a non-empty list of values")
        for v in values:
            if not isinstance(v, Scalar) or (isinstance(v, float) and not math.isfinite(v)):
                raise bad(f"grid.{key}", f"value {v!r} is not a string, number, bool or null")
        if len({json.dumps(v) for v in values}) != len(values):
            raise bad(f"grid.{key}", "has duplicate values")
        out[str(key)] = list(values)
    return out


def _space(space: Any, bad: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(space, dict) or not space:
        raise bad("space", "must map override keys to {type, low, high, log, choices}")
    out: dict[str, dict[str, Any]] = {}
    for key, dist in space.items():
        where = f"space.{key}"
        if not isinstance(dist, dict) or dist.get("type") not in SPACE_TYPES:
            raise bad(f"{where}.type", f"must be one of {', '.join(SPACE_TYPES)}")
        extra = sorted(set(dist) - {"type", "low", "high", "log", "step", "choices"})
        if extra:
            raise bad(
                f"{where}.{extra[0]}", "is unknown: allowed type, low, high, log, step, choices"
            )
        if dist["type"] == "categorical":
            choices = dist.get("choices")
            if not isinstance(choices, list) or not choices:
                raise bad(f"{where}.choices", "must be a non-empty list")
        else:
            low, high = dist.get("low"), dist.get("high")
            if not all(isinstance(x, int | float) for x in (low, high)) or not low < high:
                raise bad(f"{where}.low/high", "must be numbers with low < high")
            if dist.get("log") and low <= 0:
                raise bad(f"{where}.low", "must be > 0 when log: true")
        out[str(key)] = dict(dist)
    return out


def _report(report: Any, bad: Any) -> dict[str, Any]:
    if report is None:
        return {"table": None, "figures": []}
    if not isinstance(report, dict) or set(report) - {"table", "figures"}:
        raise bad("report", "must be {table: NAME or null, figures: [NAME, ...]}")
    figures = report.get("figures") or []
    if not isinstance(figures, list):
        raise bad("report.figures", "must be a list of figure names")
    return {"table": report.get("table"), "figures": list(figures)}


def shrink(spec: SweepSpec, seeds: str | None, sets: Sequence[str]) -> SweepSpec:
    """``--seeds 0,1`` / ``--set key=v1,v2``: a smaller look at a sweep, tagged so that it gets
    its own study and output dir (never mixed with the full sweep's results)."""
    if seeds is None and not sets:
        return spec
    new = dataclasses.replace(spec, grid=dict(spec.grid))
    tags = []
    if seeds is not None:
        try:
            new.seeds = [int(s) for s in seeds.split(",")]
        except ValueError:
            raise ConfigError(
                f"--seeds {seeds!r} is invalid: use comma-separated integers"
            ) from None
        if len(set(new.seeds)) != len(new.seeds):
            raise ConfigError(f"--seeds {seeds!r} has duplicates")
        tags.append(f"seeds={seeds}")
    for item in sets:
        key, _, values = item.partition("=")
        if spec.sampler != "grid" or key not in spec.grid or not values:
            allowed = ", ".join(spec.grid) or "(none: not a grid sweep)"
            raise ConfigError(f"--set {item!r}: use KEY=V1,V2 with KEY one of {allowed}")
        new.grid[key] = _set_values(item)
        tags.append(f"{key}={values}")
    new.tag = ";".join(tags)
    return new


def look_root(output_dir: Path, spec: SweepSpec) -> Path:
    """Where a sweep's ``sweeps/`` and ``reports/`` live: ``OUT``, or ``OUT/looks/TAG`` for a
    ``--seeds``/``--set`` look (scnet-sweep and scnet-report agree through this one place)."""
    if not spec.tag:
        return output_dir
    return (
        output_dir / "looks" / "".join(c if c.isalnum() or c in "=,.-" else "_" for c in spec.tag)
    )


def _set_values(item: str) -> list[Scalar]:
    """``KEY=V1,V2`` read as Hydra reads a command-line sweep, so ``sc=on,off`` means the
    strings ``on`` and ``off`` as on the ``scnet-run`` command line (YAML 1.1 makes them
    booleans)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        override = OverridesParser.create().parse_override(item)
        if override.is_sweep_override():  # a list (a,b) or range(); interval() is refused
            return list(override.sweep_iterator())
        return [override.value()]
    except HydraException as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"--set {item!r} is invalid: {reason}") from None


def format_value(value: Scalar) -> str:
    """A grid value as Hydra override text (``null``, ``true``, ``0.2``, ``on``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if any(c in text for c in " ,[]{}()'\"=:"):
        return "'" + text.replace("'", "\\'") + "'"
    return text


def trial_overrides(params: dict[str, Scalar]) -> list[str]:
    return [f"{k}={format_value(v)}" for k, v in params.items()]
