"""Backbones: one file per network; the contract every one of them meets is :class:`Backbone`.

Backbones know nothing about short circuits beyond naming their taps; the SC machinery
(:mod:`scnet.sc`) attaches to the taps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from scnet.models.cnn1d import ConvNet1D
from scnet.models.fcn import FCN
from scnet.models.resnet import CifarResNet

__all__ = [
    "Backbone",
    "BackboneHooks",
    "CifarResNet",
    "ConvNet1D",
    "FCN",
    "count_parameters",
    "tap_shapes",
]


@runtime_checkable
class Backbone(Protocol):
    """What scnet needs from a network (``conf/backbone/*.yaml`` names one by ``_target_``).

    * built with keyword args ``input_shape`` (one sample's shape, e.g. ``(C, H, W)``) and
      ``num_classes``, both filled in from the data module by ``scnet.train``, plus its own
      options from the backbone yaml;
    * ``forward(x)`` maps a batch to logits ``(N, num_classes)`` (a regression output for
      regression data);
    * ``sc_taps()`` returns the modules whose forward *output* is a short-circuit endpoint, in
      forward order (tap 1 first).

    Optional class attribute ``task`` (default ``"classification"``): the data task the
    backbone can train on (``"multiple_choice"`` for the transformers). Optional methods are
    listed in :class:`BackboneHooks`.
    """

    def sc_taps(self) -> list[nn.Module]: ...

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class BackboneHooks(Protocol):
    """Optional methods a :class:`Backbone` may define; scnet calls them only when present.

    * ``after_optimizer_step()``: after every optimizer step (PlainNet's max-norm projection);
    * ``step_metrics() -> dict[str, float]``: logged as ``train/<key>`` after each training
      batch (the fixed-point net's iterations and non-converged fraction);
    * ``hidden(x) -> list[Tensor]``: per-layer hidden representations for the condition
      numbers (``condition.enabled``); default: the tap outputs;
    * ``stage_of_tap() -> list[int]``: the stage of each tap for gradient statistics.
    """

    def after_optimizer_step(self) -> None: ...

    def step_metrics(self) -> dict[str, float]: ...

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]: ...

    def stage_of_tap(self) -> list[int]: ...


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
