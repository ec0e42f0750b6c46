"""CIFAR ResNet-v1 (He et al., 2016, Sec. 4.2), the "option A" variant.

Layout for depth = 6n + 2:

* stem: conv3x3(C_in -> w0, no bias) + BN + ReLU
* three stages of ``n`` BasicBlocks with widths ``w0, w1, w2`` and strides 1, 2, 2
* global average pool + Linear to ``num_classes``

Shortcuts are identities; where a block changes resolution and width the shortcut
subsamples ``x[:, :, ::2, ::2]`` and zero-pads the new channels ("option A"), so the
shortcut adds no parameters. With the default widths this reproduces the parameter
counts of the paper (0.27M for ResNet-20 ... 19.4M for ResNet-1202).

SC taps are all conv modules in forward order: the stem conv, then
``conv1, conv2`` of every block, i.e. ``depth - 1`` taps.

The same structure in 1-D (``dims=1``, inferred from a ``(C, L)`` input shape) serves signals
such as MNIST-1D: ``Conv1d``/``BatchNorm1d``, kernel 3, the shortcut subsamples ``x[:, :, ::2]``;
parameter counts equal the 2-D ones with every 3x3 kernel replaced by a length-3 one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scnet.errors import ConfigError

__all__ = ["BasicBlock", "CifarResNet", "PadShortcut", "blocks_per_stage"]

_VALID_DEPTHS_HINT = "20, 32, 44, 56, 110, 1202, ..."
_CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM: dict[int, type[nn.Module]] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


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


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1, dims: int = 2) -> nn.Module:
    # No bias: every conv is followed by BN, whose shift makes a bias redundant.
    return _CONV[dims](in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


class PadShortcut(nn.Module):
    """Parameter-free shortcut: subsample spatially by ``stride``, zero-pad channels.

    The extra channels are split evenly before and after the existing ones, as in the
    reference implementation (``planes // 4`` on each side when the width doubles).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, dims: int = 2) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"PadShortcut cannot shrink channels ({in_ch} -> {out_ch})")
        self.stride = stride
        self.dims = dims
        self.pad_before = (out_ch - in_ch) // 2
        self.pad_after = out_ch - in_ch - self.pad_before

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [::s] gives ceil(H/s) rows, the same size a 3x3/pad-1 conv of stride s outputs.
        if self.dims == 1:
            x = x[:, :, :: self.stride]
            return F.pad(x, (0, 0, self.pad_before, self.pad_after))
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad=({self.pad_before}, {self.pad_after})"


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dims: int = 2) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, out_ch, stride, dims)
        self.bn1 = _NORM[dims](out_ch)
        self.conv2 = _conv3x3(out_ch, out_ch, dims=dims)
        self.bn2 = _NORM[dims](out_ch)
        needs_projection = stride != 1 or in_ch != out_ch
        self.shortcut: nn.Module = (
            PadShortcut(in_ch, out_ch, stride, dims) if needs_projection else nn.Identity()
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
        input_shape: ``(C, H, W)`` of one example (or ``(C, L)`` for 1-D); only ``C``
            shapes the network, any ``H, W`` works thanks to the global average pool
            (e.g. 1x8x8 digits).
        widths: channel widths of the three stages; the stem uses ``widths[0]``.
        dims: 2 (images, Conv2d) or 1 (signals, Conv1d); ``None`` infers it from
            ``input_shape`` (3 entries: 2-D, 2 entries: 1-D).
    """

    def __init__(
        self,
        depth: int = 20,
        num_classes: int = 10,
        input_shape: Sequence[int] = (3, 32, 32),
        widths: Sequence[int] = (16, 32, 64),
        dims: int | None = None,
    ) -> None:
        super().__init__()
        n = blocks_per_stage(depth)
        dims = _check_dims(dims, input_shape)
        in_ch = _check_input_shape(input_shape, dims)
        widths = _check_widths(widths)
        if num_classes < 1:
            raise ConfigError(f"num_classes={num_classes} is invalid: must be >= 1")
        self.depth = depth
        self.num_classes = num_classes
        self.input_shape = tuple(int(s) for s in input_shape)
        self.widths = widths
        self.dims = dims

        self.conv1 = _conv3x3(in_ch, widths[0], dims=dims)
        self.bn1 = _NORM[dims](widths[0])
        self.layer1 = _make_stage(widths[0], widths[0], n, stride=1, dims=dims)
        self.layer2 = _make_stage(widths[0], widths[1], n, stride=2, dims=dims)
        self.layer3 = _make_stage(widths[1], widths[2], n, stride=2, dims=dims)
        self.linear = nn.Linear(widths[2], num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        # Global average pool over the spatial dims (H, W in 2-D; L in 1-D).
        out = out.mean(dim=-1) if self.dims == 1 else F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)

    def stages(self) -> list[nn.Sequential]:
        """The three residual stages, in forward order."""
        return [self.layer1, self.layer2, self.layer3]

    def sc_taps(self) -> list[nn.Module]:
        """Every conv in forward order: stem, then conv1/conv2 of each block."""
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


def _make_stage(in_ch: int, out_ch: int, n: int, stride: int, dims: int = 2) -> nn.Sequential:
    # Only the first block of a stage changes resolution/width.
    blocks = [BasicBlock(in_ch, out_ch, stride, dims)]
    blocks += [BasicBlock(out_ch, out_ch, dims=dims) for _ in range(n - 1)]
    return nn.Sequential(*blocks)


def _init_weights(module: nn.Module) -> None:
    # He et al. init for every weighted layer; BN keeps its default (gamma=1, beta=0).
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight)


def _check_dims(dims: int | None, input_shape: Sequence[int]) -> int:
    """``dims`` (1 or 2), or inferred from the input's rank: (C, L) -> 1, (C, H, W) -> 2."""
    if dims is None:
        return 1 if len(tuple(input_shape)) == 2 else 2
    if isinstance(dims, bool) or dims not in _CONV:
        raise ConfigError(f"dims={dims!r} is invalid for backbone=resnet: choose 1 or 2 (or null)")
    return int(dims)


def _check_input_shape(input_shape: Sequence[int], dims: int = 2) -> int:
    """Validate ``(C, H, W)`` (2-D) or ``(C, L)`` (1-D) and return ``C``."""
    shape = tuple(input_shape)
    if len(shape) != dims + 1 or any(int(s) < 1 for s in shape):
        expected = "(C, L)" if dims == 1 else "(C, H, W)"
        raise ConfigError(
            f"input_shape={list(shape)} is invalid for backbone=resnet: expected {expected}"
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
