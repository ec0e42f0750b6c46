"""LightningModule for multiple-choice QA (SCBERT / SCRoBERTa, paper Section 4.3-4.4).

Everything but the batch layout is the classifier's logic: cross-entropy over the options'
logits, accuracy, ``val/acc_best``, the per-step AdamW/linear schedule of ``optim.configure``
and the SC hooks installed by ``install_short_circuit`` on the encoder layers. So this module
only teaches :class:`ClassifierModule` to feed a dict of token tensors to the backbone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from scnet.errors import ConfigError
from scnet.lit.classifier import ClassifierModule

# Tap shapes are (T, H) for every encoder layer whatever T is, so a short probe suffices.
PROBE_LENGTH = 16


class MultipleChoiceModule(ClassifierModule):
    """Batches are ``({input_ids, attention_mask, token_type_ids?}, labels)``, ids (B, C, T).

    Args:
        backbone: a :class:`~scnet.models.transformer.MultipleChoiceTransformer` (or any
            module with ``sc_taps()`` taking ``input_ids``/``attention_mask`` and returning
            (B, C) logits).
        sc, optim: the ``sc`` and ``optim`` configs.
        input_shape: ``(n_choices, max_length)`` from the data module.
    """

    def __init__(
        self,
        backbone: nn.Module,
        sc: Mapping[str, Any],
        optim: Mapping[str, Any],
        input_shape: tuple[int, ...],
        task: str = "multiple_choice",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        if getattr(backbone, "task", None) != "multiple_choice":
            raise ConfigError(
                f"backbone {type(backbone).__name__} cannot do multiple-choice QA: choose "
                "backbone=bert, roberta or minilm"
            )
        n_choices, length = input_shape
        probe_shape = (n_choices, min(length, PROBE_LENGTH))
        # channels_last is an image-layout option: meaningless for token batches.
        super().__init__(
            backbone, sc, optim, probe_shape, task, channels_last=False, compile=compile
        )

    def forward(self, x: Mapping[str, Tensor] | Tensor) -> Tensor:
        if isinstance(x, Mapping):
            return self.backbone(**x)
        return self.backbone(x)
