"""Gradient figures: long titles (command lines) are wrapped to fit inside the figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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
