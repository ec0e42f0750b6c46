"""Fully connected network (MLP) backbone.

``depth`` counts Linear layers: ``depth - 1`` hidden ``Linear(width)`` layers, each
followed by the activation, then a final Linear to ``num_classes`` (no activation: the
output is logits). The input is flattened first, so any ``(C, H, W)`` works.

SC taps are all Linear modules in order, i.e. the pre-activations ``Z`` of every layer
including the logits; this is the setting of the paper's Fig. 5 (5 layers, sigmoid, MNIST).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from scnet.errors import ConfigError

__all__ = ["ACTIVATIONS", "FCN", "make_activation"]

#: Name -> factory of the activation module placed after each hidden Linear.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Build the activation called ``name`` (case-insensitive); ConfigError if unknown."""
    key = str(name).lower()
    if key not in ACTIVATIONS:
        allowed = ", ".join(ACTIVATIONS)
        raise ConfigError(
            f"activation={name!r} is invalid for backbone=fcn: must be one of {allowed}"
        )
    return ACTIVATIONS[key]()


class FCN(nn.Module):
    """Flatten, then ``depth`` Linear layers with ``activation`` between them.

    Args:
        depth: number of Linear layers (>= 1; depth 1 is multinomial logistic regression).
        width: units of each hidden layer (>= 1).
        activation: one of ``ACTIVATIONS``.
        num_classes: size of the output logits.
        input_shape: ``(C, H, W)`` (any shape; it is flattened).
        bias: whether the Linear layers have a bias.
    """

    def __init__(
        self,
        depth: int = 5,
        width: int = 100,
        activation: str = "sigmoid",
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 28, 28),
        bias: bool = True,
    ) -> None:
        super().__init__()
        _check_positive("depth", depth)
        _check_positive("width", width)
        _check_positive("num_classes", num_classes)
        in_features = _flat_size(input_shape)
        self.depth = depth
        self.width = width
        self.activation = str(activation).lower()
        self.num_classes = num_classes
        self.input_shape = tuple(int(s) for s in input_shape)

        # Validate the activation name up front so depth=1 (no hidden layer) still rejects it.
        make_activation(self.activation)
        dims = [in_features] + [width] * (depth - 1) + [num_classes]
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
            if i < depth - 1:
                layers.append(make_activation(self.activation))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def sc_taps(self) -> list[nn.Module]:
        """Every Linear in forward order (their outputs are the pre-activations Z)."""
        return [m for m in self.net if isinstance(m, nn.Linear)]


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value} is invalid for backbone=fcn: must be an integer >= 1")


def _flat_size(input_shape: Sequence[int]) -> int:
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"input_shape={list(shape)} is invalid for backbone=fcn")
    return math.prod(shape)
