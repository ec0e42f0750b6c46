"""``scnet-report``: a sweep's results, or any run dirs, as tables and figures.

    scnet-report table2                 # outputs/reports/table2/{table2.md,.csv,.tex}
    scnet-report sc_sensitivity         # fig8_sc_weight.png + summary table
    scnet-report table2 --output-dir /scratch/scnet
    scnet-report table2 --seeds 0 --set depth=20,56   # a scnet-sweep look: the same flags
    scnet-report --runs outputs/runs/2026-*/*demo*   # outputs/reports/runs/

Reads ``<output-dir>/sweeps/NAME/results.csv`` (partial sweeps are fine: missing cells are
marked) and writes ``<output-dir>/reports/NAME/``. With ``--runs DIR...`` it reads the run
dirs themselves (``.hydra/config.yaml``, ``result.json``, ``metrics.csv``), groups them by
the config keys that differ, and writes the summary table (mean ± std, SC vs baseline:
Welch t, p, Δ with its 95 % CI, Hedges' g), ``curves.png`` and ``accuracy_vs_depth.png`` to
``<output-dir>/reports/<--report>/``. A ``scnet-sweep --seeds/--set`` look is reported with
the same flags: it reads and writes under ``<output-dir>/looks/TAG/`` and expects only the
look's configurations. Files are built in a temporary folder and moved in at
the end, so a failing report overwrites nothing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path

from scnet.cli.common import debug_enabled, fail
from scnet.errors import ConfigError, ScnetError
from scnet.sweep import spec as spec_mod

PROG = "scnet-report"
# Every module that registers a builder (gradients and nlp_tables were missing, so their
# tables/figures were "unknown" to the CLI).
BUILDER_MODULES = (
    "scnet.report.tables",
    "scnet.report.figures",
    "scnet.report.gradients",
    "scnet.report.gradient_methods",
    "scnet.report.nlp_tables",
    "scnet.report.plainnet",
)
#: What ``--runs`` writes unless ``--table``/``--figures`` say otherwise.
RUNS_TABLE = "summary"
RUNS_FIGURES = ("curves", "accuracy_vs_depth")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?",
                   help=f"a sweep in sweeps/ ({', '.join(spec_mod.available())})")  # fmt: skip
    p.add_argument("--runs", nargs="+", type=Path, metavar="DIR",
                   help="report on these run dirs instead of a named sweep")  # fmt: skip
    p.add_argument("--metric", default="test/acc",
                   help="with --runs: the metric to tabulate (default test/acc)")  # fmt: skip
    p.add_argument("--report", default="runs",
                   help="with --runs: the report's folder name under reports/ (default runs)")  # fmt: skip
    p.add_argument("--table", default=None,
                   help=f"with --runs: a registered table (default {RUNS_TABLE})")  # fmt: skip
    p.add_argument("--figures", nargs="*", default=None, metavar="NAME",
                   help=f"with --runs: registered figures (default {' '.join(RUNS_FIGURES)})")  # fmt: skip
    p.add_argument("--seeds", default=None,
                   help="the report of a scnet-sweep --seeds look (the same value)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                   help="the report of a scnet-sweep --set look (the same values)")  # fmt: skip
    p.add_argument("--output-dir", type=Path, default=Path("outputs"),
                   help="root holding sweeps/NAME and reports/NAME (default: outputs)")  # fmt: skip
    p.add_argument("--sweeps-dir", type=Path, default=spec_mod.SWEEPS_DIR, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if (args.name is None) == (args.runs is None):
        p.error("give a sweep NAME or --runs DIR..., not both and not neither")
    extra = args.metric != "test/acc" or args.report != "runs" or args.table or args.figures
    if args.runs is None and extra:
        p.error(
            "--metric, --report, --table and --figures go with --runs (a sweep file names its own)"
        )
    if args.runs is not None and (args.seeds is not None or args.set):
        p.error("--seeds and --set go with a sweep NAME (they name one of its looks)")
    if "/" in args.report or args.report in ("", ".", ".."):
        p.error(f"--report={args.report!r} is invalid: a folder name without '/'")
    return args


def load_results(spec: spec_mod.SweepSpec, sweep_dir: Path):
    """results.csv with ``attrs`` the builders need (keys, metric, expected configurations)."""
    import pandas as pd

    path = sweep_dir / "results.csv"
    if not path.is_file():
        raise ConfigError(f"no results for sweep {spec.name}: {path} does not exist "
                          f"(run scnet-sweep {spec.name} first)")  # fmt: skip
    try:
        results = pd.read_csv(path)
    except (ValueError, OSError) as err:
        raise ConfigError(f"{path}: unreadable ({str(err).splitlines()[0]})") from None
    if "state" not in results or not (results["state"] == "COMPLETE").any():
        raise ConfigError(f"no results for sweep {spec.name}: {path} has no completed trial yet")
    keys = [k for k in spec.param_keys if k != "seed" and k in results]
    expected = []
    if spec.sampler == "grid":
        seen = set()
        for point in spec.points():
            config = {k: point.params[k] for k in keys}
            if repr(config) not in seen:
                seen.add(repr(config))
                expected.append(config)
    results.attrs.update({"keys": keys, "metric": spec.metric, "expected": expected,
                          "sweep": spec.name})  # fmt: skip
    _normalize(results, expected, keys)
    return results


def _normalize(results, expected: list[dict], keys: list[str]) -> None:
    """Make CSV-read values compare equal to the sweep file's (``20`` vs ``20.0``, ``on``).

    A partial sweep's rows without any parameter (trials not yet claimed) say nothing about any
    configuration: they are dropped (``expected`` still lists those configurations as missing),
    and with them the NaNs that turned an integer column into floats. A single empty key is a
    real value (``backbone.max_norm: null``) and stays.
    """
    params = [*keys, *(["seed"] if "seed" in results else [])]
    unassigned = (
        results[params].isna().all(axis=1) & (results["state"] != "COMPLETE") if params else None
    )
    if unassigned is not None and unassigned.any():
        results.drop(index=results.index[unassigned], inplace=True)
    for k in keys:
        kinds = {type(c[k]) for c in expected}
        if kinds == {str}:
            results[k] = results[k].astype(str)
        elif kinds == {int} and results[k].dtype.kind == "f" and results[k].notna().all():
            results[k] = results[k].astype(int)


def run(args: argparse.Namespace) -> list[Path]:
    for module in BUILDER_MODULES:
        importlib.import_module(module)  # registration happens on import
    from scnet.report.registry import FIGURES, TABLES

    if args.runs is not None:
        from scnet.report.rundirs import load_runs

        table = args.table or RUNS_TABLE
        figures = RUNS_FIGURES if args.figures is None else args.figures
        _check_builders("--table", [table], TABLES)
        _check_builders("--figures", figures, FIGURES)
        results = load_runs(args.runs, args.metric)
        builders = [TABLES[table], *(FIGURES[f] for f in figures)]
        return _build(builders, results, Path("."), args.output_dir / "reports" / args.report)

    spec = spec_mod.shrink(spec_mod.load(args.name, args.sweeps_dir), args.seeds, args.set)
    table = spec.report.get("table")
    figures = spec.report.get("figures") or []
    if table and table not in TABLES:
        raise ConfigError(f"{spec.path}: report.table={table!r} is unknown: choose one of "
                          f"{', '.join(sorted(TABLES))}")  # fmt: skip
    for fig in figures:
        if fig not in FIGURES:
            raise ConfigError(f"{spec.path}: report.figures has unknown {fig!r}: choose from "
                              f"{', '.join(sorted(FIGURES))}")  # fmt: skip
    root = spec_mod.look_root(args.output_dir, spec)  # OUT, or OUT/looks/TAG for a look
    sweep_dir = root / "sweeps" / spec.name
    results = load_results(spec, sweep_dir)
    builders = ([TABLES[table]] if table else []) + [FIGURES[f] for f in figures]
    return _build(builders, results, sweep_dir, root / "reports" / spec.name)


def _check_builders(option: str, names: list[str] | tuple[str, ...], known: dict) -> None:
    for name in names:
        if name not in known:
            raise ConfigError(
                f"{option} {name!r} is unknown: choose from {', '.join(sorted(known))}"
            )


def _build(builders: list, results, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Run the builders into a temporary folder, then move their files into ``out_dir``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as tmp:
        written = []
        for build in builders:
            written += build(results, sweep_dir, Path(tmp))
        out_dir.mkdir(exist_ok=True)
        final = []
        for path in written:
            os.replace(path, out_dir / path.name)
            final.append(out_dir / path.name)
    return final


def main() -> None:
    args = parse_args(sys.argv[1:])
    try:
        paths = run(args)
    except ScnetError as err:
        if debug_enabled():
            raise
        fail(PROG, str(err), err.exit_code)
    for path in paths:
        print(f"{PROG}: wrote {path}")
    md = [p for p in paths if p.suffix == ".md"]
    if md:
        sys.stdout.write(md[0].read_text())


if __name__ == "__main__":
    main()
