"""The small 1-D CNN of the MNIST-1D benchmark (Greydanus 2020, ``ConvBase``).

Three ``Conv1d`` layers of ``channels`` filters, kernel sizes 5, 3, 3, stride 2, padding 1,
each followed by ReLU; the last feature map is flattened into one Linear to ``num_classes``.
On length-40 inputs the lengths go 40 -> 19 -> 10 -> 5, so with 25 channels the classifier
sees 125 features and the model has 5,210 parameters (the reference's count). PyTorch's
default initialization, as in the reference.

SC taps: the three convs and the Linear, in forward order (the convs differ in length, so only
the planner's shape rule decides which may connect: see :func:`scnet.sc.plan`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scnet.errors import ConfigError
from scnet.models.signal_args import signal_shape

__all__ = ["ConvNet1D"]

KERNELS = (5, 3, 3)


def _out_length(length: int, kernel: int, stride: int = 2, padding: int = 1) -> int:
    return (length + 2 * padding - kernel) // stride + 1


class ConvNet1D(nn.Module):
    """Conv1d(k5,s2) -> Conv1d(k3,s2) -> Conv1d(k3,s2), ReLU after each, flatten, Linear.

    Args:
        channels: filters of every conv layer (the reference uses 25).
        num_classes: size of the output logits.
        input_shape: ``(C, L)`` of one example; ``L`` fixes the classifier's input size.
    """

    def __init__(
        self, channels: int = 25, num_classes: int = 10, input_shape: Sequence[int] = (1, 40)
    ) -> None:
        super().__init__()
        shape = signal_shape("cnn1d", input_shape, channels=channels, num_classes=num_classes)
        in_ch, length = shape
        convs: list[nn.Conv1d] = []
        for kernel in KERNELS:
            convs.append(nn.Conv1d(in_ch, channels, kernel, stride=2, padding=1))
            in_ch, length = channels, _out_length(length, kernel)
            if length < 1:
                raise ConfigError(
                    f"input_shape={list(shape)} is too short for backbone=cnn1d (length >= 3)"
                )
        self.convs = nn.ModuleList(convs)
        self.linear = nn.Linear(channels * length, num_classes)
        self.input_shape = shape
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = torch.relu(conv(x))
        return self.linear(x.flatten(1))

    def sc_taps(self) -> list[nn.Module]:
        """The three convs, then the Linear (the logits), in forward order."""
        return [*self.convs, self.linear]
