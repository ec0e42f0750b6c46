"""``RunIf``: skip a test unless the hardware it needs is present (lightning-hydra-template style).

    @RunIf(min_gpus=1)
    def test_bf16_on_gpu(): ...

Kept to a plain ``pytest.mark.skipif`` so a GPU-less machine (CI here) skips with the reason.
"""

from __future__ import annotations

import pytest
import torch


def RunIf(min_gpus: int = 0, bf16_cuda: bool = False) -> pytest.MarkDecorator:  # noqa: N802
    reasons = []
    gpus = torch.cuda.device_count()
    if gpus < min_gpus:
        reasons.append(f"needs {min_gpus} CUDA GPU(s), found {gpus}")
    if bf16_cuda and not (gpus and torch.cuda.is_bf16_supported()):
        reasons.append("needs a CUDA GPU with bf16")
    return pytest.mark.skipif(bool(reasons), reason="; ".join(reasons) or "runs here")
