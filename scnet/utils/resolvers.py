"""OmegaConf resolvers used by ``conf/`` (registered when :mod:`scnet` is imported)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import OmegaConf

#: The paper's SC settings; a run name mentions only what differs from them.
PAPER_SC = {"weight": 0.2, "k": 2, "strategy": "multi", "mode": "propagate"}
_SHORT = {"weight": "w", "k": "k", "strategy": "", "mode": ""}


def sc_tag(sc: Mapping[str, Any]) -> str:
    """``plain``, ``sc``, or ``sc`` plus what differs from the paper: ``sc-w0.5-k4-single``."""
    if not sc.get("enabled", False):
        return "plain"
    parts = ["sc"]
    for key, usual in PAPER_SC.items():
        value = sc.get(key, usual)
        if value != usual:
            parts.append(f"{_SHORT[key]}{value}")
    if sc.get("connections"):
        parts.append("explicit")
    return "-".join(parts)


def register() -> None:
    if not OmegaConf.has_resolver("sc_tag"):
        OmegaConf.register_new_resolver("sc_tag", sc_tag)
