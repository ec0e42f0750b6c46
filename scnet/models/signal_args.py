"""Argument checks shared by the 1-D signal models (``cnn1d``, ``gru1d``): one-line errors."""

from __future__ import annotations

from collections.abc import Sequence

from scnet.errors import ConfigError


def signal_shape(backbone: str, input_shape: Sequence[int], **sizes: object) -> tuple[int, int]:
    """``(C, L)`` of one example, after checking it and that every size is an int >= 1."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 2 or min(shape) < 1:
        raise ConfigError(
            f"input_shape={list(shape)} is invalid for backbone={backbone}: expected (C, L), "
            "e.g. data=mnist1d"
        )
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}={value!r} is invalid for backbone={backbone}: must be >= 1")
    return shape[0], shape[1]
