"""Tables: mean ± std over seeds, n, the paper's number, Δ, SC vs its baseline.

A builder gets ``results`` (results.csv as a DataFrame) whose ``attrs`` carry ``keys`` (the
configuration columns, seed excluded), ``metric`` and ``expected`` (every configuration the
sweep defines, so missing cells can be marked). Only COMPLETE rows are aggregated.

SC vs baseline (:func:`compare`): Welch's t and two-sided p, the mean difference with its
95 % confidence interval (Welch–Satterthwaite degrees of freedom) and Hedges' g (the
standardized difference, small-sample corrected). The baseline of a configuration
(:func:`baseline_candidates`) is the same configuration with ``sc=off`` (or
``sc.enabled=false``), or, when only the SC weight varies, with ``sc.weight=0`` — identical
gradients to ``sc=off`` (``tests/test_report.py::test_weight_zero_is_the_plain_backbone``).
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
#: A configuration whose every trial failed (e.g. diverged): said as such, not as missing.
FAILED = "failed"
#: A key that does not apply to a row (the SC weight of a run with SC off).
NOT_APPLICABLE = "–"


def scale(metric: str) -> float:
    """Accuracies are stored as fractions and shown in % (as the paper does)."""
    return 100.0 if metric.endswith("acc") or "/acc" in metric else 1.0


def _cell(value: Any) -> str:
    """A config value as a comparable cell: ``20``, ``20.0`` and ``"20"`` are one cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "None"  # YAML null and an empty CSV cell (NaN) are one cell
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return repr(number) if math.isfinite(number) else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def _key(config: dict[str, Any], keys: list[str]) -> tuple[str, ...]:
    return tuple(_cell(config.get(k)) for k in keys)


def is_baseline(config: dict[str, Any], keys: list[str]) -> bool:
    """SC off, or (when only the weight varies) SC weight 0."""
    if paper.sc_enabled(config) is False:
        return True
    return "sc.weight" in keys and _cell(config.get("sc.weight")) == "0.0"


def baseline_candidates(config: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    """Where this configuration's baseline may sit, most specific first (none for a baseline).

    ``sc=off`` with the other ``sc.*`` keys as they are, then with them blank (run dirs
    gathered by ``--runs`` blank the SC settings of plain runs); ``sc.weight=0`` when the
    weight is a key (Fig. 8's baseline).
    """
    if is_baseline(config, keys):
        return []
    out = []
    off = ({"sc": "off"} if "sc" in keys else {"sc.enabled": False} if "sc.enabled" in keys
           else None)  # fmt: skip
    if off is not None and paper.sc_enabled(config) is True:
        out.append({**config, **off})
        blank = {k: NOT_APPLICABLE for k in keys if k.startswith("sc.") and k != "sc.enabled"}
        if blank:
            out.append({**config, **off, **blank})
    if "sc.weight" in keys:
        out.append({**config, "sc.weight": 0.0})
    return out


def baseline_of(config: dict[str, Any], keys: list[str]) -> dict[str, Any] | None:
    """The first baseline candidate (kept for callers that need one configuration)."""
    candidates = baseline_candidates(config, keys)
    return candidates[0] if candidates else None


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


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def compare(a: list[float], b: list[float]) -> dict[str, float | None]:
    """``a`` vs ``b``: Welch t, p, mean difference a − b with its 95 % CI, Hedges' g.

    The CI uses Welch's standard error and Welch–Satterthwaite degrees of freedom (so it is
    consistent with p: it excludes 0 exactly when p < 0.05). Hedges' g is Cohen's d on the
    pooled standard deviation times the small-sample correction 1 − 3 / (4(n_a + n_b) − 9).
    Everything is None when either side has fewer than 2 values.
    """
    out: dict[str, float | None] = dict.fromkeys(("welch_t", "welch_p", "diff", "diff_lo",
                                                  "diff_hi", "hedges_g"))  # fmt: skip
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return out
    from scipy import stats

    out["welch_t"], out["welch_p"] = welch(a, b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1)
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1)
    diff, se2 = ma - mb, va / na + vb / nb
    out["diff"] = diff
    if se2 > 0:
        df = se2**2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        half = float(stats.t.ppf(0.975, df)) * math.sqrt(se2)
        out["diff_lo"], out["diff_hi"] = diff - half, diff + half
    else:  # both sides constant: the difference is exact
        out["diff_lo"] = out["diff_hi"] = diff
    pooled = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
    if pooled > 0:
        out["hedges_g"] = _finite(diff / math.sqrt(pooled) * (1 - 3 / (4 * (na + nb) - 9)))
    return out


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
        config = {kk: row[kk] for kk in keys}
        k = _key(config, keys)
        n_failed[k] = n_failed.get(k, 0) + 1
        if all(pd.notna(v) for v in config.values()):  # every trial failed: still a row
            configs.setdefault(k, config)
    rows = []
    for k, config in configs.items():
        vals = values.get(k, [])
        mean = sum(vals) / len(vals) if vals else None
        std = pd.Series(vals).std(ddof=1) if len(vals) > 1 else None
        ref = paper_value(config) if paper_value else None
        base = next((values[_key(c, keys)] for c in baseline_candidates(config, keys)
                     if _key(c, keys) in values), [])  # fmt: skip
        rows.append({
            **{kk: config[kk] for kk in keys}, "n": len(vals), "failed": n_failed.get(k, 0),
            "mean": mean, "std": std, "paper": ref,
            "delta": (mean - ref) if mean is not None and ref is not None else None,
            **compare(vals, base),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=[*keys, *STAT_COLUMNS])


#: What :func:`summarize` adds to the key columns.
STAT_COLUMNS = ("n", "failed", "mean", "std", "paper", "delta", "welch_t", "welch_p", "diff",
                "diff_lo", "diff_hi", "hedges_g")  # fmt: skip


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


def _signed(value: Any, digits: int = 2) -> str:
    text = _fmt(value, digits)
    return "+" + text if text != "–" and value > 0 else text


def diff_ci(diff: Any, lo: Any, hi: Any) -> str:
    """``+0.40 [−0.10, +0.90]``: the difference and its 95 % CI (``–`` without a test)."""
    if diff is None or pd.isna(diff):
        return "–"
    if lo is None or pd.isna(lo):
        return _signed(diff)
    return f"{_signed(diff)} [{_signed(lo)}, {_signed(hi)}]"


#: Header cells of the SC-vs-baseline columns (``display`` and tables that reuse it).
COMPARE_HEADER = ("Welch t vs baseline", "p", "Δ vs baseline [95 % CI]", "Hedges g")


def compare_cells(r: Any) -> list[str]:
    """The SC-vs-baseline cells of one :func:`summarize` row."""
    return [_fmt(r["welch_t"]), p_value(r["welch_p"]),
            diff_ci(r["diff"], r["diff_lo"], r["diff_hi"]), _fmt(r["hedges_g"])]  # fmt: skip


def p_value(p: Any) -> str:
    """Three decimals, and ``< 0.001`` rather than a p of ``0.000``."""
    if isinstance(p, float) and math.isfinite(p) and p < 0.001:
        return "< 0.001"
    return _fmt(p, 3)


def show(value: Any) -> str:
    """A configuration cell as the sweep file writes it (``null`` for None and empty cells)."""
    return "null" if _cell(value) == "None" else str(value)


def display(
    table: pd.DataFrame, metric: str, paper: bool = True, versus: bool = True
) -> tuple[list[str], list[list[str]]]:
    """Human-readable cells: ``mean ± std``, ``missing`` for empty cells, ``–`` for none.

    ``paper=False`` leaves out the paper and Δ-vs-paper columns (sweeps with no paper number);
    ``versus=False`` the SC-vs-baseline columns (sweeps with no SC baseline).
    """
    keys = [c for c in table.columns if c not in STAT_COLUMNS]
    unit = " (%)" if scale(metric) == 100.0 else ""
    header = [*keys, f"{metric}{unit} mean ± std", "n", "failed",
              *(("paper", "Δ vs paper") if paper else ()),
              *(COMPARE_HEADER if versus else ())]  # fmt: skip
    cells = []
    for _, r in table.iterrows():
        value = absent(r) if r["n"] == 0 else mean_std(r["mean"], r["std"])
        ref = [_fmt(r["paper"]), _signed(r["delta"])] if paper else []
        cells.append([*(show(r[k]) for k in keys), value, str(int(r["n"])),
                      str(int(r["failed"])), *ref, *(compare_cells(r) if versus else [])])  # fmt: skip
    return header, cells


#: How the notes under a table explain its ``absent`` cells.
ABSENT_NOTE = f"marked {FAILED} where every trial failed, {MISSING} where none ran"


def absent(row: Any) -> str:
    """The cell text of a configuration without completed trials: failed, or missing."""
    return FAILED if int(row.get("failed", 0) or 0) > 0 else MISSING


def to_markdown(header: list[str], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


# Plain-text symbols and their LaTeX (math symbols in math mode; ``−`` is a real minus).
_TEX = (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"),
        ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("–", "--"), ("−", "$-$"), ("‖", r"$\|$"),
        ("∂", r"$\partial$"), ("κ", r"$\kappa$"))  # fmt: skip


def _tex(text: str) -> str:
    for a, b in _TEX:
        text = text.replace(a, b)
    return text


def _numeric(column: list[str]) -> bool:
    """A column of numbers (or ``mean ± std`` / CI cells, ``–`` and ``missing``)."""
    filled = [c for c in column if c not in ("–", "", MISSING, FAILED)]
    if not filled:
        return False
    head = [c.lstrip("+").split(" ")[0] for c in filled]
    return all(_is_number(h) for h in head)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_latex(header: list[str], cells: list[list[str]], caption: str) -> str:
    """A booktabs table (``\\usepackage{booktabs}``): text columns left, numbers right-aligned.

    Numeric columns are right-aligned so decimal points line up (every number in a column has
    the same number of decimals); headers of numeric columns are right-aligned too.
    """
    columns = list(zip(*cells, strict=True)) if cells else [() for _ in header]
    align = "".join("r" if _numeric(list(col)) else "l" for col in columns)
    lines = ["% requires \\usepackage{booktabs}", r"\begin{table}[t]", r"\centering",
             r"\begin{tabular}{" + align + "}", r"\toprule",
             " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]  # fmt: skip
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
    versus = bool(table["diff"].notna().any())  # no SC baseline anywhere: no empty columns
    header, cells = display(table, metric, paper=paper_value is not None, versus=versus)
    missing = int((table["n"] == 0).sum())
    note = (
        f"\n{missing} configuration(s) have no completed trial ({ABSENT_NOTE}).\n"
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
