"""Figures in the paper's style (PNG, matplotlib Agg), built from a sweep's results table.

* :func:`accuracy_vs`: the metric vs depth (or another key) with mean ± std error bars, one
  line per setting; baselines (SC off, or SC weight 0) drawn as dashed black lines; cells with
  no completed run drawn in the figure as ✗ at the bottom of the axes, labelled ``failed`` or
  ``missing``. Fig. 7/8/9 and ``accuracy_vs_depth`` are this figure.
* :func:`curves`: validation accuracy and training loss vs epoch (from each run's
  ``metrics.csv``), mean ± std bands over seeds, SC and its baseline on one axis, one row of
  axes per setting of the other keys. Fig. 4 (``fig4_convergence``) and ``curves`` are this.

Every line has its own marker and line style (lines never hide each other), titles are short,
axes say what they show and in which unit, and epoch ticks are integers. Nothing is
interpolated: a configuration without completed runs is drawn as missing, not bridged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import cycle
from pathlib import Path
from typing import Any

import pandas as pd

from scnet.report import paper, tables
from scnet.report.registry import register_figure
from scnet.report.tables import (
    MISSING,
    NOT_APPLICABLE,
    _cell,
    is_baseline,
    scale,
    show,
    summarize,
)

#: Marker / line-style pairs cycled over the lines of one axes (colours cycle separately).
STYLES = (("o", "-"), ("s", "--"), ("^", "-."), ("D", ":"), ("v", "-"), ("P", "--"),
          ("X", "-."), ("*", ":"))  # fmt: skip
BASELINE = {"color": "black", "linestyle": "--", "marker": "o", "markerfacecolor": "white"}
#: Axis labels with units for the keys and metrics reports plot.
LABELS = {
    "depth": "depth (layers)", "data.batch_size": "batch size (samples)",
    "sc.weight": "SC weight w", "sc.k": "SC gap k", "sc": "SC placement (sc=…)", "epoch": "epoch",
    "train/loss": "training loss (cross-entropy)", "val/loss": "validation loss (cross-entropy)",
    "test/loss": "test loss (cross-entropy)", "duration_s": "training time (s)",
}  # fmt: skip
#: Keys that say which short circuit a run has (the rest of a configuration is its setting).
SC_KEYS = ("sc", "sc.enabled", "sc.weight", "sc.strategy", "sc.k", "sc.rear", "sc.mode",
           "sc.connections")  # fmt: skip


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display needed (servers, CI)
    import matplotlib.pyplot as plt

    return plt


def axis_label(key: str) -> str:
    """``test/acc`` → ``test accuracy (%)``; known keys with their unit; else the key."""
    if key in LABELS:
        return LABELS[key]
    if key.endswith("acc") or "/acc" in key:
        split = {"test": "test", "val": "validation", "train": "training"}
        stage = split.get(key.split("/")[0], key.split("/")[0])
        return f"{stage} accuracy (%)" if scale(key) == 100.0 else f"{stage} accuracy"
    return key


def _short(key: str) -> str:
    """``backbone.width`` → ``width``; ``backbone.name`` → ``backbone`` (what it names)."""
    if key.endswith(".name"):
        return key.removesuffix(".name")
    return key.removeprefix("backbone.").removeprefix("data.")


def label(config: dict[str, Any]) -> str:
    """A short legend label: ``SC on, strategy=single``, ``baseline (SC off)``, ``depth=20``."""
    parts = []
    for key, value in config.items():
        if key in ("sc", "sc.enabled"):
            if not paper.sc_enabled({key: value}):
                text = "baseline (SC off)"
            elif str(value).lower() in ("on", "true", "1"):
                text = "SC on"
            else:
                text = f"SC {value}"  # a named placement, e.g. sc=first_blob
            parts.insert(0, text)
        elif key == "sc.weight" and _cell(value) == "0.0":
            parts.append("w=0 (= SC off)")
        elif str(value) not in (MISSING, NOT_APPLICABLE):
            parts.append(f"{_short(key.removeprefix('sc.'))}={show(value)}")
    return ", ".join(parts) or "all runs"


def _x_positions(values: list[Any]) -> tuple[list[Any], dict[str, float]]:
    """Distinct x values and their evenly spaced positions: numbers sorted, names (e.g. SC
    placements) in the sweep's own order."""
    distinct = {_cell(v): v for v in values}
    order = list(distinct)
    if all(_as_float(v) is not None for v in distinct.values()):
        order.sort(key=lambda c: _as_float(distinct[c]))
    return [distinct[c] for c in order], {c: float(i) for i, c in enumerate(order)}


def _as_float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _tick(value: Any) -> str:
    number = _as_float(value)
    if number is not None and number.is_integer():
        return str(int(number))
    return str(value)


def accuracy_vs(
    results: pd.DataFrame, out: Path, title: str, x_key: str = "depth",
    panel_key: str | None = None, line: tuple[float, str] | None = None,
) -> list[Path]:  # fmt: skip
    """The metric vs ``x_key`` with mean ± std error bars, one line per other setting.

    ``panel_key``: one axes per value of that key (e.g. one per backbone), lines inside are
    the remaining keys. ``line``: a reference level ``(y, label)`` drawn dotted across every
    axes (e.g. the gradient lab's "trains" line). Lines are dodged sideways a little so their
    error bars stay visible; a configuration without completed trials is a ✗ at the bottom
    labelled ``failed`` (its trials failed) or ``missing`` (none ran).
    """
    plt = _pyplot()
    metric = results.attrs["metric"]
    keys = list(results.attrs.get("keys", []))
    if x_key not in keys:
        x_key = next((k for k in keys if k not in SC_KEYS), keys[0] if keys else x_key)
    panel_key = panel_key if panel_key in keys and panel_key != x_key else None
    hue = [k for k in keys if k not in (x_key, panel_key)]
    table = summarize(results)
    if x_key not in table:  # nothing varies: one point for all runs
        table[x_key] = "all runs"
    xs, pos = _x_positions(list(table[x_key]))
    panels = list(table.groupby(panel_key, sort=False)) if panel_key else [(None, table)]
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols + 1.4, 3.6 * rows + 0.4),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, (value, part) in zip(axes.flat, panels, strict=False):
        _accuracy_axes(ax, part, keys, x_key, hue, pos)
        if x_key in ("sc.weight", "sc") and not hue:
            _baseline_line(ax, part, x_key, keys)
        if line is not None:
            ax.axhline(line[0], color="grey", linestyle=":", linewidth=1.2, label=line[1])
        ticks = [label({x_key: v}) if x_key == "sc" else _tick(v) for v in xs]
        ax.set_xticks(list(pos.values()), ticks)
        ax.set_xlabel(axis_label(x_key))
        ax.set_ylabel(axis_label(metric))
        ax.set_title(f"{_short(panel_key)}={show(value)}" if panel_key else title, fontsize=10)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    if panel_key:
        fig.suptitle(title, fontsize=11)
    return [_save(fig, out, top=1 - 0.4 / fig.get_figheight() if panel_key else 1.0)]


def _accuracy_axes(
    ax: Any, table: pd.DataFrame, keys: list[str], x_key: str, hue: list[str],
    pos: dict[str, float],
) -> None:  # fmt: skip
    groups = list(table.groupby(hue, sort=False, dropna=False)) if hue else [((), table)]
    groups = [(s if isinstance(s, tuple) else (s,), part) for s, part in groups]
    width = 0.2 / max(len(groups), 1)
    styles = _deal_styles(is_baseline({**dict(zip(hue, s, strict=True)), x_key: None}, keys)
                          for s, _ in groups)  # fmt: skip
    absent: list[tuple[float, str]] = []
    for i, (setting, part) in enumerate(groups):
        config = dict(zip(hue, setting, strict=True))
        offset = (i - (len(groups) - 1) / 2) * width
        for _, r in part[part["n"] == 0].iterrows():
            absent.append((pos[_cell(r[x_key])] + offset, tables.absent(r)))
        done = part[part["n"] > 0]
        if done.empty:
            continue
        x = [pos[_cell(v)] + offset for v in done[x_key]]
        order = sorted(range(len(x)), key=x.__getitem__)
        style = styles[i]
        if any(_as_float(v) is None for v in done[x_key]):
            style = {**style, "linestyle": "none"}  # named categories: no line between them
        ax.errorbar([x[j] for j in order], done["mean"].iloc[order],
                    yerr=done["std"].fillna(0.0).iloc[order], capsize=3,
                    label=label(config) if hue else "mean ± std over seeds", **style)  # fmt: skip
    _absent(ax, absent)


def _baseline_line(ax: Any, table: pd.DataFrame, x_key: str, keys: list[str]) -> None:
    """On an SC axis (weight or placement), the baseline (w = 0 or sc=off) as a dashed line
    with its ± std band across, so every SC setting reads against it."""
    here = [is_baseline({x_key: v}, keys) for v in table[x_key]]
    base = table[pd.Series(here, index=table.index) & (table["n"] > 0)]
    if base.empty:
        return
    mean, std = float(base["mean"].iloc[0]), base["std"].iloc[0]
    text = "baseline (w=0 = SC off)" if x_key == "sc.weight" else "baseline (SC off)"
    ax.axhline(mean, color="black", linestyle="--", label=text)
    if pd.notna(std):
        ax.axhspan(mean - std, mean + std, color="black", alpha=0.08, linewidth=0)


def _absent(ax: Any, cells: list[tuple[float, str]]) -> None:
    """A red ✗ at the bottom of the axes per cell with no completed run, with why.

    Labels of neighbouring cells alternate in height so they never overprint; one legend
    entry explains the ✗.
    """
    where = ax.get_xaxis_transform()  # x in data, y in axes fraction
    for j, (x, why) in enumerate(sorted(cells)):
        ax.plot(x, 0.04, marker="x", color="red", markersize=8, mew=2, transform=where,
                clip_on=False, linestyle="none",
                label="no completed run" if j == 0 else "_nolegend_")  # fmt: skip
        ax.annotate(why, (x, 0.04), xycoords=where, xytext=(0, 7 + 9 * (j % 2)),
                    textcoords="offset points", ha="center", fontsize=6, color="red")  # fmt: skip


@register_figure("fig7_connections")
def fig7(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 7: single vs multiple SC connections across depths."""
    return accuracy_vs(results, out_dir / "fig7_connections.png", "SC connections: placement")


@register_figure("fig8_sc_weight")
def fig8(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 8: SC weight 0.1 / 0.2 / 0.5 (and its baseline) across depths."""
    return accuracy_vs(results, out_dir / "fig8_sc_weight.png", "SC weight")


@register_figure("fig9_batch_size")
def fig9(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 9: batch size across depths."""
    return accuracy_vs(results, out_dir / "fig9_batch_size.png", "Batch size")


@register_figure("accuracy_vs_depth")
def accuracy_vs_depth(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Any grid sweep: the metric vs depth (or the first key), one line per other setting."""
    title = str(results.attrs.get("sweep", "") or "Accuracy vs depth")
    return accuracy_vs(results, out_dir / "accuracy_vs_depth.png", title)


# ----------------------------------------------------------------------------- curves
def epoch_curve(run_dir: Path, column: str) -> pd.Series | None:
    """Per-epoch values of ``column`` in a run's metrics.csv, by 0-based epoch (None if absent)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if column not in frame or "epoch" not in frame:
        return None
    rows = frame[["epoch", column]].dropna()
    return rows.groupby("epoch")[column].mean() if not rows.empty else None


loss_curve = epoch_curve  # the name Fig. 4 used


def _run_path(value: Any, sweep_dir: Path) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    path = Path(value)
    return path if path.is_absolute() else sweep_dir / path


def collect_curves(
    results: pd.DataFrame, sweep_dir: Path, column: str
) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[pd.Series]]:
    """``{(setting, sc setting): [per-run curve, ...]}`` over completed runs."""
    keys = list(results.attrs.get("keys", []))
    done = results[results["state"] == "COMPLETE"] if "state" in results else results
    out: dict[tuple[tuple[str, ...], tuple[str, ...]], list[pd.Series]] = {}
    for _, row in done.iterrows():
        run_dir = _run_path(row.get("run_dir"), sweep_dir)
        curve = epoch_curve(run_dir, column) if run_dir else None
        if curve is None:
            continue
        setting = tuple(str(row[k]) for k in keys if k not in SC_KEYS)
        sc = tuple(str(row[k]) for k in keys if k in SC_KEYS)
        out.setdefault((setting, sc), []).append(curve)
    return out


def _band(ax: Any, runs: list[pd.Series], text: str, style: dict[str, Any], factor: float) -> None:
    frame = pd.concat(runs, axis=1) * factor
    mean, std = frame.mean(axis=1), frame.std(axis=1, ddof=1).fillna(0.0)
    epochs = mean.index.to_numpy() + 1
    every = max(len(epochs) // 10, 1)  # markers on ~10 epochs: readable on 200-epoch runs
    ax.plot(epochs, mean.to_numpy(), label=f"{text} (n={len(runs)})", markevery=every, **style)
    ax.fill_between(epochs, (mean - std).to_numpy(), (mean + std).to_numpy(), alpha=0.15,
                    color=style.get("color"), linewidth=0)  # fmt: skip


def curves(
    results: pd.DataFrame, sweep_dir: Path, out: Path, title: str,
    columns: tuple[str, ...] = ("val/acc", "train/loss"),
) -> list[Path]:  # fmt: skip
    """``columns`` vs epoch: one row per setting, SC settings and the baseline on one axis."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    keys = list(results.attrs.get("keys", []))
    setting_keys = [k for k in keys if k not in SC_KEYS]
    sc_keys = [k for k in keys if k in SC_KEYS]
    data = {c: collect_curves(results, sweep_dir, c) for c in columns}
    states = _states(results, setting_keys, sc_keys)
    settings = sorted({s for s, _ in states} | {s for d in data.values() for s, _ in d},
                      key=_sort_key)  # fmt: skip
    styles = _sc_styles(results, sc_keys)
    rows = max(len(settings), 1)
    fig, axes = plt.subplots(rows, len(columns), figsize=(5 * len(columns), 3.2 * rows + 0.6),
                             squeeze=False)  # fmt: skip
    for r, setting in enumerate(settings or [()]):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            for sc in styles:
                if (setting, sc) in data[column]:
                    config = dict(zip(sc_keys, sc, strict=True))
                    _band(ax, data[column][(setting, sc)], label(config) if config else "runs",
                          styles[sc], scale(column))  # fmt: skip
            absent = [sc for (s, sc) in states if s == setting and (s, sc) not in data[column]]
            for j, sc in enumerate(sorted(absent)):
                why = "failed" if "FAIL" in states[(setting, sc)] else "no curve"
                ax.text(0.98, 0.04 + 0.07 * j, f"✗ {label(dict(zip(sc_keys, sc, strict=True)))}: "
                        f"{why}", ha="right", transform=ax.transAxes, color="red", fontsize=7)  # fmt: skip
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(axis_label(column))
            where = label(dict(zip(setting_keys, setting, strict=True))) if setting else ""
            ax.set_title(where if where != "all runs" else "", fontsize=9)
            ax.grid(alpha=0.3)
            if ax.lines:
                ax.legend(fontsize=7)
    fig.suptitle(f"{title} (mean ± std over seeds)", fontsize=10)
    return [_save(fig, out, top=1 - 0.45 / fig.get_figheight())]


def _sc_styles(results: pd.DataFrame, sc_keys: list[str]) -> dict[tuple[str, ...], dict[str, Any]]:
    """One style per SC setting for the whole figure, in the sweep's order (its expected
    configurations first), so a setting has the same colour and marker in every panel and as
    in :func:`accuracy_vs` (a panel missing a setting does not shift the others' colours)."""
    rows = list(results.attrs.get("expected") or []) + [dict(r) for _, r in results.iterrows()]
    order = list(dict.fromkeys(tuple(str(row.get(k)) for k in sc_keys) for row in rows))
    flags = (is_baseline(dict(zip(sc_keys, sc, strict=True)), sc_keys) for sc in order)
    return dict(zip(order, _deal_styles(flags), strict=True))


def _deal_styles(baselines: Iterable[bool]) -> list[dict[str, Any]]:
    """The styles of a figure's lines in order: the i-th line gets the i-th marker and line
    style; a baseline is dashed black, every other line takes the next colour."""
    colours = cycle(_pyplot().rcParams["axes.prop_cycle"].by_key()["color"])
    styles = []
    for i, baseline in enumerate(baselines):
        marker, line = STYLES[i % len(STYLES)]
        styles.append(dict(BASELINE) if baseline else {
            "marker": marker, "linestyle": line, "color": next(colours)})  # fmt: skip
    return styles


def _states(
    results: pd.DataFrame, setting_keys: list[str], sc_keys: list[str]
) -> dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]]:
    """``{(setting, sc setting): [trial states]}`` over every row and expected configuration."""
    out: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
    rows = [dict(r) for _, r in results.iterrows()] + list(results.attrs.get("expected") or [])
    for row in rows:
        key = (
            tuple(str(row.get(k)) for k in setting_keys),
            tuple(str(row.get(k)) for k in sc_keys),
        )
        out.setdefault(key, []).append(str(row.get("state", MISSING)))
    return out


def _sort_key(setting: tuple[str, ...]) -> tuple:
    return tuple((0, _as_float(v), "") if _as_float(v) is not None else (1, 0.0, v)
                 for v in setting)  # fmt: skip


@register_figure("curves")
def curves_figure(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Any sweep: validation accuracy and training loss per epoch, SC vs baseline."""
    title = str(results.attrs.get("sweep", "") or "Training curves")
    return curves(results, sweep_dir, out_dir / "curves.png", title)


@register_figure("fig4_convergence")
def fig4(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Fig. 4: convergence, SC vs baseline (validation accuracy and training loss)."""
    return curves(results, sweep_dir, out_dir / "fig4_convergence.png", "Convergence")


def _save(fig: Any, out: Path, top: float = 1.0) -> Path:
    """Lay out (leaving ``top`` of the height for a suptitle), write the PNG, free the figure."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(out, dpi=130)
    _pyplot().close(fig)
    return out
