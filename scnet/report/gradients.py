"""Gradient-flow figures from run dirs' ``grad_stats.csv`` / ``grad_nodes.csv``.

* ``fig5_fcn_gradients``: paper Fig. 5, mean |weight gradient| per layer (log scale),
  FCN vs SCFCN (mean over every recorded step, and over seeds).
* ``fig6_resnet_gradients``: paper Fig. 6, signed mean weight gradient per layer, ResNet vs
  SCResNet, one row per depth, columns = early / middle / late thirds of the recorded epochs
  (the paper's "epoch 1", "epoch 100", "epochs 1–200"); stages shaded from the ``stage``
  column, which the callback takes from ``CifarResNet.stage_of_tap()``.
* ``seed002_gradients``: seed 002's heat maps, per-node tap output (pre-activation) and
  |output gradient| per layer, plain vs residual, from ``grad_nodes.csv`` (``per_node``).

Every builder has a direct form taking ``{label: run_dir}`` (no sweep needed) and a
registered form taking a sweep's results table (its ``run_dir`` column). Labels come from
each run's ``.hydra/config.yaml`` (sc.enabled, depth, backbone.residual), so they do not
depend on which keys a sweep varied. matplotlib is imported lazily: importing this module
for registration stays cheap.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from scnet.report.figures import STYLES
from scnet.report.registry import register_figure

STATS = "grad_stats.csv"
NODES = "grad_nodes.csv"
#: Axis labels for grad_stats.csv columns (W: a tap's weight, Z: its output, J: the loss).
COLUMN_LABELS = {
    "w_grad_abs_mean": "mean |∂J/∂W| per weight", "w_grad_mean": "mean ∂J/∂W (signed)",
    "w_grad_norm": "‖∂J/∂W‖", "out_grad_abs_mean": "mean |∂J/∂Z| per unit",
    "out_grad_mean": "mean ∂J/∂Z (signed)", "out_grad_norm": "‖∂J/∂Z‖",
}  # fmt: skip


def column_label(column: str) -> str:
    """A grad_stats.csv column as an axis label (the column name when unknown)."""
    return COLUMN_LABELS.get(column, column)


# ----------------------------------------------------------------------------- loading
def load_grad_stats(run_dir: str | Path) -> pd.DataFrame:
    """The run's ``grad_stats.csv``; FileNotFoundError naming the path if absent."""
    path = Path(run_dir) / STATS
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run with grad_stats.enabled=true")
    return pd.read_csv(path)


def run_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / ".hydra" / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def layer_profile(
    frames: Sequence[pd.DataFrame], column: str, epochs: tuple[int, int] | None = None
) -> pd.Series:
    """Mean of ``column`` per tap over the recorded steps (in ``epochs`` [lo, hi]) and runs."""
    parts = []
    for df in frames:
        if epochs is not None:
            df = df[(df["epoch"] >= epochs[0]) & (df["epoch"] <= epochs[1])]
        parts.append(df.groupby("tap")[column].mean())
    return pd.concat(parts, axis=1).mean(axis=1)


def _runs_from_results(results: pd.DataFrame, sweep_dir: Path) -> list[Path]:
    dirs = []
    for value in results.get("run_dir", pd.Series(dtype=str)).dropna():
        path = Path(value)
        path = path if path.is_absolute() else sweep_dir / path
        if (path / STATS).is_file():
            dirs.append(path)
    return dirs


def _sc_label(cfg: Mapping[str, Any], plain: str, sc: str) -> str:
    return sc if (cfg.get("sc") or {}).get("enabled") else plain


def wrap_title(title: str, fig_width_in: float, fontsize: float) -> str:
    """``title`` with each line wrapped to the figure's width (long command lines were clipped).

    Width in characters from the width and font size (an average glyph is ~0.6 em, 5% margin);
    words are never split, so overrides such as ``grad_stats.enabled=true`` stay whole.
    """
    width = max(int(0.95 * fig_width_in * 72 / (fontsize * 0.6)), 20)
    lines = [textwrap.fill(line, width, break_long_words=False) for line in title.splitlines()]
    return "\n".join(lines)


def _integer_ticks() -> Any:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ----------------------------------------------------------------------------- Fig. 5
def plot_fcn_gradients(
    runs: Mapping[str, Sequence[Path]], out: Path, column: str = "w_grad_abs_mean",
    title: str = "Fig. 5: gradient per layer",
) -> Path:  # fmt: skip
    """One curve per label (runs of a label averaged), log-scale y, layer index on x."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, dirs in runs.items():
        profile = layer_profile([load_grad_stats(d) for d in dirs], column)
        marker, line = STYLES[len(ax.lines) % len(STYLES)]
        ax.plot(profile.index, profile.to_numpy(), marker=marker, linestyle=line,
                label=f"{label} (n={len(dirs)})")  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = input side)")
    ax.xaxis.set_major_locator(_integer_ticks())
    ax.set_ylabel(column_label(column) + " (log scale)")
    # An axes title is centred on the axes, right of the figure's centre (y label): 80% width.
    ax.set_title(wrap_title(title, 0.8 * fig.get_figwidth(), 10), fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, out)


@register_figure("fig5_fcn_gradients")
def fig5_fcn_gradients(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    groups: dict[str, list[Path]] = {}
    for d in _runs_from_results(results, sweep_dir):
        groups.setdefault(_sc_label(run_config(d), "FCN", "SCFCN"), []).append(d)
    if not groups:
        return []
    return [plot_fcn_gradients(dict(sorted(groups.items())), out_dir / "fig5_fcn_gradients.png")]


# ----------------------------------------------------------------------------- Fig. 6
def epoch_windows(epochs: Sequence[int]) -> list[tuple[str, tuple[int, int]]]:
    """Early (first epoch), middle (the middle epoch), late (all epochs), as in Fig. 6 a–c."""
    lo, hi = min(epochs), max(epochs)
    mid = sorted(epochs)[len(epochs) // 2]
    return [
        (f"epoch {lo + 1}", (lo, lo)),
        (f"epoch {mid + 1}", (mid, mid)),
        (f"epochs {lo + 1}-{hi + 1}", (lo, hi)),
    ]


def plot_resnet_gradients(
    runs: Mapping[tuple[int, str], Sequence[Path]], out: Path, column: str = "w_grad_mean"
) -> Path:
    """Rows: depths; columns: early/middle/late; ResNet vs SCResNet; stages shaded."""
    plt = _plt()
    depths = sorted({depth for depth, _ in runs})
    fig, axes = plt.subplots(len(depths), 3, figsize=(12, 3 * len(depths)), squeeze=False)
    for row, depth in enumerate(depths):
        frames = {
            lab: [load_grad_stats(d) for d in ds] for (dp, lab), ds in runs.items() if dp == depth
        }
        all_epochs = sorted({int(e) for fs in frames.values() for f in fs for e in f["epoch"]})
        first = next(iter(frames.values()))[0]
        stages = first.groupby("tap")["stage"].first()
        for col, (name, window) in enumerate(epoch_windows(all_epochs)):
            ax = axes[row][col]
            _shade_stages(ax, stages)
            for label, fs in sorted(frames.items()):
                profile = layer_profile(fs, column, window)
                marker, line = STYLES[len(ax.lines) % len(STYLES)]
                ax.plot(profile.index, profile.to_numpy(), marker=marker, markersize=3,
                        linestyle=line, label=f"{label}{depth}")  # fmt: skip
            ax.axhline(0.0, color="k", lw=0.5)
            ax.set_title(f"depth {depth}, {name}", fontsize=9)
            ax.set_xlabel("layer (conv tap, 1 = stem)")
            ax.xaxis.set_major_locator(_integer_ticks())
            ax.set_ylabel(column_label(column))
            ax.legend(fontsize=7)
    title = "Fig. 6: mean gradient per layer (shaded: stages 1-3)"
    fig.suptitle(wrap_title(title, fig.get_figwidth(), 10), fontsize=10)
    return _save(fig, out)


def _shade_stages(ax: Any, stages: pd.Series) -> None:
    for stage, colour in zip(
        sorted(stages.unique()), ("#eeeeee", "#dde8f5", "#f5e6dd"), strict=False
    ):
        taps = stages.index[stages == stage]
        ax.axvspan(taps.min() - 0.5, taps.max() + 0.5, color=colour, zorder=0)


@register_figure("fig6_resnet_gradients")
def fig6_resnet_gradients(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    groups: dict[tuple[int, str], list[Path]] = {}
    for d in _runs_from_results(results, sweep_dir):
        cfg = run_config(d)
        groups.setdefault(
            (int(cfg.get("depth", 0)), _sc_label(cfg, "ResNet", "SCResNet")), []
        ).append(d)
    if not groups:
        return []
    return [plot_resnet_gradients(groups, out_dir / "fig6_resnet_gradients.png")]


# ----------------------------------------------------------------------------- seed 002
def node_matrix(run_dir: Path, column: str) -> np.ndarray:
    """(taps × nodes) mean over recorded steps of ``column`` (``act`` or |``grad``|)."""
    path = Path(run_dir) / NODES
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run with grad_stats.per_node=true")
    df = pd.read_csv(path)
    values = df[column].abs() if column == "grad" else df[column]
    table = df.assign(v=values).groupby(["tap", "node"])["v"].mean().unstack("node")
    return table.to_numpy()


def plot_node_heatmaps(
    runs: Mapping[str, Path], out: Path, skip_last: bool = True, title: str | None = None
) -> Path:
    """Seed 002 Fig. 3/4: per-node activation (top) and |gradient| (bottom, log colour)."""
    plt = _plt()
    from matplotlib.colors import LogNorm

    fig, axes = plt.subplots(2, len(runs), figsize=(4.5 * len(runs), 6), squeeze=False)
    for col, (label, run_dir) in enumerate(runs.items()):
        act, grad = node_matrix(run_dir, "act"), node_matrix(run_dir, "grad")
        if skip_last:  # the output layer has another width; the seed shows hidden layers
            act, grad = act[:-1], grad[:-1]
        im = axes[0][col].imshow(act.T, aspect="auto", cmap="coolwarm", origin="lower")
        fig.colorbar(im, ax=axes[0][col])
        axes[0][col].set_title(f"{label}: tap output (pre-activation)", fontsize=9)
        positive = np.where(grad > 0, grad, np.nan)
        im = axes[1][col].imshow(
            positive.T, aspect="auto", origin="lower", cmap="viridis",
            norm=LogNorm(vmin=np.nanmin(positive), vmax=np.nanmax(positive)),
        )  # fmt: skip
        fig.colorbar(im, ax=axes[1][col])
        axes[1][col].set_title(f"{label}: |∂J/∂Z| per node", fontsize=9)
        for ax in axes[:, col]:
            ax.set_xlabel("layer")
            ax.set_ylabel("node")
    if title:
        fig.suptitle(wrap_title(title, fig.get_figwidth(), 8), fontsize=8)
    return _save(fig, out)


@register_figure("seed002_gradients")
def seed002_gradients(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    runs: dict[str, Path] = {}
    for d in _runs_from_results(results, sweep_dir):
        if not (d / NODES).is_file():
            continue
        residual = (run_config(d).get("backbone") or {}).get("residual")
        runs.setdefault("residual" if residual else "plain", d)  # first seed of each
    if not runs:
        return []
    return [plot_node_heatmaps(dict(sorted(runs.items())), out_dir / "seed002_gradients.png")]


def _save(fig: Any, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return out
