"""Tables: mean ± std over seeds, n, the paper's number, Δ, Welch's t-test SC vs baseline.

A builder gets ``results`` (results.csv as a DataFrame) whose ``attrs`` carry ``keys`` (the
configuration columns, seed excluded), ``metric`` and ``expected`` (every configuration the
sweep defines, so missing cells can be marked). Only COMPLETE rows are aggregated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from scnet.report import paper
from scnet.report.registry import register_table

MISSING = "missing"


def scale(metric: str) -> float:
    """Accuracies are stored as fractions and shown in % (as the paper does)."""
    return 100.0 if metric.endswith("acc") or "/acc" in metric else 1.0


def _key(config: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    return tuple(str(config.get(k)) for k in keys)


def baseline_of(config: dict[str, Any], keys: list[str]) -> dict[str, Any] | None:
    """The same configuration with SC off (only the ``sc`` / ``sc.enabled`` key differs)."""
    if paper.sc_enabled(config) is not True:
        return None
    if "sc" in keys:
        return {**config, "sc": "off"}
    if "sc.enabled" in keys:
        return {**config, "sc.enabled": False}
    return None


def welch(a: list[float], b: list[float]) -> tuple[float | None, float | None]:
    """Welch's t statistic and two-sided p (None when either side has fewer than 2 values)."""
    if len(a) < 2 or len(b) < 2:
        return None, None
    import warnings

    from scipy import stats

    with warnings.catch_warnings():  # identical values: scipy warns, t is still reported
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.ttest_ind(a, b, equal_var=False)
    t, p = float(res.statistic), float(res.pvalue)
    return (t if math.isfinite(t) else None), (p if math.isfinite(p) else None)


def summarize(
    results: pd.DataFrame, paper_value: Callable[[dict[str, Any]], float | None] | None = None
) -> pd.DataFrame:
    """One row per configuration: n, mean, std, paper, Δ, Welch's t and p vs its baseline."""
    keys: list[str] = list(results.attrs.get("keys", []))
    metric: str = results.attrs["metric"]
    factor = scale(metric)
    done = results[results["state"] == "COMPLETE"] if "state" in results else results
    values: dict[tuple[str, ...], list[float]] = {}
    configs: dict[tuple[str, ...], dict[str, Any]] = {}
    for config in results.attrs.get("expected") or []:
        configs.setdefault(_key(config, keys), dict(config))
    for _, row in done.iterrows():
        config = {k: row[k] for k in keys}
        k = _key(config, keys)
        configs.setdefault(k, config)
        if metric in row and pd.notna(row[metric]):
            values.setdefault(k, []).append(float(row[metric]) * factor)
    failed = results[results["state"] == "FAIL"] if "state" in results else results.iloc[0:0]
    n_failed: dict[tuple[str, ...], int] = {}
    for _, row in failed.iterrows():
        k = _key({kk: row[kk] for kk in keys}, keys)
        n_failed[k] = n_failed.get(k, 0) + 1
    rows = []
    for k, config in configs.items():
        vals = values.get(k, [])
        mean = sum(vals) / len(vals) if vals else None
        std = pd.Series(vals).std(ddof=1) if len(vals) > 1 else None
        ref = paper_value(config) if paper_value else None
        base = baseline_of(config, keys)
        t, p = welch(vals, values.get(_key(base, keys), [])) if base else (None, None)
        rows.append({
            **{kk: config[kk] for kk in keys}, "n": len(vals), "failed": n_failed.get(k, 0),
            "mean": mean, "std": std, "paper": ref,
            "delta": (mean - ref) if mean is not None and ref is not None else None,
            "welch_t": t, "welch_p": p,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, "n", "failed", "mean", "std", "paper", "delta",
                                       "welch_t", "welch_p"])  # fmt: skip


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def mean_std(mean: Any, std: Any, digits: int = 2) -> str:
    """``mean ± std``; the mean alone when std is unknown (n = 1); ``missing`` without a mean."""
    if mean is None or pd.isna(mean):
        return MISSING
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def display(table: pd.DataFrame, metric: str) -> tuple[list[str], list[list[str]]]:
    """Human-readable cells: ``mean ± std``, ``missing`` for empty cells, ``–`` for none."""
    keys = [c for c in table.columns if c not in
            ("n", "failed", "mean", "std", "paper", "delta", "welch_t", "welch_p")]  # fmt: skip
    unit = " (%)" if scale(metric) == 100.0 else ""
    header = [*keys, f"{metric}{unit} mean ± std", "n", "failed", "paper", "Δ vs paper",
              "Welch t vs baseline", "p"]  # fmt: skip
    cells = []
    for _, r in table.iterrows():
        value = MISSING if r["n"] == 0 else mean_std(r["mean"], r["std"])
        delta = _fmt(r["delta"])
        if delta != "–" and r["delta"] > 0:
            delta = "+" + delta
        cells.append([*(str(r[k]) for k in keys), value, str(int(r["n"])), str(int(r["failed"])),
                      _fmt(r["paper"]), delta, _fmt(r["welch_t"]), _fmt(r["welch_p"], 3)])  # fmt: skip
    return header, cells


def to_markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                 ("#", r"\#"), ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("–", "--")):  # fmt: skip
        text = text.replace(a, b)
    return text


def to_latex(header: list[str], cells: list[list[str]], caption: str) -> str:
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{" + "l" * len(header) + "}",
             r"\toprule", " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]  # fmt: skip
    lines += [" & ".join(_tex(c) for c in row) + r" \\" for row in cells]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex(caption)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    results: pd.DataFrame, out_dir: Path, name: str, caption: str,
    paper_value: Callable[[dict[str, Any]], float | None] | None = None,
) -> list[Path]:  # fmt: skip
    """Write ``name.md``, ``name.csv`` (raw numbers) and ``name.tex``."""
    metric = results.attrs["metric"]
    table = summarize(results, paper_value)
    header, cells = display(table, metric)
    missing = int((table["n"] == 0).sum())
    note = (
        f"\n{missing} configuration(s) have no completed trial (marked {MISSING}).\n"
        if missing
        else ""
    )
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.csv", out_dir / f"{name}.tex"]
    paths[0].write_text(f"# {caption}\n\n" + to_markdown(header, cells) + note)
    table.to_csv(paths[1], index=False)
    paths[2].write_text(to_latex(header, cells, caption))
    return paths


@register_table("table2")
def table2(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Paper Table 2: ResNet vs SCResNet test accuracy on CIFAR-10, with the paper's numbers."""
    caption = (f"Table 2: CIFAR-10 {results.attrs['metric']}, ours (same code, SC on/off) vs the "
               "paper (its ResNet column is He et al. 2016's published numbers)")  # fmt: skip
    return write_table(results, out_dir, "table2", caption, paper.table2)


@register_table("summary")
def summary(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """Any sweep: per configuration mean ± std over seeds (no paper column values)."""
    caption = (
        f"{results.attrs.get('sweep', sweep_dir.name)}: {results.attrs['metric']} per configuration"
    )
    return write_table(results, out_dir, "summary", caption)
