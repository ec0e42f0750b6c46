"""Seed 001: highway networks, ``y = H(x)·T(x) + x·(1 − T(x))`` (Srivastava et al., 2015).

``T(x) = sigmoid(W_T x + b_T)`` is the transform gate; ``b_T`` starts negative
(``gate_bias``, default −2) so that at initialisation T ≈ sigmoid(−2) ≈ 0.12 and every layer
is close to the identity: the network starts shallow and learns where to be deep.

Two variants share the layer logic:

* ``kind: mlp``: flatten, ``Linear(in, width)`` + activation, ``depth`` highway layers of
  ``width`` units, ``Linear(width, num_classes)``;
* ``kind: conv``: ``Conv3x3(C, width)`` + activation, ``depth`` highway layers of 3x3 convs,
  global average pool, ``Linear(width, num_classes)``.

Taps: the input projection, each layer's ``H`` pre-activation (same shapes, so short
circuits can join any two highway layers), and the classifier.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from scnet.errors import ConfigError
from scnet.models.fcn import make_activation

KINDS = ("mlp", "conv")


class HighwayLayer(nn.Module):
    """One highway layer; ``transform`` and ``gate`` are Linear or Conv of equal shape."""

    def __init__(self, transform: nn.Module, gate: nn.Module, activation: str, gate_bias: float):
        super().__init__()
        self.transform = transform
        self.gate = gate
        self.act = make_activation(activation)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.transform(x))
        t = torch.sigmoid(self.gate(x))
        return h * t + x * (1.0 - t)


class Highway(nn.Module):
    """A stack of ``depth`` highway layers of ``width`` units/channels (see module doc)."""

    def __init__(
        self,
        depth: int = 10,
        width: int = 50,
        kind: str = "mlp",
        activation: str = "relu",
        gate_bias: float = -2.0,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 28, 28),
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"backbone.kind={kind!r} is invalid for highway: choose mlp or conv")
        if not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"depth={depth} is invalid for backbone=highway: must be >= 1")
        self.kind = kind
        shape = [int(s) for s in input_shape]
        if kind == "mlp":
            self.stem: nn.Module = nn.Linear(math.prod(shape), width)
            make = lambda: nn.Linear(width, width)  # noqa: E731
        else:
            self.stem = nn.Conv2d(shape[0], width, 3, padding=1)
            make = lambda: nn.Conv2d(width, width, 3, padding=1)  # noqa: E731
        self.stem_act = make_activation(activation)
        self.layers = nn.ModuleList(
            HighwayLayer(make(), make(), activation, gate_bias) for _ in range(depth)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "mlp":
            x = x.flatten(1)
        h = self.stem_act(self.stem(x))
        for layer in self.layers:
            h = layer(h)
        if self.kind == "conv":
            h = h.mean(dim=(2, 3))
        return self.head(h)

    def gates(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The transform gate T of each layer for input ``x`` (diagnostics and tests)."""
        out = []
        h = self.stem_act(self.stem(x.flatten(1) if self.kind == "mlp" else x))
        for layer in self.layers:
            out.append(torch.sigmoid(layer.gate(h)))
            h = layer(h)
        return out

    def sc_taps(self) -> list[nn.Module]:
        return [self.stem, *(layer.transform for layer in self.layers), self.head]
