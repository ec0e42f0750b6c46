"""scnet-report on synthetic results.csv files: numbers, missing cells, files, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import torch
from scipy import stats

from scnet.cli.report import parse_args, run
from scnet.errors import ConfigError
from scnet.report import paper
from scnet.report.tables import summarize
from scnet.sc import ShortCircuit

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
    assert "| 56 | off | failed | 0 | 1 | 93.03 | – | – | – |" in md  # its one trial failed
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


# ----------------------------------------------------------------------------- SC vs baseline
def test_compare_matches_scipy_and_the_textbook_formulas() -> None:
    from scnet.report.tables import compare

    a, b = [92.0, 91.5, 92.5, 93.0], [90.0, 91.0, 89.5]
    out = compare(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)  # scipy's Welch CI for the mean difference
    assert out["welch_t"] == pytest.approx(ref.statistic)
    assert out["welch_p"] == pytest.approx(ref.pvalue)
    assert out["diff"] == pytest.approx(sum(a) / 4 - sum(b) / 3)
    assert (out["diff_lo"], out["diff_hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    # Hedges' g by hand: pooled sd, then the small-sample correction J = 1 - 3 / (4 * 7 - 9).
    va, vb = pd.Series(a).var(), pd.Series(b).var()
    pooled = ((3 * va + 2 * vb) / 5) ** 0.5
    assert out["hedges_g"] == pytest.approx(out["diff"] / pooled * (1 - 3 / 19))
    assert set(compare([1.0], b).values()) == {None}  # n = 1: no test, nothing invented
    exact = compare([2.0, 2.0], [1.0, 1.0])  # constant sides: exact difference, no g
    assert (exact["diff_lo"], exact["diff_hi"], exact["hedges_g"]) == (1.0, 1.0, None)


def test_table_shows_difference_ci_and_effect_size(tmp_path: Path) -> None:
    make(tmp_path)
    run(args(tmp_path))
    md = (tmp_path / "out" / "reports" / "t2" / "table2.md").read_text()
    assert "Δ vs baseline [95 % CI]" in md and "Hedges g" in md
    row = next(line for line in md.splitlines() if line.startswith("| 20 | on |"))
    on, off = [a * 100 for a in ACC[(20, "on")]], [a * 100 for a in ACC[(20, "off")]]
    lo, hi = stats.ttest_ind(on, off, equal_var=False).confidence_interval(0.95)
    assert f"+1.50 [{lo:+.2f}, {hi:+.2f}]" in row


def test_latex_is_booktabs_with_numbers_right_aligned(tmp_path: Path) -> None:
    make(tmp_path)
    run(args(tmp_path))
    tex = (tmp_path / "out" / "reports" / "t2" / "table2.tex").read_text()
    lines = tex.splitlines()
    spec = next(x for x in lines if x.startswith(r"\begin{tabular}"))
    # depth is numeric (right), sc is text (left), every statistic column right-aligned
    assert spec == r"\begin{tabular}{rl" + "r" * 9 + "}"
    assert [x for x in lines if x in (r"\toprule", r"\midrule", r"\bottomrule")] == [
        r"\toprule", r"\midrule", r"\bottomrule"]  # fmt: skip
    assert "booktabs" in lines[0] and r"\hline" not in tex
    assert "±" not in tex and "Δ" not in tex and "−" not in tex  # all LaTeX-escaped


def _sc_model(weight: float | None) -> tuple[torch.nn.Module, list]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*(torch.nn.Linear(6, 6) for _ in range(4)))
    if weight is None:
        return model, []
    return model, [ShortCircuit(list(model), [(4, 2), (4, 1)], weight=weight).attach()]


def test_weight_zero_is_the_plain_backbone() -> None:
    """sc.weight=0 is sc_sensitivity's baseline: every gradient equals sc=off's, bit for bit."""
    x = torch.randn(5, 6)
    grads = []
    for weight in (None, 0.0, 0.2):
        model, _ = _sc_model(weight)
        model(x).square().sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(grads[0], grads[1], strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(grads[0], grads[2], strict=True))


def test_weight_zero_row_is_the_baseline_of_each_weight() -> None:
    rows = [{"state": "COMPLETE", "depth": 20, "sc.weight": w, "test/acc": acc}
            for w, accs in ((0.0, (0.90, 0.91)), (0.2, (0.93, 0.94))) for acc in accs]  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["depth", "sc.weight"], "metric": "test/acc"})
    table = summarize(results).set_index("sc.weight")
    ref = stats.ttest_ind([93.0, 94.0], [90.0, 91.0], equal_var=False)
    assert table.loc[0.2, "welch_p"] == pytest.approx(ref.pvalue)
    assert table.loc[0.2, "diff"] == pytest.approx(3.0)
    assert pd.isna(table.loc[0.0, "welch_p"])  # the baseline is not tested against itself


def test_fig7_first_blob_places_the_papers_connections() -> None:
    """SCResNet-20 enhances layers 2 and 4 of the first blob (paper, Section 5.3)."""
    from scnet.cli.common import compose_config
    from scnet.models import tap_shapes
    from scnet.models.resnet import CifarResNet
    from scnet.sc import plan
    from scnet.sweep import spec as spec_mod

    spec = spec_mod.load("fig7_first_blob")
    assert spec.grid["sc"] == ["first_blob", "off"]
    for depth in (20, 56):
        sc = compose_config([*spec.base, f"depth={depth}", "sc=first_blob"]).sc
        model = CifarResNet(depth=depth, num_classes=10)
        shapes = tap_shapes(model, torch.randn(2, 3, 32, 32))
        assert plan(shapes, k=sc.k, strategy=sc.strategy, rear=sc.rear) == [(5, 2), (5, 4)]
        assert model.stage_of_tap()[4] == 1  # tap 5 sits in the first stage
        single = plan(shapes, k=2, strategy="single")  # fig7_connections' rear: the last tap
        assert {model.stage_of_tap()[r - 1] for r, _ in single} == {3}


# ----------------------------------------------------------------------------- --runs DIR...
def write_run_dir(path: Path, depth: int, sc: bool, weight: float, seed: int, acc: float | None,
                  status: str | None = "completed") -> Path:  # fmt: skip
    """A run dir as scnet-run writes it: .hydra/config.yaml, result.json, metrics.csv."""
    import json

    import yaml

    (path / ".hydra").mkdir(parents=True)
    config = {"seed": seed, "depth": depth, "name": f"resnet{depth}-digits-{seed}",
              "backbone": {"name": "resnet", "depth": depth}, "data": {"name": "digits"},
              "sc": {"enabled": sc, "weight": weight, "tag": "sc" if sc else "plain"}}  # fmt: skip
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    if status is not None:
        metrics = {"test/acc": acc} if acc is not None else {}
        (path / "result.json").write_text(json.dumps(
            {"status": status, "metrics": metrics, "seed": seed, "duration_s": 3.0}))  # fmt: skip
    epochs = range(3)
    pd.DataFrame({"epoch": [e for e in epochs for _ in (0, 1)],
                  "val/acc": [v for e in epochs for v in (0.5 + 0.1 * e + 0.01 * seed, None)],
                  "train/loss": [v for e in epochs for v in (None, 2.0 - 0.5 * e)]}).to_csv(
        path / "metrics.csv", index=False)  # fmt: skip
    return path


def make_runs(tmp_path: Path) -> list[Path]:
    """depth 20: SC w=0.1 and w=0.5 vs plain (whose config says w=0.2), 3 seeds; depth 56 plain
    has one failed run and one that never finished."""
    runs, root = [], tmp_path / "runs"
    for seed in range(3):
        for sc, weight, acc in ((True, 0.1, 0.92), (True, 0.5, 0.95), (False, 0.2, 0.90)):
            runs.append(write_run_dir(root / f"d20-{sc}-{weight}-{seed}", 20, sc, weight, seed,
                                      acc + 0.01 * seed))  # fmt: skip
    runs.append(write_run_dir(root / "d56-sc-0", 56, True, 0.1, 0, 0.93))
    runs.append(write_run_dir(root / "d56-plain-0", 56, False, 0.2, 0, None, status="failed"))
    runs.append(write_run_dir(root / "d56-plain-1", 56, False, 0.2, 1, None, status=None))
    return runs


def test_runs_builds_the_same_views_from_run_dirs(tmp_path: Path) -> None:
    runs = make_runs(tmp_path)
    out = tmp_path / "out"
    paths = run(parse_args(["--runs", *map(str, runs), "--output-dir", str(out)]))
    assert sorted(p.name for p in paths) == ["accuracy_vs_depth.png", "curves.png",
                                             "summary.csv", "summary.md", "summary.tex"]  # fmt: skip
    assert all(p.parent == out / "reports" / "runs" for p in paths)
    table = pd.read_csv(out / "reports" / "runs" / "summary.csv", dtype={"sc.weight": str})
    # keys: what differs (depth once, not backbone.depth too), sc on/off, the SC weight of SC runs
    assert list(table.columns[:3]) == ["depth", "sc", "sc.weight"]
    row = table[(table["depth"] == 20) & (table["sc.weight"] == "0.5")].iloc[0]
    on = [95.0 + s for s in range(3)]
    off = [90.0 + s for s in range(3)]
    ref = stats.ttest_ind(on, off, equal_var=False)
    assert row["n"] == 3 and row["mean"] == pytest.approx(96.0)
    assert row["welch_p"] == pytest.approx(ref.pvalue) and row["diff"] == pytest.approx(5.0)
    plain56 = table[(table["depth"] == 56) & (table["sc"] == "off")].iloc[0]
    assert plain56["n"] == 0 and plain56["failed"] == 1  # the unfinished run is neither
    md = (out / "reports" / "runs" / "summary.md").read_text()
    assert "| 20 | off | – | 91.00 ± 1.00 | 3 | 0 |" in md  # plain runs: weight not applicable
    assert all(p.stat().st_size > 10_000 for p in paths if p.suffix == ".png")
    # any registered builder works on run dirs too
    only = run(parse_args(["--runs", *map(str, runs), "--output-dir", str(out), "--report", "f8",
                           "--table", "summary", "--figures", "fig8_sc_weight"]))  # fmt: skip
    assert sorted(p.name for p in only) == ["fig8_sc_weight.png", "summary.csv", "summary.md",
                                            "summary.tex"]  # fmt: skip


def test_runs_bad_inputs_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    runs = make_runs(tmp_path)
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty is not a run dir \(no .hydra/config.yaml\)"):
        run(parse_args(["--runs", str(runs[0]), str(tmp_path / "empty"), "--output-dir",
                        str(out)]))  # fmt: skip
    with pytest.raises(ConfigError, match="--metric test/loss: no run has it"):
        run(parse_args(["--runs", str(runs[0]), "--metric", "test/loss", "--output-dir",
                        str(out)]))  # fmt: skip
    (runs[0] / "result.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        run(parse_args(["--runs", str(runs[0]), "--output-dir", str(out)]))
    with pytest.raises(ConfigError, match="--figures 'fig99' is unknown: choose from"):
        run(parse_args(["--runs", str(runs[1]), "--figures", "fig99", "--output-dir", str(out)]))
    assert not (out / "reports" / "runs").exists()
    for argv in (["t2", "--runs", str(runs[1])], [], ["t2", "--metric", "val/acc"],
                 ["t2", "--table", "summary"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            parse_args(argv)
        assert exit_.value.code == 2


def test_every_shipped_sweep_names_registered_builders() -> None:
    """A sweep whose report names an unregistered table/figure would fail only at report time."""
    import importlib

    from scnet.cli.report import BUILDER_MODULES
    from scnet.report.registry import FIGURES, TABLES
    from scnet.sweep import spec as spec_mod

    for module in BUILDER_MODULES:
        importlib.import_module(module)
    for name in spec_mod.available():
        report = spec_mod.load(name).report
        assert report["table"] is None or report["table"] in TABLES, (name, report["table"])
        assert set(report["figures"]) <= set(FIGURES), (name, report["figures"])


def test_partial_results_with_unclaimed_trials_keep_integer_keys(tmp_path: Path) -> None:
    """A running sweep's results.csv has WAITING rows without parameters: they turned `depth`
    into floats and added a `depth=nan` setting (duplicate 20 / 20.0 / nan panels in fig4)."""
    from scnet.cli.report import load_results
    from scnet.sweep import spec as spec_mod

    root = make(tmp_path)
    path = root / "out" / "sweeps" / "t2" / "results.csv"
    with path.open("a", newline="") as fh:
        fh.write("99,WAITING,,,,,,,\n")
    results = load_results(spec_mod.load("t2", root / "sw"), path.parent)
    assert results["depth"].dtype.kind == "i" and sorted(set(results["depth"])) == [20, 56]
    assert "WAITING" not in set(results["state"])


def test_a_failed_trial_with_a_null_parameter_is_kept(tmp_path: Path) -> None:
    """`backbone.max_norm: null` is an empty CSV cell too; such a failed trial is a real
    configuration (seed 003's leaky-ReLU row) and must count as failed, not vanish."""
    from scnet.cli.report import load_results
    from scnet.sweep import spec as spec_mod

    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "mn.yaml").write_text(
        "metric: test/acc\ndirection: maximize\nsampler: grid\nseeds: [0]\n"
        "grid:\n  backbone.max_norm: [null, 1.0]\nreport:\n  table: summary\n"
    )
    sweep_dir = tmp_path / "out" / "sweeps" / "mn"
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "results.csv").write_text(
        "trial,state,seed,backbone.max_norm,test/acc,duration_s,run_dir,error\n"
        "0,FAIL,0,,,1.0,,FloatingPointError: nan\n"
        "1,COMPLETE,0,1.0,0.5,1.0,,\n"
        "2,WAITING,,,,,,\n"
    )
    results = load_results(spec_mod.load("mn", tmp_path / "sw"), sweep_dir)
    assert list(results["state"]) == ["FAIL", "COMPLETE"]


@pytest.mark.parametrize(
    ("value", "on", "text"),
    [("on", True, "SC on"), ("first_blob", True, "SC first_blob"), ("single", True, "SC single"),
     ("off", False, "baseline (SC off)"), ("False", False, "baseline (SC off)")],
)  # fmt: skip
def test_named_sc_placements_are_sc_on_and_compare_with_sc_off(
    value: str, on: bool, text: str
) -> None:
    """A grid over the sc group (fig7_connections_mnist1d: on / single / first_blob / off)
    labels each placement by name and tests it against the sc=off cell."""
    from scnet.report import paper
    from scnet.report.figures import label
    from scnet.report.tables import baseline_candidates

    config = {"sc": value, "depth": 56}
    assert paper.sc_enabled(config) is on
    assert label({"sc": value}) == text
    assert baseline_candidates(config, ["sc", "depth"]) == ([{"sc": "off", "depth": 56}] if on
                                                             else [])  # fmt: skip


def test_tiny_p_values_read_as_below_a_thousandth() -> None:
    from scnet.report.tables import p_value

    assert p_value(1.3e-8) == "< 0.001" and p_value(0.0123) == "0.012" and p_value(None) == "–"
