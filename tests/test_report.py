"""scnet-report on synthetic results.csv files: numbers, missing cells, files, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats

from scnet.cli.report import parse_args, run
from scnet.errors import ConfigError
from scnet.report import paper
from scnet.report.tables import summarize

SWEEP = """\
metric: test/acc
direction: maximize
sampler: grid
seeds: [0, 1, 2]
grid:
  depth: [20, 56]
  sc: ["on", "off"]
report:
  table: table2
  figures: [accuracy_vs_depth, fig8_sc_weight]
"""
# depth 56 / sc=off has no completed trial (one failed): a missing cell.
ACC = {(20, "on"): [0.92, 0.915, 0.925], (20, "off"): [0.91, 0.905, 0.9], (56, "on"): [0.93, 0.94]}


def make(tmp_path: Path) -> Path:
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "t2.yaml").write_text(SWEEP)
    sweep_dir = tmp_path / "out" / "sweeps" / "t2"
    sweep_dir.mkdir(parents=True)
    rows, n = [], 0
    for (depth, sc), accs in ACC.items():
        for seed, acc in enumerate(accs):
            rows.append({"trial": n, "state": "COMPLETE", "seed": seed, "depth": depth, "sc": sc,
                         "test/acc": acc, "duration_s": 1.0, "run_dir": "", "error": ""})  # fmt: skip
            n += 1
    rows.append({"trial": n, "state": "FAIL", "seed": 0, "depth": 56, "sc": "off", "test/acc": "",
                 "duration_s": 1.0, "run_dir": "", "error": "FloatingPointError: nan"})  # fmt: skip
    with (sweep_dir / "results.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def args(tmp_path: Path, name: str = "t2"):
    return parse_args(
        [name, "--sweeps-dir", str(tmp_path / "sw"), "--output-dir", str(tmp_path / "out")]
    )


def test_table_numbers_welch_and_missing_cells(tmp_path: Path) -> None:
    from scnet.cli.report import load_results
    from scnet.sweep import spec as spec_mod

    make(tmp_path)
    spec = spec_mod.load("t2", tmp_path / "sw")
    table = summarize(load_results(spec, tmp_path / "out" / "sweeps" / "t2"), paper.table2)
    row = table[(table["depth"] == 20) & (table["sc"] == "on")].iloc[0]
    on, off = [a * 100 for a in ACC[(20, "on")]], [a * 100 for a in ACC[(20, "off")]]
    ref = stats.ttest_ind(on, off, equal_var=False)
    assert row["n"] == 3 and row["mean"] == pytest.approx(92.0)
    assert row["std"] == pytest.approx(0.5)
    assert row["welch_t"] == pytest.approx(ref.statistic) and row["welch_p"] == pytest.approx(
        ref.pvalue
    )
    assert row["paper"] == 91.81 and row["delta"] == pytest.approx(92.0 - 91.81)
    base = table[(table["depth"] == 20) & (table["sc"] == "off")].iloc[0]
    assert base["paper"] == 91.25 and pd.isna(base["welch_t"])  # baselines have no test
    missing = table[(table["depth"] == 56) & (table["sc"] == "off")].iloc[0]
    assert missing["n"] == 0 and pd.isna(missing["mean"]) and missing["failed"] == 1
    sc56 = table[(table["depth"] == 56) & (table["sc"] == "on")].iloc[0]
    assert sc56["n"] == 2 and pd.isna(sc56["welch_t"])  # no baseline values: no invented test


def test_report_writes_md_csv_tex_png(tmp_path: Path) -> None:
    make(tmp_path)
    paths = run(args(tmp_path))
    names = sorted(p.name for p in paths)
    assert names == ["accuracy_vs_depth.png", "fig8_sc_weight.png", "table2.csv", "table2.md",
                     "table2.tex"]  # fmt: skip
    md = (tmp_path / "out" / "reports" / "t2" / "table2.md").read_text()
    assert "| 20 | on | 92.00 ± 0.50 | 3 | 0 | 91.81 | +0.19 |" in md
    assert "| 56 | off | missing | 0 | 1 | 93.03 | – | – | – |" in md
    tex = (tmp_path / "out" / "reports" / "t2" / "table2.tex").read_text()
    assert r"92.00 $\pm$ 0.50" in tex and r"\begin{tabular}" in tex
    assert all(p.stat().st_size > 0 for p in paths)


def test_report_bad_inputs_overwrite_nothing(tmp_path: Path) -> None:
    make(tmp_path)
    run(args(tmp_path))
    md = tmp_path / "out" / "reports" / "t2" / "table2.md"
    before = md.read_text()
    with pytest.raises(ConfigError, match="unknown sweep 'nope': choose one of t2"):
        run(args(tmp_path, "nope"))
    (tmp_path / "out" / "sweeps" / "t2" / "results.csv").write_text("trial,state\n0,FAIL\n")
    with pytest.raises(ConfigError, match="no completed trial"):
        run(args(tmp_path))
    (tmp_path / "out" / "sweeps" / "t2" / "results.csv").unlink()
    with pytest.raises(ConfigError, match="run scnet-sweep t2 first"):
        run(args(tmp_path))
    (tmp_path / "sw" / "t2.yaml").write_text(SWEEP.replace("table2", "tabel2"))
    with pytest.raises(ConfigError, match="report.table='tabel2' is unknown"):
        run(args(tmp_path))
    assert md.read_text() == before
