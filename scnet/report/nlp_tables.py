"""Tables 3 (DREAM) and 4 (SemEval-2018 Task 11): our runs beside the paper's numbers.

Registered as ``table3`` and ``table4`` for ``scnet-report``. Rows: each backbone (BERT-base,
BERT-large, RoBERTa-large) with SC off and on; columns: dev (``val/acc_best``) and test
(``test/acc``) accuracy in %, mean ± std over seeds, n, the paper's number and Δ = ours − paper,
plus Welch's t-test of SC against its same-code baseline on test accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from scipy import stats

from scnet.report.registry import register_table

MODELS = ("bert-base", "bert-large", "roberta-large")
# Paper Tables 3-4 (DESIGN.md), accuracy in %: (model, sc) -> (dev, test); None = not reported.
PAPER: dict[str, dict[tuple[str, bool], tuple[float | None, float | None]]] = {
    "table3": {
        ("bert-base", False): (63.2, 63.2), ("bert-base", True): (63.3, 63.3),
        ("bert-large", False): (66.0, 66.8), ("bert-large", True): (66.6, 67.6),
        ("roberta-large", False): (85.4, 85.0), ("roberta-large", True): (87.5, 86.3),
    },
    "table4": {
        ("bert-base", False): (None, 87.53), ("bert-base", True): (88.0, 88.1),
        ("bert-large", False): (None, 88.7), ("bert-large", True): (88.9, 89.2),
        ("roberta-large", False): (93.76, 94.0), ("roberta-large", True): (94.8, 94.7),
    },
}  # fmt: skip
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


def _mean_std(values: pd.Series) -> tuple[float, float, int]:
    values = values.dropna() * 100.0
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n > 1 else math.nan
    return mean, std, n


def _fmt(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def _paper(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def _delta(mean: float, paper: float | None) -> str:
    return "–" if paper is None or math.isnan(mean) else f"{mean - paper:+.2f}"


def _welch(a: pd.Series, b: pd.Series) -> str:
    a, b = a.dropna(), b.dropna()
    if len(a) < 2 or len(b) < 2:
        return "–"
    return f"{stats.ttest_ind(a, b, equal_var=False).pvalue:.3f}"


def summarize(results: pd.DataFrame, table: str) -> pd.DataFrame:
    """One row per (model, SC) with our mean ± std, n, the paper's numbers and Δ."""
    done = results[results.get("state", "COMPLETE").astype(str).str.upper() == "COMPLETE"]
    column = next((c for c in MODEL_COLUMNS if c in done.columns), None)
    if column is None or "sc" not in done.columns:
        raise ValueError(f"{table}: results need an sc column and one of {MODEL_COLUMNS}")
    done = done.assign(_model=done[column].map(_model_of), _sc=done["sc"].map(_sc_on))
    rows = []
    for model in MODELS:
        for sc in (False, True):
            group = done[(done["_model"] == model) & (done["_sc"] == sc)]
            baseline = done[(done["_model"] == model) & (~done["_sc"])]
            rows.append(_row(table, model, sc, group, baseline))
    return pd.DataFrame(rows)


def _row(table: str, model: str, sc: bool, group: pd.DataFrame, base: pd.DataFrame) -> dict:
    dev = _mean_std(group.get("val/acc_best", pd.Series(dtype=float)))
    test = _mean_std(group.get("test/acc", pd.Series(dtype=float)))
    paper_dev, paper_test = PAPER[table][(model, sc)]
    name = ("SC" if sc else "") + {"bert-base": "BERT-base", "bert-large": "BERT-large",
                                   "roberta-large": "RoBERTa-large"}[model]  # fmt: skip
    return {
        "model": name, "n": test[2],
        "dev (ours)": _fmt(dev[0], dev[1]), "dev (paper)": _paper(paper_dev),
        "Δ dev": _delta(dev[0], paper_dev),
        "test (ours)": _fmt(test[0], test[1]), "test (paper)": _paper(paper_test),
        "Δ test": _delta(test[0], paper_test),
        "p (Welch, test, SC vs plain)": _welch(group.get("test/acc", pd.Series(dtype=float)),
                                               base.get("test/acc", pd.Series(dtype=float)))
        if sc else "",
    }  # fmt: skip


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub pipe table (no ``tabulate`` dependency)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _write(table: str, results: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(results, table)
    md, csv, tex = (out_dir / f"{table}.{ext}" for ext in ("md", "csv", "tex"))
    md.write_text(f"{TITLES[table]}\n\n{markdown(summary)}\n")
    summary.to_csv(csv, index=False)
    tex.write_text(summary.to_latex(index=False, caption=TITLES[table]))
    return [md, csv, tex]


@register_table("table3")
def table3(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """DREAM (paper Table 3)."""
    return _write("table3", results, out_dir)


@register_table("table4")
def table4(results: pd.DataFrame, sweep_dir: Path, out_dir: Path) -> list[Path]:
    """SemEval-2018 Task 11 (paper Table 4)."""
    return _write("table4", results, out_dir)
