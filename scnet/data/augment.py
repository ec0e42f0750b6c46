"""Vectorized, device-side image augmentation for whole batches.

Every function takes an ``(N, C, H, W)`` batch and a :class:`torch.Generator`. Random numbers
are drawn on the generator's device and then moved to the data, so a CPU generator gives the
same augmentation whether the images live on the CPU or on a GPU (runs are reproducible across
machines). Nothing here loops over samples in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from scnet.errors import ConfigError

#: An augmentation: maps a batch and a generator to an augmented batch of the same shape.
Augment = Callable[[Tensor, torch.Generator], Tensor]


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected an (N, C, H, W) batch, got shape {tuple(x.shape)}")


def _randint(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """``n`` ints in ``[0, high)`` drawn on the generator's device, returned on ``device``."""
    draw = torch.randint(high, (n,), generator=generator, device=generator.device)
    return draw.to(device)


def random_crop(x: Tensor, padding: int, generator: torch.Generator) -> Tensor:
    """Zero-pad each side by ``padding`` and cut a random ``H x W`` window per sample.

    This is the standard CIFAR recipe (``RandomCrop(32, padding=4)``): padding is applied to
    the raw pixels, so for uint8 input the border is black before normalization. Works for
    any dtype; with ``padding == 0`` the input is returned unchanged.
    """
    _check_images(x)
    if padding < 0:
        raise ConfigError(f"crop padding must be >= 0, got {padding}")
    if padding == 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = _randint(2 * padding + 1, n, generator, x.device)
    dx = _randint(2 * padding + 1, n, generator, x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H) source row per output row
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W) source col per output col
    # Two gathers (rows, then columns) with per-sample offsets: one fused pass each, no loop.
    out = padded.gather(2, rows[:, None, :, None].expand(n, c, h, padded.shape[3]))
    return out.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def random_hflip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Mirror each sample left-right independently with probability ``p``."""
    _check_images(x)
    draw = torch.rand(x.shape[0], generator=generator, device=generator.device)
    flip = (draw < p).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def normalize(x: Tensor, mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor) -> Tensor:
    """Per-channel ``(x - mean) / std`` for a float ``(N, C, H, W)`` batch."""
    _check_images(x)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def make_augment(crop_padding: int = 0, hflip: bool = False) -> Augment | None:
    """Build the crop-then-flip pipeline; ``None`` when it would be the identity."""
    if crop_padding < 0:
        raise ConfigError(f"crop padding must be >= 0, got {crop_padding}")
    if crop_padding == 0 and not hflip:
        return None

    def augment(x: Tensor, generator: torch.Generator) -> Tensor:
        if crop_padding:
            x = random_crop(x, crop_padding, generator)
        if hflip:
            x = random_hflip(x, generator)
        return x

    return augment
