"""The bidirectional GRU of the MNIST-1D benchmark (Greydanus 2020; published 91 %).

A length-``L`` signal of ``C`` channels is read as ``L`` time steps of ``C`` features. One
bidirectional GRU layer of ``hidden`` units per direction runs over it, and the outputs of
every time step (``L · 2 · hidden`` features) are flattened into one Linear to the classes.
With ``hidden=6`` on length-40 inputs the model has 5,134 parameters, the same size class as
the benchmark's CNN (5,210): the benchmark compares architectures at equal size.
PyTorch's default initialization, as in the reference.

SC taps: the Linear only. The GRU returns a tuple and its time steps share weights, so no
layer below the head has a sensitivity of its own shape for a short circuit to add to: the
preset runs with ``sc=off``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scnet.models.signal_args import signal_shape

__all__ = ["GRU1D"]


class GRU1D(nn.Module):
    """Bidirectional GRU over the signal's positions, then Linear on all time steps' outputs.

    Args:
        hidden: GRU units per direction (the reference uses 6).
        num_classes: size of the output logits.
        input_shape: ``(C, L)`` of one example; ``L`` fixes the classifier's input size.
    """

    def __init__(
        self, hidden: int = 6, num_classes: int = 10, input_shape: Sequence[int] = (1, 40)
    ) -> None:
        super().__init__()
        shape = signal_shape("gru1d", input_shape, hidden=hidden, num_classes=num_classes)
        channels, length = shape
        self.gru = nn.GRU(channels, hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(length * 2 * hidden, num_classes)
        self.input_shape = shape
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, _ = self.gru(x.transpose(1, 2))  # (N, C, L) -> (N, L, C): one step per position
        return self.linear(steps.flatten(1))

    def sc_taps(self) -> list[nn.Module]:
        """The Linear (the logits): the only layer with an output of its own."""
        return [self.linear]
