"""Tables 3 (DREAM) and 4 (SemEval-2018 Task 11): our runs beside the paper's numbers.

Registered as ``table3`` and ``table4`` for ``scnet-report``. Rows: each backbone (BERT-base,
BERT-large, RoBERTa-large) with SC off and on; columns: dev (``val/acc_best``) and test
(``test/acc``) accuracy in %, mean ± std over seeds, n, the paper's number and Δ = ours − paper,
plus SC against its same-code baseline on test accuracy (``tables.compare``: Welch's p, the
difference with its 95 % CI, Hedges' g). Cells, Welch and the table writers are
``tables.py``'s; the paper's numbers are ``paper.py``'s.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from scnet.report import paper, tables
from scnet.report.registry import register_table

MODELS = {"bert-base": "BERT-base", "bert-large": "BERT-large", "roberta-large": "RoBERTa-large"}
#: The paper's numbers: ``paper.TABLE3_DREAM`` / ``paper.TABLE4_MCSCRIPT``, (dev, test) in %.
PAPER = {"table3": paper.TABLE3_DREAM, "table4": paper.TABLE4_MCSCRIPT}
TITLES = {
    "table3": "Table 3: DREAM accuracy (%), dev / test",
    "table4": "Table 4: SemEval-2018 Task 11 (MCScript) accuracy (%), dev / test",
}
# Which results.csv column says the model, and how its values map to MODELS.
MODEL_COLUMNS = ("experiment", "backbone.pretrained")
ALIASES = {
    "mcqa_bert_base": "bert-base", "bert-base-uncased": "bert-base",
    "mcqa_bert_large": "bert-large", "bert-large-uncased": "bert-large",
    "mcqa_roberta_large": "roberta-large", "roberta-large": "roberta-large",
}  # fmt: skip


def _model_of(value: object) -> str | None:
    text = str(value).strip().split("/")[-1]
    return ALIASES.get(text)


def _sc_on(value: object) -> bool:
    return str(value).strip().lower() in ("on", "true", "1", "sc")


def _percent(values: pd.Series | None) -> list[float]:
    return [] if values is None else [100.0 * float(v) for v in values.dropna()]


def _mean_std(values: list[float]) -> str:
    mean = sum(values) / len(values) if values else None
    std = pd.Series(values).std(ddof=1) if len(values) > 1 else None
    return "–" if mean is None else tables.mean_std(mean, std)


def _delta(values: list[float], ref: float | None) -> str:
    if ref is None or not values:
        return "–"
    return f"{sum(values) / len(values) - ref:+.2f}"


def summarize(results: pd.DataFrame, table: str) -> pd.DataFrame:
    """One row per (model, SC) with our mean ± std, n, the paper's numbers, Δ and SC vs plain."""
    done = results[results.get("state", "COMPLETE").astype(str).str.upper() == "COMPLETE"]
    column = next((c for c in MODEL_COLUMNS if c in done.columns), None)
    if column is None or "sc" not in done.columns:
        raise ValueError(f"{table}: results need an sc column and one of {MODEL_COLUMNS}")
    done = done.assign(_model=done[column].map(_model_of), _sc=done["sc"].map(_sc_on))
    rows = []
    for model, name in MODELS.items():
        base = done[(done["_model"] == model) & (~done["_sc"])]
        for sc in (False, True):
            group = done[(done["_model"] == model) & (done["_sc"] == sc)]
            rows.append(_row(table, ("SC" if sc else "") + name, sc, group, base))
    return pd.DataFrame(rows)


def _row(table: str, name: str, sc: bool, group: pd.DataFrame, base: pd.DataFrame) -> dict:
    dev, test = _percent(group.get("val/acc_best")), _percent(group.get("test/acc"))
    paper_dev, paper_test = PAPER[table][name]
    vs = tables.compare(test, _percent(base.get("test/acc"))) if sc else {}
    p = vs.get("welch_p")
    return {
        "model": name, "n": len(test),
        "dev (ours)": _mean_std(dev), "dev (paper)": _paper(paper_dev),
        "Δ dev": _delta(dev, paper_dev),
        "test (ours)": _mean_std(test), "test (paper)": _paper(paper_test),
        "Δ test": _delta(test, paper_test),
        "p (Welch, test, SC vs plain)": "" if not sc else tables._fmt(p, 3),
        "Δ test vs plain [95 % CI]": "" if not sc else tables.diff_ci(
            vs.get("diff"), vs.get("diff_lo"), vs.get("diff_hi")),
        "Hedges g (test)": "" if not sc else tables._fmt(vs.get("hedges_g")),
    }  # fmt: skip


def _paper(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:g}"


def _write(table: str, results: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results, table)
    header = list(summary.columns)
    cells = [[str(v) for v in row] for row in summary.itertuples(index=False)]
    md, csv, tex = (out_dir / f"{table}.{ext}" for ext in ("md", "csv", "tex"))
    md.write_text(f"{TITLES[table]}\n\n{tables.to_markdown(header, cells)}")
    summary.to_csv(csv, index=False)
    tex.write_text(tables.to_latex(header, cells, TITLES[table]))
    return [md, csv, tex]


@register_table("table3")
def table3(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """DREAM (paper Table 3)."""
    return _write("table3", results, out_dir)


@register_table("table4")
def table4(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """SemEval-2018 Task 11 (paper Table 4)."""
    return _write("table4", results, out_dir)
