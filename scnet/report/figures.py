"""Figures in the paper's style (PNG, matplotlib Agg): accuracy vs depth, one line per setting.

Fig. 4 reads per-epoch training loss from each trial's ``metrics.csv``; the others use
results.csv. Configurations without completed trials are left out of the lines and listed
under the plot ("missing: ..."); nothing is interpolated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from scnet.report.registry import register_figure
from scnet.report.tables import scale, summarize


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display needed (servers, CI)
    import matplotlib.pyplot as plt

    return plt


def _label(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items()) or "all"


def accuracy_vs(results: pd.DataFrame, out: Path, title: str, x_key: str = "depth") -> list[Path]:
    """One error-bar line per setting of the non-``x_key`` keys (mean ± std over seeds)."""
    plt = _pyplot()
    metric = results.attrs["metric"]
    keys = list(results.attrs.get("keys", []))
    if x_key not in keys:
        x_key = keys[0] if keys else x_key
    hue = [k for k in keys if k != x_key]
    table = summarize(results)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    missing = table[table["n"] == 0]
    groups = table.groupby(hue, sort=False) if hue else [((), table)]
    for setting, part in groups:
        part = part[part["n"] > 0]
        if part.empty:
            continue
        part = part.assign(_x=pd.to_numeric(part[x_key], errors="coerce")).sort_values("_x")
        setting = setting if isinstance(setting, tuple) else (setting,)
        ax.errorbar(part[x_key].astype(str) if part["_x"].isna().any() else part["_x"],
                    part["mean"], yerr=part["std"].fillna(0.0), marker="o", capsize=3,
                    label=_label(dict(zip(hue, setting, strict=True))))  # fmt: skip
    ax.set_xlabel(x_key)
    ax.set_ylabel(f"{metric}{' (%)' if scale(metric) == 100.0 else ''}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if not missing.empty:
        cells = "; ".join(_label({k: r[k] for k in keys}) for _, r in missing.iterrows())
        fig.text(0.01, 0.01, f"missing: {cells}"[:300], fontsize=6, wrap=True)
    fig.tight_layout(rect=(0, 0.05 if not missing.empty else 0, 1, 1))
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return [out]


@register_figure("fig7_connections")
def fig7(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 7: single vs multiple SC connections across depths."""
    return accuracy_vs(
        results, out_dir / "fig7_connections.png", "Single vs multiple SC connections"
    )


@register_figure("fig8_sc_weight")
def fig8(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 8: SC weight 0.1 / 0.2 / 0.5 across depths."""
    return accuracy_vs(results, out_dir / "fig8_sc_weight.png", "SC weight")


@register_figure("fig9_batch_size")
def fig9(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 9: batch size across depths."""
    return accuracy_vs(results, out_dir / "fig9_batch_size.png", "Batch size")


@register_figure("accuracy_vs_depth")
def accuracy_vs_depth(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Any grid sweep: the metric vs depth (or the first key), one line per other setting."""
    return accuracy_vs(results, out_dir / "accuracy_vs_depth.png", results.attrs.get("sweep", ""))


def loss_curve(run_dir: Path, column: str = "train/loss") -> pd.Series | None:
    """Per-epoch values of ``column`` from a run's metrics.csv (None when absent)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if column not in frame or "epoch" not in frame:
        return None
    rows = frame[["epoch", column]].dropna()
    return rows.groupby("epoch")[column].mean() if not rows.empty else None


@register_figure("fig4_convergence")
def fig4(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 4: training loss per epoch, one line per configuration (mean over seeds)."""
    plt = _pyplot()
    keys = list(results.attrs.get("keys", []))
    done = results[results["state"] == "COMPLETE"] if "state" in results else results
    curves: dict[str, list[pd.Series]] = {}
    for _, row in done.iterrows():
        run_dir = Path(str(row.get("run_dir", "")))
        run_dir = run_dir if run_dir.is_absolute() else sweep_dir / run_dir
        curve = loss_curve(run_dir)
        if curve is not None:
            curves.setdefault(_label({k: row[k] for k in keys}), []).append(curve)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for label, series in sorted(curves.items()):
        mean = pd.concat(series, axis=1).mean(axis=1)
        ax.plot(mean.index + 1, mean.values, label=f"{label} (n={len(series)})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("Convergence (training loss)")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no completed runs with metrics.csv", ha="center", transform=ax.transAxes)
    out = out_dir / "fig4_convergence.png"
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return [out]
