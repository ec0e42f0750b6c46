"""Seed 003 (Oyedotun et al.): very deep nets *without* skip connections, and their recipe.

Each of ``depth − 1`` hidden layers is ``Linear`` (``kind: mlp``) or ``Conv3x3``
(``kind: cnn``), then optional batch norm, then a leaky ReLU with slope ``beta`` (their
Eq. 1; ``beta = 0`` is the plain ReLU), and a final ``Linear`` to the classes (the CNN
global-average-pools first). The three components of their recipe are switches:

* ``batch_norm``: BatchNorm after every hidden layer;
* ``beta``: the leaky-ReLU slope (their Eq. 1);
* ``max_norm``: ``c`` of the max-norm constraint ``‖w_j‖ ≤ c`` on every unit's incoming
  weight vector (their Eq. 2), enforced by :meth:`PlainNet.after_optimizer_step` after every
  optimizer step (``scnet.lit.backbone_hooks`` calls it); ``null`` disables it;

The seed gives neither β nor c, so the defaults are measured (``docs/gradient_lab.md``):
with batch norm, a 100-layer net's first/last weight-gradient ratio at init is 6e7 at
β = 0.01, 1e5 at 0.2, 86 at 0.5 and 4.7 at 0.7, and only β = 0.7 trains on digits (0.96).
The uniform init gives every hidden row ``‖w_j‖ ≈ √2`` (max 1.69), so ``c = 1`` binds from
the first step while a bound ≥ 1.7 never acts (and would make the max-norm ablation rows
duplicates of their twins).
* ``init: uniform``: weights from ``U[−√(6/n_in), √(6/n_in)]`` (their Eq. 3), biases 0;
  ``init: default`` keeps PyTorch's.

Their diagnostic of near-singular hidden representations, the condition number of each
layer's (samples × units) activation matrix, is ``condition.enabled=true``
(:mod:`scnet.lit.condition`), which reads :meth:`PlainNet.hidden`.
Taps: every Linear/Conv (pre-activations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from scnet.errors import ConfigError

KINDS = ("mlp", "cnn")
INITS = ("uniform", "default")


class PlainNet(nn.Module):
    """A deep plain net with the BN / leaky-ReLU / max-norm / uniform-init switches."""

    def __init__(
        self,
        depth: int = 100,
        width: int = 50,
        kind: str = "mlp",
        batch_norm: bool = True,
        beta: float = 0.7,
        max_norm: float | None = 1.0,
        init: str = "uniform",
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 16, 16),
    ) -> None:
        super().__init__()
        _check(kind, depth, beta, max_norm, init)
        self.kind = kind
        self.max_norm = None if max_norm is None else float(max_norm)
        shape = [int(s) for s in input_shape]
        in_dim = math.prod(shape) if kind == "mlp" else shape[0]
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(depth - 1):
            n_in = in_dim if i == 0 else width
            if kind == "mlp":
                self.layers.append(nn.Linear(n_in, width))
                norm: nn.Module = nn.BatchNorm1d(width) if batch_norm else nn.Identity()
            else:
                self.layers.append(nn.Conv2d(n_in, width, 3, padding=1))
                norm = nn.BatchNorm2d(width) if batch_norm else nn.Identity()
            self.norms.append(norm)
        self.act = nn.LeakyReLU(beta) if beta > 0 else nn.ReLU()
        self.head = nn.Linear(width if depth > 1 else in_dim, num_classes)
        if init == "uniform":
            self.apply(_uniform_init)
        self.after_optimizer_step()  # the constraint holds from the first forward on

    def hidden(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-activation output of every hidden layer."""
        h = x.flatten(1) if self.kind == "mlp" else x
        out = []
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = self.act(norm(layer(h)))
            out.append(h)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hs = self.hidden(x)
        h = hs[-1] if hs else (x.flatten(1) if self.kind == "mlp" else x)
        if self.kind == "cnn":
            h = h.mean(dim=(2, 3))
        return self.head(h)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Project every unit's incoming weights onto the ball ``‖w_j‖ ≤ c`` (max-norm)."""
        if self.max_norm is None:
            return
        for layer in [*self.layers, self.head]:
            w = layer.weight
            norms = w.flatten(1).norm(dim=1).clamp_min(1e-12)
            scale = (self.max_norm / norms).clamp(max=1.0)
            w.mul_(scale.view(-1, *([1] * (w.dim() - 1))))

    def sc_taps(self) -> list[nn.Module]:
        return [*self.layers, self.head]


def _uniform_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        bound = math.sqrt(6.0 / (module.weight[0].numel()))  # n_in = fan-in of one unit
        nn.init.uniform_(module.weight, -bound, bound)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _check(kind: str, depth: int, beta: float, max_norm: float | None, init: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"backbone.kind={kind!r} is invalid for plainnet: choose mlp or cnn")
    if not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth={depth} is invalid for backbone=plainnet: must be >= 1")
    if not 0.0 <= beta < 1.0:
        raise ConfigError(f"backbone.beta={beta} is invalid for plainnet: must be in [0, 1)")
    if max_norm is not None and not max_norm > 0:
        raise ConfigError(f"backbone.max_norm={max_norm} is invalid: must be > 0 or null")
    if init not in INITS:
        raise ConfigError(
            f"backbone.init={init!r} is invalid for plainnet: choose uniform or default"
        )
