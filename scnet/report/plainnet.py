"""Seed 003's Table 1 and the condition-number figure for the ``plainnet_ablation`` sweep.

Table ``plainnet_table1``: one row per combination of the recipe's components (batch norm,
leaky ReLU β > 0, max-norm c), in the order of their Table 1, then the naive PlainNet (none):

* train and test error (%) over seeds, mean ± std: test error is ``100 − test/acc``; train
  error is ``100 − train/acc``, the accuracy over the last training epoch (measured while it
  trained, as Lightning logs it), not a separate pass over the training set;
* their published numbers (``paper.SEED003_TABLE1``, 100 layers on USPS) beside ours;
* log10 of the condition number of the last hidden layer and the median over layers at the
  end of training (``cond/log10_last``, ``cond/log10_median`` from ``condition.enabled=true``),
  median over seeds: the near-singularity their paper blames for the failures.

Figure ``condition_per_layer``: log10 κ per layer at the last recorded epoch, one line per
combination (median over seeds), from each run's ``condition.csv``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from scnet.errors import ConfigError
from scnet.report import paper, tables
from scnet.report.gradient_methods import _run_dir
from scnet.report.gradients import run_config
from scnet.report.registry import register_figure, register_table
from scnet.report.tables import mean_std, to_markdown

NAME = "plainnet_table1"
FIGURE = "condition_per_layer"
KEYS = ("backbone.batch_norm", "backbone.beta", "backbone.max_norm")
#: Their Table 1 order; the naive PlainNet (no component) is ours, last.
ORDER = (
    "BN", "LReLU", "max-norm", "BN + LReLU", "BN + max-norm", "LReLU + max-norm",
    "BN + LReLU + max-norm", "none",
)  # fmt: skip
COND_COLUMNS = {"cond/log10_last": "log10 κ last layer", "cond/log10_median": "log10 κ median"}


def components(config: dict[str, Any]) -> str:
    """``'BN + LReLU'`` etc. from the three backbone keys (``'none'`` for the naive net)."""
    parts = []
    if str(config.get("backbone.batch_norm")).lower() in ("true", "1"):
        parts.append("BN")
    if _number(config.get("backbone.beta")) > 0:
        parts.append("LReLU")
    if _number(config.get("backbone.max_norm")) > 0:
        parts.append("max-norm")
    return " + ".join(parts) or "none"


def _number(value: Any) -> float:
    """A CSV cell as a float; null/None/empty/NaN as 0 (the component is off)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return 0.0
    return out if math.isfinite(out) else 0.0


def _check_keys(results: pd.DataFrame) -> None:
    missing = [k for k in KEYS if k not in results]
    if missing:
        raise ConfigError(f"report {NAME} needs the grid keys {', '.join(KEYS)}; "
                          f"results.csv lacks {', '.join(missing)}")  # fmt: skip


def _labelled(results: pd.DataFrame) -> pd.DataFrame:
    _check_keys(results)
    out = results.copy()
    out["components"] = [components(dict(r)) for _, r in results[list(KEYS)].iterrows()]
    return out


def _median(values: list[float]) -> float | None:
    return float(pd.Series(values).median()) if values else None


def build(results: pd.DataFrame) -> pd.DataFrame:
    """One row per component combination with raw numbers (the CSV)."""
    labelled = _labelled(results)
    expected = {components(c) for c in results.attrs.get("expected") or []}
    present = expected | set(labelled["components"])
    done = labelled[labelled["state"] == "COMPLETE"]
    rows = []
    for label in [x for x in ORDER if x in present]:
        runs = done[done["components"] == label]
        failed = int(((labelled["components"] == label) & (labelled["state"] == "FAIL")).sum())
        row: dict[str, Any] = {"components": label, "n": len(runs), "failed": failed}
        for name, col in (("train_error", "train/acc"), ("test_error", "test/acc")):
            vals = [100.0 - 100.0 * float(v) for v in runs.get(col, []) if pd.notna(v)]
            row[f"{name}_mean"] = sum(vals) / len(vals) if vals else None
            row[f"{name}_std"] = pd.Series(vals).std(ddof=1) if len(vals) > 1 else None
        for col in COND_COLUMNS:
            row[col] = _median([float(v) for v in runs.get(col, []) if pd.notna(v)])
        ref = paper.SEED003_TABLE1.get(label)
        row["paper_train_error"], row["paper_test_error"] = ref if ref else (None, None)
        rows.append(row)
    return pd.DataFrame(rows)


def render(table: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["components", "train error (%)", "test error (%)", "n", "failed",
              "paper train (%)", "paper test (%)", *COND_COLUMNS.values()]  # fmt: skip
    cells = []
    for _, r in table.iterrows():
        none = tables.absent(r) if r["n"] == 0 else None
        cells.append([
            r["components"], none or mean_std(r["train_error_mean"], r["train_error_std"]),
            none or mean_std(r["test_error_mean"], r["test_error_std"]),
            str(int(r["n"])), str(int(r["failed"])), tables._fmt(r["paper_train_error"]),
            tables._fmt(r["paper_test_error"]), *(tables._fmt(r[c]) for c in COND_COLUMNS),
        ])  # fmt: skip
    return header, cells


def _setup(results: pd.DataFrame, sweep_dir: Path) -> str:
    """Depth and data of the runs, from the first run dir's config (for the caption)."""
    for value in results.get("run_dir", []):
        run_dir = _run_dir(value, sweep_dir)
        cfg = run_config(run_dir) if run_dir else None
        if cfg:
            depth, data = cfg.get("depth"), (cfg.get("data") or {}).get("name")
            return f"{depth} layers, {data}"
    return "depth/data unknown"


@register_table(NAME)
def plainnet_table1(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Write ``plainnet_table1.{md,csv,tex}``."""
    table = build(results)
    header, cells = render(table)
    caption = (f"Seed 003 Table 1 ablation, ours ({_setup(results, sweep_dir)}) vs theirs (100 layers, "
               "USPS): train/test error over seeds, and how singular the hidden "
               "representations end up (log10 condition number, median over seeds)")  # fmt: skip
    notes = [
        "Train error: 100 − train/acc of the last training epoch, measured while it trained.",
        "κ ≥ 1e15 (log10 ≥ 15) means numerically singular (e.g. dead units).",
    ]
    missing = int((table["n"] == 0).sum())
    if missing:
        notes.append(f"{missing} combination(s) have no completed trial ({tables.ABSENT_NOTE}).")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{NAME}.{ext}" for ext in ("md", "csv", "tex")]
    body = to_markdown(header, cells) + "".join(f"\n- {n}" for n in notes) + "\n"
    paths[0].write_text(f"# {caption}\n\n{body}")
    table.to_csv(paths[1], index=False)
    paths[2].write_text(tables.to_latex(header, cells, caption))
    return paths


def final_condition(run_dir: Path) -> pd.Series | None:
    """log10 κ per layer at the last epoch in ``run_dir/condition.csv`` (None if absent)."""
    path = run_dir / "condition.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if frame.empty:
        return None
    last = frame[frame["epoch"] == frame["epoch"].max()]
    return last.set_index("layer")["log10_cond"].sort_index()


@register_figure(FIGURE)
def condition_per_layer(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """``condition_per_layer.png``: log10 κ per layer, one line per component combination."""
    from scnet.lit.condition import SINGULAR
    from scnet.report.figures import STYLES, _pyplot, _save

    plt = _pyplot()
    labelled = _labelled(results)
    done = labelled[labelled["state"] == "COMPLETE"]
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    missing = []
    for i, label in enumerate(x for x in ORDER if x in set(labelled["components"])):
        dirs = [_run_dir(d, sweep_dir) for d in done[done["components"] == label]["run_dir"]]
        curves = [c for c in (final_condition(d) for d in dirs if d) if c is not None]
        if not curves:
            missing.append(label)
            continue
        median = pd.concat(curves, axis=1).median(axis=1)
        marker, line = STYLES[i % len(STYLES)]
        # Markers on a few layers each, shifted per line, so coinciding lines stay visible.
        every = (i % 4, max(len(median) // 8, 1))
        ax.plot(median.index + 1, median.values, marker=marker, linestyle=line, markevery=every,
                label=f"{label} (n={len(curves)})", alpha=0.85)  # fmt: skip
    cap = math.log10(SINGULAR)
    ax.axhline(cap, color="grey", lw=1.5, ls=":", zorder=0,
               label=f"cap: κ = 1/ε ≈ {SINGULAR:.1e} (numerically singular)")  # fmt: skip
    ax.set_ylim(top=cap + 1.0)
    for j, label in enumerate(missing):
        ax.annotate(f"✗ {label}: no completed run with condition.csv", (0.99, 0.04 + 0.06 * j),
                    xycoords="axes fraction", ha="right", fontsize=7, color="red")  # fmt: skip
    ax.set_xlabel("hidden layer (1 = input side)")
    ax.set_ylabel("log10 κ of the layer's activations")
    ax.set_title("Condition number per layer, last epoch (median over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.lines:  # outside the axes: no line hides under it
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_save(fig, out_dir / f"{FIGURE}.png")]
