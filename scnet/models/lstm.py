"""LSTM baseline for the long-term dependency tasks (seed 004's comparison).

An input ``(C, T, F)`` is read as ``T`` time steps of ``C·F`` features (the sequence data
modules produce ``(1, T, F)``). A Linear input projection, a single-layer LSTM, and a Linear
head on the last hidden state. Taps: the input projection and the head (the LSTM returns a
tuple, so it is not a tap).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LSTMNet(nn.Module):
    """Projection → LSTM(``hidden``) → Linear on the final hidden state."""

    def __init__(
        self,
        hidden: int = 64,
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 64, 1),
    ) -> None:
        super().__init__()
        c, _t, f = (int(s) for s in input_shape)
        self.proj = nn.Linear(c * f, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, f = x.shape
        seq = x.permute(0, 2, 1, 3).reshape(n, t, c * f)
        out, _ = self.lstm(self.proj(seq))
        return self.head(out[:, -1])

    def sc_taps(self) -> list[nn.Module]:
        return [self.proj, self.head]
