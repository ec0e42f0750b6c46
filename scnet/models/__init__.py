"""Vision backbones.

A backbone is an ``nn.Module`` that

* is built with keyword args ``input_shape=(C, H, W)`` and ``num_classes`` (filled in
  from the data config by Hydra ``_target_`` instantiation) plus its own options;
* maps a batch ``x`` of shape ``(N, C, H, W)`` to logits ``(N, num_classes)``;
* declares ``sc_taps() -> list[nn.Module]``: the modules whose forward *output* is a
  short-circuit endpoint, in forward order (tap 1 first).

Backbones know nothing else about short circuits; the SC machinery attaches to the taps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from scnet.models.fcn import FCN
from scnet.models.resnet import CifarResNet

__all__ = ["FCN", "CifarResNet", "count_parameters", "tap_shapes"]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def tap_shapes(model: nn.Module, example_input: torch.Tensor) -> list[torch.Size]:
    """Output shape of each of ``model.sc_taps()``, without the batch dim.

    Runs one forward of ``example_input`` (a batch, ``(N, C, H, W)``) in eval mode under
    ``torch.no_grad()``, so BatchNorm running stats are untouched; hooks are removed and
    every submodule's train/eval flag is restored afterwards, even on error.
    """
    taps = list(model.sc_taps())  # type: ignore[operator]
    shapes: list[torch.Size | None] = [None] * len(taps)
    handles = [tap.register_forward_hook(_shape_recorder(shapes, i)) for i, tap in enumerate(taps)]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    missing = [i + 1 for i, s in enumerate(shapes) if s is None]
    if missing:
        raise RuntimeError(f"sc_taps {missing} (1-based) were not called during forward")
    return [s for s in shapes if s is not None]


def _shape_recorder(shapes: list[torch.Size | None], index: int) -> Callable[..., None]:
    """Forward hook storing the output shape (minus batch dim) of the first call."""

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if isinstance(output, (tuple, list)):  # e.g. transformers 4.x encoder layers
            output = output[0]
        if shapes[index] is None:
            shapes[index] = output.shape[1:]

    return hook
