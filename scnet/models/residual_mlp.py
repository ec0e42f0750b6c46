"""Seed 002: a deep narrow MLP, plain or residual (20 layers x 20 units, tanh).

Layer 1 maps the flattened input to ``width``; layers 2..depth-1 are ``width -> width``;
the last maps to ``num_classes`` (no activation). In ``residual`` mode every hidden
``width -> width`` layer adds its input back, ``h = h + act(W h + b)``, so the Jacobian
of a layer is ``I + diag(act') W`` and the backward signal cannot vanish multiplicatively.

Taps: every Linear in order (the pre-activations), as for ``FCN``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from scnet.errors import ConfigError
from scnet.models.fcn import make_activation


class ResidualMLP(nn.Module):
    """``depth`` Linear layers of ``width`` units; ``residual`` toggles the identity skips."""

    def __init__(
        self,
        depth: int = 20,
        width: int = 20,
        activation: str = "tanh",
        residual: bool = True,
        num_classes: int = 20,
        input_shape: Sequence[int] = (1, 1, 20),
    ) -> None:
        super().__init__()
        if not isinstance(depth, int) or depth < 2:
            raise ConfigError(f"depth={depth} is invalid for backbone=residual_mlp: must be >= 2")
        if not isinstance(width, int) or width < 1:
            raise ConfigError(f"width={width} is invalid for backbone=residual_mlp: must be >= 1")
        self.residual = bool(residual)
        in_features = math.prod(int(s) for s in input_shape)
        dims = [in_features] + [width] * (depth - 1) + [num_classes]
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(depth))
        self.acts = nn.ModuleList(make_activation(activation) for _ in range(depth - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for i, (layer, act) in enumerate(zip(self.layers[:-1], self.acts, strict=True)):
            out = act(layer(h))
            h = h + out if self.residual and i > 0 else out
        return self.layers[-1](h)

    def sc_taps(self) -> list[nn.Module]:
        """Every Linear in forward order."""
        return list(self.layers)
