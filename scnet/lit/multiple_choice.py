"""Multiple-choice QA (SCBERT / SCRoBERTa, paper Section 4.3-4.4).

Everything but the batch layout is the classifier's logic (cross-entropy over the options'
logits, accuracy, ``val/acc_best``, the per-step schedule, the SC hooks on the encoder
layers), so :class:`~scnet.lit.classifier.ClassifierModule` with ``task="multiple_choice"``
does it; this name is kept for Python callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from scnet.lit.classifier import PROBE_LENGTH, ClassifierModule

__all__ = ["PROBE_LENGTH", "MultipleChoiceModule"]


class MultipleChoiceModule(ClassifierModule):
    """A :class:`ClassifierModule` whose batches are ``({input_ids, attention_mask, …}, labels)``."""

    def __init__(
        self,
        backbone: nn.Module,
        sc: Mapping[str, Any],
        optimizer: Any,
        input_shape: tuple[int, ...],
        task: str = "multiple_choice",
        **kwargs: Any,
    ) -> None:
        super().__init__(backbone, sc, optimizer, input_shape, task, **kwargs)
