"""Checkpoints written atomically in their own folder (see :mod:`scnet.utils.io` for why)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from scnet.utils.io import atomic_write_bytes


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to memory, then temp file beside the target, fsync, rename.

    A failed write (full disk, quota, kill) leaves the previous ``last.ckpt``/``best.ckpt``
    intact and no temp file behind.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getbuffer())
