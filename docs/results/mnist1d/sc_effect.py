"""SC vs its baseline from sweep results.csv files: Welch t, p, Δ with 95 % CI, Hedges' g.

    python docs/results/mnist1d/sc_effect.py RESULTS.csv [...]   # markdown table on stdout

A configuration's baseline is the same configuration (every other grid key equal) with
``sc=off``, or with ``sc.weight=0.0`` where the sweep varies the weight instead. Accuracies are
in percentage points. The CI is Welch's (Welch–Satterthwaite degrees of freedom); Hedges' g is
the pooled-std standardized difference with the small-sample correction J = 1 - 3/(4 df - 1).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

METRIC = "test/acc"
SKIP = {"trial", "state", "seed", "duration_s", "run_dir", "error"}


def effect(a: list[float], b: list[float]) -> dict[str, float]:
    """SC values ``a`` vs baseline values ``b``: Δ, its 95 % CI, Welch t and p, Hedges' g."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va, vb = pd.Series(a).var(ddof=1), pd.Series(b).var(ddof=1)
    se = math.sqrt(va / na + vb / nb)
    df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
    res = stats.ttest_ind(a, b, equal_var=False)
    half = stats.t.ppf(0.975, df) * se
    pooled = math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    g = (ma - mb) / pooled * (1 - 3 / (4 * (na + nb - 2) - 1)) if pooled > 0 else float("nan")
    return {"delta": ma - mb, "lo": ma - mb - half, "hi": ma - mb + half,
            "t": float(res.statistic), "p": float(res.pvalue), "g": g}  # fmt: skip


def _plain(value: object) -> object:
    """20.0 -> 20 (a grid column with empty cells is read as floats)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _cell(values: list[float], failed: int) -> str:
    """``mean ± std (n=…)``, with the failed (diverged) runs counted."""
    fail = f", {failed} failed" if failed else ""
    if not values:
        return f"– (n=0{fail})"
    std = f" ± {pd.Series(values).std():.2f}" if len(values) > 1 else ""
    return f"{sum(values) / len(values):.2f}{std} (n={len(values)}{fail})"


def rows(path: Path) -> list[str]:
    df = pd.read_csv(path)
    df = df[df["state"].isin(["COMPLETE", "FAIL"])]
    if METRIC not in df:  # no trial has completed yet
        df = df.assign(**{METRIC: float("nan")})
    metrics = {c for c in df.columns if "/" in c} | {"epochs", "lr", "steps"}
    keys = [c for c in df.columns if c not in SKIP | metrics]
    if "sc" in keys:
        switch, base_value = "sc", "off"
    elif "sc.weight" in keys:
        switch, base_value = "sc.weight", 0.0
    else:
        return []
    others = [k for k in keys if k != switch]
    out = []
    for setting, part in df.groupby(others, sort=False) if others else [((), df)]:
        setting = setting if isinstance(setting, tuple) else (setting,)
        label = ", ".join(f"{k}={_plain(v)}" for k, v in zip(others, setting, strict=True))
        is_base = part[switch].astype(str) == str(base_value)
        base_all = part[is_base]
        base = (base_all[base_all["state"] == "COMPLETE"][METRIC] * 100).tolist()
        base_failed = int((base_all["state"] == "FAIL").sum())
        for value, sc_part in part[~is_base].groupby(switch, sort=False):
            a = (sc_part[sc_part["state"] == "COMPLETE"][METRIC] * 100).tolist()
            failed = int((sc_part["state"] == "FAIL").sum())
            stats_cells = "– | – | – | –"
            if len(a) >= 2 and len(base) >= 2:
                e = effect(a, base)
                stats_cells = (
                    f"{e['delta']:+.2f} [{e['lo']:+.2f}, {e['hi']:+.2f}] | {e['t']:.2f} | "
                    f"{e['p']:.3f} | {e['g']:+.2f}"
                )
            out.append(
                f"| {path.parent.name} | {label} | {switch}={value} | {_cell(a, failed)} | "
                f"{_cell(base, base_failed)} | {stats_cells} |"
            )
    return out


def main(paths: list[str]) -> None:
    print("| sweep | setting | SC | SC test acc (%) | baseline (%) | Δ [95 % CI] (pp) "
          "| Welch t | p | Hedges' g |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for p in paths:
        for line in rows(Path(p)):
            print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
