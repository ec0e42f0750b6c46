"""Gradient figures: long titles (command lines) are wrapped to fit inside the figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scnet.report import gradients

LONG = ("Fig. 5 on digits: 5-layer sigmoid FCN, SGD lr 0.1, 10 epochs\nscnet-run "
        "experiment=fig5_fcn data=digits sc={on,off} trainer.max_epochs=10 "
        "grad_stats.enabled=true grad_stats.batches_per_epoch=5 logger.wandb.mode=disabled")  # fmt: skip


def test_wrap_title_keeps_words_and_lines() -> None:
    text = gradients.wrap_title(LONG, fig_width_in=5, fontsize=8)
    lines = text.splitlines()
    assert len(lines) > 2 and all(len(line) <= 72 for line in lines)
    assert text.split() == LONG.split()  # nothing lost, overrides not split
    assert lines[0].startswith("Fig. 5") and lines[1].startswith("scnet-run")


def test_fcn_figure_title_fits_in_the_figure(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"step": [0, 0, 0], "epoch": [0, 0, 0], "tap": [1, 2, 3],
                  "w_grad_abs_mean": [1e-4, 1e-3, 1e-2]}).to_csv(run / "grad_stats.csv")  # fmt: skip
    plt = gradients._plt()
    kept = {}
    monkeypatch.setattr(plt, "close", lambda fig: kept.setdefault("fig", fig))
    gradients.plot_fcn_gradients({"FCN": [run]}, tmp_path / "f.png", title=LONG)
    fig = kept["fig"]
    renderer = fig.canvas.get_renderer()
    box = fig.axes[0].title.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width + 0.5, (box, fig.bbox)


def test_heatmap_suptitle_fits_in_the_figure(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    rows = [{"step": 0, "epoch": 0, "tap": t, "node": n, "act": 0.1 * n, "grad": 1e-3 * (t + n + 1)}
            for t in (1, 2, 3) for n in range(4)]  # fmt: skip
    pd.DataFrame(rows).to_csv(run / "grad_nodes.csv", index=False)
    plt = gradients._plt()
    kept = {}
    monkeypatch.setattr(plt, "close", lambda fig: kept.setdefault("fig", fig))
    gradients.plot_node_heatmaps(
        {"plain": run, "residual": run}, tmp_path / "h.png", title=LONG * 2
    )
    fig = kept["fig"]
    box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width + 0.5, (box, fig.bbox)


# ----------------------------------------------------------------------------- readable figures
def _keep_figures(monkeypatch) -> list:
    from scnet.report import figures

    plt = figures._pyplot()
    kept: list = []
    monkeypatch.setattr(plt, "close", kept.append)
    return kept


def _styles(ax) -> list[tuple[str, str]]:
    return [(str(line.get_marker()), str(line.get_linestyle())) for line in ax.lines
            if line.get_label() and not line.get_label().startswith("_")]  # fmt: skip


def test_curves_bands_integer_epochs_and_distinct_styles(tmp_path: Path, monkeypatch) -> None:
    from test_report import make_runs  # tests/ is on sys.path (pytest's prepend import mode)

    from scnet.report.figures import curves
    from scnet.report.rundirs import load_runs

    kept = _keep_figures(monkeypatch)
    results = load_runs(make_runs(tmp_path), "test/acc")
    curves(results, tmp_path, tmp_path / "c.png", "Convergence")
    (fig,) = kept
    top = fig.axes[:2]  # depth 20: baseline and two SC weights on one axis
    assert [ax.get_ylabel() for ax in top] == ["validation accuracy (%)",
                                                "training loss (cross-entropy)"]  # fmt: skip
    for ax in top:
        styles = _styles(ax)
        assert len(styles) == 3 and len(set(styles)) == 3  # no line can hide another
        assert len(ax.collections) == 3  # one mean ± std band per line
        assert all(float(t).is_integer() for t in ax.get_xticks())
        baseline = next(line for line in ax.lines if line.get_label().startswith("baseline"))
        assert baseline.get_color() == "black" and baseline.get_linestyle() == "--"
    bottom = fig.axes[2]  # depth 56: the baseline failed, and the figure says so
    assert any("baseline (SC off): failed" in t.get_text() for t in bottom.texts)
    assert len(fig._suptitle.get_text()) < 60


def test_accuracy_vs_depth_draws_failed_and_missing_cells(tmp_path: Path, monkeypatch) -> None:
    from scnet.report.figures import accuracy_vs

    rows = [{"state": "COMPLETE", "depth": d, "sc": sc, "test/acc": acc}
            for d, sc, acc in ((20, "on", 0.9), (20, "on", 0.92), (20, "off", 0.88),
                               (20, "off", 0.89), (56, "on", 0.91))]  # fmt: skip
    rows.append({"state": "FAIL", "depth": 56, "sc": "off", "test/acc": None})
    results = pd.DataFrame(rows)
    expected = [{"depth": d, "sc": sc} for d in (20, 56, 110) for sc in ("on", "off")]
    results.attrs.update({"keys": ["depth", "sc"], "metric": "test/acc", "expected": expected})
    kept = _keep_figures(monkeypatch)
    accuracy_vs(results, tmp_path / "a.png", "SC vs baseline")
    (fig,) = kept
    ax = fig.axes[0]
    notes = sorted(t.get_text() for t in ax.texts)
    assert notes == ["failed", "missing", "missing"]  # 56/off failed; 110 never ran
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 3 and all(line.get_color() == "red" for line in crosses)
    assert ax.get_xlabel() == "depth (layers)" and ax.get_ylabel() == "test accuracy (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["20", "56", "110"]
    assert ax.get_title() == "SC vs baseline"


def test_fig5_title_is_short_and_y_label_is_words(tmp_path: Path, monkeypatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"step": [0, 0, 0], "epoch": [0, 0, 0], "tap": [1, 2, 3],
                  "w_grad_abs_mean": [1e-4, 1e-3, 1e-2]}).to_csv(run / "grad_stats.csv")  # fmt: skip
    kept = _keep_figures(monkeypatch)
    gradients.plot_fcn_gradients({"FCN": [run], "SCFCN": [run]}, tmp_path / "f.png")
    ax = kept[0].axes[0]
    assert "\n" not in ax.get_title() and len(ax.get_title()) < 40
    assert "_" not in ax.get_ylabel() and "∂J/∂W" in ax.get_ylabel()
    assert len(set(_styles(ax))) == 2


def test_condition_figure_labels_the_cap_and_styles_every_line(tmp_path: Path, monkeypatch) -> None:
    from scnet.report.plainnet import condition_per_layer

    rows = []
    for label in ("none", "BN", "LReLU"):
        run_dir = tmp_path / label
        run_dir.mkdir()
        # identical curves: only styles keep them apart
        pd.DataFrame({"epoch": [0] * 3, "layer": [0, 1, 2], "cond": 1.0,
                      "log10_cond": [15.65] * 3}).to_csv(run_dir / "condition.csv", index=False)  # fmt: skip
        rows.append({"backbone.batch_norm": label == "BN", "backbone.beta": 0.7 * (label == "LReLU"),
                     "backbone.max_norm": None, "state": "COMPLETE", "run_dir": str(run_dir)})  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["backbone.batch_norm", "backbone.beta", "backbone.max_norm"],
                          "metric": "test/acc", "expected": []})  # fmt: skip
    kept = _keep_figures(monkeypatch)
    condition_per_layer(results, tmp_path, tmp_path / "out")
    ax = kept[0].axes[0]
    labels = [line.get_label() for line in ax.lines]
    assert any("cap" in x and "singular" in x for x in labels)  # the cap is named in the legend
    assert len(set(_styles(ax))) == 4  # 3 combinations + the cap line, all distinct


def test_weight_axis_draws_the_weight_zero_baseline_across(tmp_path: Path, monkeypatch) -> None:
    from scnet.report.figures import accuracy_vs

    rows = [{"state": "COMPLETE", "sc.weight": w, "test/acc": a}
            for w, accs in ((0.0, (0.80, 0.82)), (0.2, (0.85, 0.86))) for a in accs]  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["sc.weight"], "metric": "test/acc", "expected": []})
    kept = _keep_figures(monkeypatch)
    accuracy_vs(results, tmp_path / "w.png", "SC weight")
    ax = kept[0].axes[0]
    line = next(x for x in ax.lines if x.get_label().startswith("baseline"))
    assert list(line.get_ydata()) == [pytest.approx(81.0)] * 2 and line.get_linestyle() == "--"
    assert ax.get_xlabel() == "SC weight w"


def test_placement_axis_keeps_sweep_order_names_cells_and_draws_sc_off_across(
    tmp_path: Path, monkeypatch
) -> None:
    """fig7_connections_mnist1d: x = the sc option; no line joins named categories."""
    from scnet.report.figures import accuracy_vs

    rows = [{"state": "COMPLETE", "sc": sc, "test/acc": a}
            for sc, accs in (("on", (0.6, 0.62)), ("first_blob", (0.85, 0.87)),
                             ("off", (0.80, 0.82))) for a in accs]  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["sc"], "metric": "test/acc", "expected": []})
    kept = _keep_figures(monkeypatch)
    accuracy_vs(results, tmp_path / "p.png", "SC connections: placement")
    ax = kept[0].axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["SC on", "SC first_blob", "baseline (SC off)"]  # the sweep's order
    base = next(x for x in ax.lines if x.get_label().startswith("baseline"))
    assert list(base.get_ydata()) == [pytest.approx(81.0)] * 2
    bars = next(c for c in ax.containers if c.get_label() == "mean ± std over seeds")
    points = bars.lines[0]
    assert points.get_linestyle() == "None"
    assert list(points.get_ydata()) == pytest.approx([61.0, 86.0, 81.0])


def test_curves_keep_one_style_per_sc_setting_across_panels(tmp_path: Path, monkeypatch) -> None:
    """Before: colours were dealt per panel in sorted order, so where 'SC on' failed (depth
    110) the next setting took its colour, and 'first_blob' was blue in one row and orange in
    the next. Now each setting keeps the sweep's order and one style in every panel."""
    from scnet.report.figures import curves

    grid = ["on", "weight_only", "first_blob", "off"]
    rows = []
    for depth in (20, 110):
        for i, sc in enumerate(grid):
            failed = depth == 110 and sc == "on"
            run = tmp_path / f"d{depth}-{sc}"
            run.mkdir()
            pd.DataFrame({"epoch": [0, 1], "val/acc": [0.5 + i / 10, 0.6 + i / 10],
                          "train/loss": [1.0, 0.5]}).to_csv(run / "metrics.csv", index=False)  # fmt: skip
            rows.append({"state": "FAIL" if failed else "COMPLETE", "depth": depth, "sc": sc,
                         "test/acc": None if failed else 0.9, "run_dir": str(run)})  # fmt: skip
    results = pd.DataFrame(rows)
    expected = [{"depth": d, "sc": sc} for d in (110, 20) for sc in grid]
    results.attrs.update({"keys": ["depth", "sc"], "metric": "test/acc", "expected": expected})
    kept = _keep_figures(monkeypatch)
    curves(results, tmp_path, tmp_path / "c.png", "Convergence")
    (fig,) = kept
    seen: dict[str, tuple] = {}
    for ax in fig.axes:
        named = [x for x in ax.lines if not x.get_label().startswith("_")]
        labels = [x.get_label().split(" (n=")[0] for x in named]
        arms = [f"SC {s}" for s in grid[:3] if ax.get_title() == "depth=20" or s != "on"]
        assert labels == [*arms, "baseline (SC off)"]
        for line, text in zip(named, labels, strict=True):
            style = (line.get_color(), line.get_marker(), line.get_linestyle())
            assert seen.setdefault(text, style) == style, text
    assert len(set(seen.values())) == 4
