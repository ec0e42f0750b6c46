"""From an ``sc`` config to an attached :class:`~scnet.sc.ShortCircuit` (shared by every task)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from scnet.errors import ConfigError
from scnet.models import tap_shapes
from scnet.sc import ShortCircuit, plan, validate_connections


def install_short_circuit(
    backbone: nn.Module, sc_cfg: Mapping[str, Any], example_input: Any
) -> ShortCircuit | None:
    """Plan (or take the explicit) connections for ``backbone`` and attach them.

    Returns None when ``sc.enabled`` is false. Invalid settings raise :class:`ConfigError`
    with one line naming the key, so the CLI can fail before any training.
    """
    if not sc_cfg.get("enabled", False):
        return None
    taps = list(backbone.sc_taps())
    try:
        shapes = tap_shapes(backbone, example_input)
        explicit = sc_cfg.get("connections")
        if explicit:
            # Index and order errors first (they name the allowed range), then shapes.
            connections = validate_connections([tuple(p) for p in explicit], len(taps))
            _check_explicit_shapes(connections, shapes)
        else:
            connections = plan(shapes, **_given(sc_cfg, "k", "strategy", "rear"))
        # Defaults live in conf/sc/on.yaml (the CLI) and in sc.py's signatures (Python
        # callers); a key missing here takes the latter, never a third copy.
        return ShortCircuit(taps, connections, **_given(sc_cfg, "weight", "mode")).attach()
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _given(cfg: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: cfg[k] for k in keys if k in cfg}


def _check_explicit_shapes(connections: list[tuple[int, ...]], shapes: list[torch.Size]) -> None:
    """Fail before training (not at the first forward) when an explicit pair mismatches."""
    for pair in connections:
        if len(pair) != 2:
            raise ValueError(
                f"sc.connections entry {list(pair)} is invalid: expected [rear, front]"
            )
        rear, front = pair
        if not (1 <= front <= len(shapes) and 1 <= rear <= len(shapes)) or front >= rear:
            continue  # ShortCircuit reports range and order errors with the allowed values
        if shapes[rear - 1] != shapes[front - 1]:
            raise ValueError(
                f"sc connection (rear={rear}, front={front}): shapes differ, tap {rear} outputs "
                f"{tuple(shapes[rear - 1])} but tap {front} outputs {tuple(shapes[front - 1])}; "
                "a short circuit needs equal shapes (paper, Section 3.3)"
            )
