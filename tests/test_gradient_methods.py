"""The ``gradient_methods`` table on synthetic results and tiny grad_stats.csv files (no training)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scnet.cli.report import parse_args, run
from scnet.report.gradient_methods import first_last_ratio, geometric_mean
from scnet.sweep import spec as spec_mod

SWEEP = """\
metric: test/acc
direction: maximize
sampler: grid
base: [data=digits, depth=4, grad_stats.enabled=true]
seeds: [0, 1]
grid:
  backbone: [residual_mlp, fcn]
  sc: ["on", "off"]
report:
  table: gradient_methods
  figures: []
"""
# (backbone, sc) -> per seed: (test/acc, duration_s, first-tap norm, last-tap norm).
RUNS = {
    ("residual_mlp", "on"): [(0.90, 10.0, 2.0, 1.0), (0.92, 12.0, 8.0, 1.0)],
    ("residual_mlp", "off"): [(0.88, 9.0, 0.5, 1.0), (0.86, 11.0, 0.5, 1.0)],
    ("fcn", "on"): [(0.80, 5.0, 1e-3, 1.0), (0.82, 7.0, 1e-1, 1.0)],
}  # fcn/off: no completed trial -> a missing row


def write_run(run_dir: Path, first: float, last: float) -> None:
    """A run dir with a 3-tap grad_stats.csv (2 recorded steps) and its Hydra config."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"depth": 4, "data": {"name": "digits"}, "sc": {"enabled": True}})
    )
    rows = []
    for step in (0, 1):
        for tap, norm in ((1, first), (2, (first + last) / 2), (3, last)):
            # step 0 and 1 straddle the norm, so the per-tap mean over steps is `norm`
            scale = 0.5 if step == 0 else 1.5
            rows.append({"step": step, "epoch": 0, "tap": tap, "w_grad_norm": norm * scale,
                         "out_grad_norm": 2 * norm * scale})  # fmt: skip
    pd.DataFrame(rows).to_csv(run_dir / "grad_stats.csv", index=False)


def make(tmp_path: Path) -> None:
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "gm.yaml").write_text(SWEEP)
    sweep_dir = tmp_path / "out" / "sweeps" / "gm"
    rows = []
    for (backbone, sc), seeds in RUNS.items():
        for seed, (acc, secs, first, last) in enumerate(seeds):
            run_dir = sweep_dir / "runs" / f"trial-{len(rows):04d}"
            write_run(run_dir, first, last)
            rows.append({"trial": len(rows), "state": "COMPLETE", "seed": seed,
                         "backbone": backbone, "sc": sc, "test/acc": acc, "duration_s": secs,
                         "run_dir": str(run_dir.relative_to(sweep_dir)), "error": ""})  # fmt: skip
    rows.append({"trial": len(rows), "state": "FAIL", "seed": 0, "backbone": "fcn", "sc": "off",
                 "test/acc": "", "duration_s": 1.0, "run_dir": "", "error": "nan loss"})  # fmt: skip
    with (sweep_dir / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_gradient_methods_table(tmp_path: Path) -> None:
    make(tmp_path)
    paths = run(parse_args(["gm", "--sweeps-dir", str(tmp_path / "sw"),
                            "--output-dir", str(tmp_path / "out")]))  # fmt: skip
    assert sorted(p.name for p in paths) == [f"gradient_methods.{e}" for e in ("csv", "md", "tex")]
    table = pd.read_csv(tmp_path / "out" / "reports" / "gm" / "gradient_methods.csv")
    table = table.set_index(["backbone", "sc"])
    res_on = table.loc[("residual_mlp", "on")]
    assert res_on["n"] == 2 and res_on["mean"] == pytest.approx(91.0)
    assert res_on["std"] == pytest.approx(math.sqrt(2.0))  # 90, 92 -> sample std
    assert res_on["time_mean_s"] == pytest.approx(11.0)
    assert res_on["time_std_s"] == pytest.approx(math.sqrt(2.0))
    assert res_on["w_grad_norm_ratio"] == pytest.approx(4.0)  # geometric mean of 2 and 8
    assert res_on["out_grad_norm_ratio"] == pytest.approx(4.0)  # 2x both ends: same ratio
    assert res_on["welch_p"] < 0.2  # SC vs its own SC-off baseline
    assert table.loc[("residual_mlp", "off"), "w_grad_norm_ratio"] == pytest.approx(0.5)
    assert table.loc[("fcn", "on"), "w_grad_norm_ratio"] == pytest.approx(1e-2)
    missing = table.loc[("fcn", "off")]
    assert missing["n"] == 0 and missing["failed"] == 1 and pd.isna(missing["w_grad_norm_ratio"])
    md = (tmp_path / "out" / "reports" / "gm" / "gradient_methods.md").read_text()
    assert "depth 4, data digits" in md and "| residual_mlp | on | 91.00 ± 1.41 |" in md
    assert "11.0 ± 1.4" in md and "| 4 |" in md and "missing" in md
    tex = (tmp_path / "out" / "reports" / "gm" / "gradient_methods.tex").read_text()
    assert r"$\pm$" in tex and "‖" not in tex and "∂" not in tex


def test_gradient_methods_notes_unequal_setups_and_missing_stats(tmp_path: Path) -> None:
    make(tmp_path)
    runs = tmp_path / "out" / "sweeps" / "gm" / "runs"
    (runs / "trial-0000" / "grad_stats.csv").unlink()
    (runs / "trial-0001" / ".hydra" / "config.yaml").write_text("depth: 8\ndata: {name: usps}\n")
    run(parse_args(["gm", "--sweeps-dir", str(tmp_path / "sw"), "--output-dir",
                    str(tmp_path / "out")]))  # fmt: skip
    md = (tmp_path / "out" / "reports" / "gm" / "gradient_methods.md").read_text()
    assert "not an equal-depth comparison" in md and "trial-0000: no grad_stats.csv" in md
    table = pd.read_csv(tmp_path / "out" / "reports" / "gm" / "gradient_methods.csv")
    row = table[(table["backbone"] == "residual_mlp") & (table["sc"] == "on")].iloc[0]
    assert row["w_grad_norm_ratio_n"] == 1 and row["w_grad_norm_ratio"] == pytest.approx(8.0)


def test_ratio_helpers() -> None:
    stats = pd.DataFrame({"tap": [3, 1, 2], "w_grad_norm": [4.0, 1.0, 2.0]})
    assert first_last_ratio(stats, "w_grad_norm") == pytest.approx(0.25)  # sorted by tap
    assert first_last_ratio(stats.iloc[:1], "w_grad_norm") is None
    assert geometric_mean([1e-4, 1.0]) == pytest.approx(1e-2) and geometric_mean([]) is None


def test_shipped_sweep_uses_the_table_and_records_grad_stats() -> None:
    spec = spec_mod.load("gradient_methods")
    assert spec.report["table"] == "gradient_methods"
    assert "grad_stats.enabled=true" in spec.base


def test_depth_limits_say_where_each_method_stops_training() -> None:
    from scnet.report.gradient_methods import depth_limits

    rows = [{"state": "COMPLETE", "backbone": "fcn", "sc": sc, "depth": d, "test/acc": acc}
            for sc, accs in (("off", (0.95, 0.60, 0.10)), ("on", (0.95, 0.90, 0.70)))
            for d, acc in zip((5, 20, 50), accs, strict=True)]  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["backbone", "sc", "depth"], "metric": "test/acc"})
    from scnet.report.tables import summarize

    limits = depth_limits(summarize(results)).set_index("sc")
    assert limits.loc["off", "deepest that trains"] == "20"
    assert limits.loc["off", "shallowest that does not"] == "50"
    assert limits.loc["on", "deepest that trains"] == "50"
    assert limits.loc["on", "shallowest that does not"] == "–"  # trains at every depth run
    assert limits.loc["on", "depths run"] == "5, 20, 50"


def test_shipped_sweep_varies_depth_with_sc_on_and_off() -> None:
    spec = spec_mod.load("gradient_methods")
    assert len(spec.grid["depth"]) >= 3 and spec.grid["sc"] == ["on", "off"]
    assert "gradient_methods_depth" in spec.report["figures"]
    assert len(spec.seeds) >= 2  # Welch's test needs two runs a side


def test_trains_line_is_calibrated_per_dataset() -> None:
    """MNIST-1D's reference MLP reaches 68 %: a 45 % cell trains there, but not on digits."""
    from scnet.report.gradient_methods import depth_limits, trains_at
    from scnet.report.tables import summarize

    assert trains_at({"mnist1d"}) == 39.0 and trains_at({"digits"}) == 50.0
    assert trains_at({"mnist1d", "digits"}) == 50.0  # mixed: the generic line
    results = pd.DataFrame([{"state": "COMPLETE", "sc": "off", "depth": d, "test/acc": a}
                            for d, a in ((5, 0.45), (20, 0.2))])  # fmt: skip
    results.attrs.update({"keys": ["sc", "depth"], "metric": "test/acc"})
    table = summarize(results)
    assert depth_limits(table, trains_at({"mnist1d"}))["deepest that trains"][0] == "5"
    assert depth_limits(table, trains_at({"digits"}))["deepest that trains"][0] == "–"


@pytest.mark.parametrize(
    "name", ["gradient_methods_mnist1d", "gradient_methods_fixedpoint_mnist1d"]
)
def test_mnist1d_lab_sweeps_are_fair_and_multi_seed(name: str) -> None:
    spec = spec_mod.load(name)
    assert "data=mnist1d" in spec.base and "grad_stats.enabled=true" in spec.base
    assert len(spec.seeds) >= 2 and spec.grid["sc"] == ["on", "off"]
    assert len(spec.grid["depth"]) >= 3 and spec.report["table"] == "gradient_methods"


@pytest.mark.parametrize(("data", "level"), [("mnist1d", 39.0), ("digits", 50.0)])
def test_depth_figure_draws_the_datas_trains_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: str, level: float
) -> None:
    from scnet.report import figures
    from scnet.report.gradient_methods import gradient_methods_depth

    rows = []
    for i, (depth, sc, acc) in enumerate([(5, "on", 0.5), (5, "off", 0.45), (20, "on", 0.1),
                                          (20, "off", 0.1)]):  # fmt: skip
        run_dir = tmp_path / "runs" / f"trial-{i}"
        (run_dir / ".hydra").mkdir(parents=True)
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"data": {"name": data}}))
        rows.append({"state": "COMPLETE", "depth": depth, "sc": sc, "test/acc": acc,
                     "run_dir": str(run_dir)})  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["depth", "sc"], "metric": "test/acc", "expected": []})
    plt = figures._pyplot()
    kept: list = []
    monkeypatch.setattr(plt, "close", kept.append)
    gradient_methods_depth(results, tmp_path, tmp_path / "out")
    line = next(x for x in kept[0].axes[0].lines if x.get_label().startswith("trains"))
    assert list(line.get_ydata()) == [pytest.approx(level)] * 2 and line.get_linestyle() == ":"


def test_depth_limits_count_a_depth_whose_runs_all_failed_as_not_training() -> None:
    """Highway + SC at depth 50 diverged in every run: that depth does not train."""
    from scnet.report.gradient_methods import depth_limits
    from scnet.report.tables import summarize

    rows = [{"state": "COMPLETE", "sc": "on", "depth": 5, "test/acc": 0.6},
            {"state": "COMPLETE", "sc": "on", "depth": 20, "test/acc": 0.55},
            {"state": "FAIL", "sc": "on", "depth": 50, "test/acc": None}]  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["sc", "depth"], "metric": "test/acc"})
    limits = depth_limits(summarize(results), 39.0).iloc[0]
    assert limits["deepest that trains"] == "20" and limits["shallowest that does not"] == "50"
    assert limits["depths run"] == "5, 20, 50"
