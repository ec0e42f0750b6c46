"""CIFAR ResNet-v1 (He et al., 2016, Sec. 4.2), the "option A" variant.

Layout for depth = 6n + 2:

* stem: conv3x3(C_in -> w0, no bias) + BN + ReLU
* three stages of ``n`` BasicBlocks with widths ``w0, w1, w2`` and strides 1, 2, 2
* global average pool + Linear to ``num_classes``

Shortcuts are identities; where a block changes resolution and width the shortcut
subsamples ``x[:, :, ::2, ::2]`` and zero-pads the new channels ("option A"), so the
shortcut adds no parameters. With the default widths this reproduces the parameter
counts of the paper (0.27M for ResNet-20 ... 19.4M for ResNet-1202).

SC taps are all ``Conv2d`` modules in forward order: the stem conv, then
``conv1, conv2`` of every block, i.e. ``depth - 1`` taps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scnet.errors import ConfigError

__all__ = ["BasicBlock", "CifarResNet", "PadShortcut", "blocks_per_stage"]

_VALID_DEPTHS_HINT = "20, 32, 44, 56, 110, 1202, ..."


def blocks_per_stage(depth: int) -> int:
    """Return ``n`` for ``depth = 6n + 2``; raise ConfigError for any other depth."""
    valid = (
        isinstance(depth, int)
        and not isinstance(depth, bool)
        and depth >= 8
        and (depth - 2) % 6 == 0
    )
    if not valid:
        raise ConfigError(
            f"depth={depth} is invalid for backbone=resnet: "
            f"depth must be 6n+2 ({_VALID_DEPTHS_HINT})"
        )
    return (depth - 2) // 6


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    # No bias: every conv is followed by BN, whose shift makes a bias redundant.
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class PadShortcut(nn.Module):
    """Parameter-free shortcut: subsample spatially by ``stride``, zero-pad channels.

    The extra channels are split evenly before and after the existing ones, as in the
    reference implementation (``planes // 4`` on each side when the width doubles).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"PadShortcut cannot shrink channels ({in_ch} -> {out_ch})")
        self.stride = stride
        self.pad_before = (out_ch - in_ch) // 2
        self.pad_after = out_ch - in_ch - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [::s] gives ceil(H/s) rows, the same size a 3x3/pad-1 conv of stride s outputs.
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_before}, {self.pad_after})"


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, out_ch, stride)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = _conv3x3(out_ch, out_ch)
        self.bn2 = nn.BatchNorm2d(out_ch)
        needs_projection = stride != 1 or in_ch != out_ch
        self.shortcut: nn.Module = (
            PadShortcut(in_ch, out_ch, stride) if needs_projection else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-v1 for small images; depth ``6n + 2`` (20, 32, 44, 56, 110, 1202).

    Args:
        depth: total number of weighted layers (convs + the final Linear).
        num_classes: size of the output logits.
        input_shape: ``(C, H, W)`` of one example; only ``C`` shapes the network, any
            ``H, W`` works thanks to the global average pool (e.g. 1x8x8 digits).
        widths: channel widths of the three stages; the stem uses ``widths[0]``.
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        input_shape: Sequence[int] = (3, 32, 32),
        widths: Sequence[int] = (16, 32, 64),
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth)
        in_ch = _check_input_shape(input_shape)
        widths = _check_widths(widths)
        if num_classes < 1:
            raise ConfigError(f"num_classes={num_classes} is invalid: must be >= 1")
        self.depth = depth
        self.num_classes = num_classes
        self.input_shape = tuple(int(s) for s in input_shape)
        self.widths = widths

        self.conv1 = _conv3x3(in_ch, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = _make_stage(widths[0], widths[0], n, stride=1)
        self.layer2 = _make_stage(widths[0], widths[1], n, stride=2)
        self.layer3 = _make_stage(widths[1], widths[2], n, stride=2)
        self.linear = nn.Linear(widths[2], num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)

    def stages(self) -> list[nn.Sequential]:
        """The three residual stages, in forward order."""
        return [self.layer1, self.layer2, self.layer3]

    def sc_taps(self) -> list[nn.Module]:
        """Every Conv2d in forward order: stem, then conv1/conv2 of each block."""
        taps: list[nn.Module] = [self.conv1]
        for stage in self.stages():
            for block in stage:
                taps += [block.conv1, block.conv2]
        return taps

    def stage_of_tap(self) -> list[int]:
        """Stage index (1, 2, 3) of each tap in ``sc_taps()``; the stem counts as stage 1."""
        stage_ids = [1]
        for idx, stage in enumerate(self.stages(), start=1):
            stage_ids += [idx] * (2 * len(stage))
        return stage_ids


def _make_stage(in_ch: int, out_ch: int, n: int, stride: int) -> nn.Sequential:
    # Only the first block of a stage changes resolution/width.
    blocks = [BasicBlock(in_ch, out_ch, stride)]
    blocks += [BasicBlock(out_ch, out_ch) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


def _init_weights(module: nn.Module) -> None:
    # He et al. init for every weighted layer; BN keeps its default (gamma=1, beta=0).
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight)


def _check_input_shape(input_shape: Sequence[int]) -> int:
    """Validate ``(C, H, W)`` and return ``C``."""
    shape = tuple(input_shape)
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ConfigError(
            f"input_shape={list(shape)} is invalid for backbone=resnet: expected (C, H, W)"
        )
    return int(shape[0])


def _check_widths(widths: Sequence[int]) -> tuple[int, int, int]:
    """Validate three positive, non-decreasing stage widths (padding cannot shrink)."""
    w = tuple(int(v) for v in widths)
    if len(w) != 3 or w[0] < 1 or not (w[0] <= w[1] <= w[2]):
        raise ConfigError(
            f"widths={list(w)} is invalid for backbone=resnet: "
            "expected 3 positive, non-decreasing stage widths"
        )
    return (w[0], w[1], w[2])
