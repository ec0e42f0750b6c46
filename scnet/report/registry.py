"""Named figure and table builders that ``scnet-report`` looks up from a sweep's ``report:`` key.

A builder takes the sweep's results (one row per trial, the columns of ``results.csv``), the
sweep directory (run dirs hold per-run files such as ``metrics.csv`` and ``grad_stats.csv``)
and the output directory, and returns the files it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

Builder = Callable[[pd.DataFrame, Path, Path], list[Path]]
FIGURES: dict[str, Builder] = {}
TABLES: dict[str, Builder] = {}


def register_figure(name: str) -> Callable[[Builder], Builder]:
    def add(fn: Builder) -> Builder:
        FIGURES[name] = fn
        return fn

    return add


def register_table(name: str) -> Callable[[Builder], Builder]:
    def add(fn: Builder) -> Builder:
        TABLES[name] = fn
        return fn

    return add
