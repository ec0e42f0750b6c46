"""Seed 004 (Habiba & Pearlmutter): a layered net with gated "wormhole" connections from a
later layer back to an earlier one, run to a fixed point and trained by implicit gradients.

State ``z = (h_1, …, h_L)``; one application of the network map ``f`` is

    h_1 = tanh(W_1 e + g ⊙ (U h_L)),   g = sigmoid(V h_L + b_g),   h_l = tanh(W_l h_{l−1}),

with ``e = act(encoder(x))`` and ``h_L`` taken from the previous iterate. ``b_g`` starts
negative (``gate_bias``), so the wormhole is nearly closed and most inputs settle in a few
iterations; inputs that open the gate take longer ("easy inputs settle faster").

Forward: ``z* = f(z*)`` by fixed-point iteration from ``z = 0`` without building a graph,
until the per-input relative residual ``‖f(z) − z‖ / (‖f(z)‖ + 1e-8)`` is ≤ ``tol`` or
``max_iter`` is reached. Backward: **implicit differentiation**, not backprop through the
iterations. With ``J = ∂f/∂z`` at ``z*``, ``dL/dθ = yᵀ ∂f/∂θ`` where ``y`` solves the adjoint
fixed point ``y = Jᵀ y + dL/dz*``; a gradient hook iterates that with vector–Jacobian
products (the DEQ recipe of Bai et al., 2019). Memory is one application of ``f``.

Non-convergence (forward or adjoint) is never silent: ``on_nonconvergence: warn`` issues a
``FixedPointWarning`` and the fraction of non-converged inputs is logged
(``train/fp_nonconverged``); ``error`` raises :class:`FixedPointError`. Iterations per input
are logged as ``train/fp_iters`` (mean) and ``train/fp_iters_max``.

The input is flattened, so sequences (adding problem, pixel digits) are one vector.
Taps: the encoder, the fixed-point core (its output is ``h_L*``), a width→width readout
(all three of equal width, so short circuits can join them), the head.
(torchdeq 0.1.0 was inspected; this ~100-line solver is kept so non-convergence reporting,
per-input iteration counts and float64 exactness are under our control.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from scnet.errors import ConfigError

POLICIES = ("warn", "error")


class FixedPointError(RuntimeError):
    """The fixed-point (or adjoint) iteration did not converge and the config says fail."""


class FixedPointWarning(UserWarning):
    """The fixed-point (or adjoint) iteration hit ``max_iter`` before ``tol``."""


def fixed_point(
    fn: Callable[[Tensor], Tensor], z0: Tensor, tol: float, max_iter: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Iterate ``z ← fn(z)``; return ``(z, iterations per input, converged per input)``.

    Inputs that have converged are frozen (their iteration count stops), so the count is
    per input; the loop ends when all have converged or at ``max_iter``.
    """
    z = z0
    n = z0.shape[0]
    iters = torch.zeros(n, dtype=torch.long, device=z0.device)
    done = torch.zeros(n, dtype=torch.bool, device=z0.device)
    for _ in range(max_iter):
        new = fn(z)
        diff = (new - z).flatten(1).norm(dim=1)
        scale = new.flatten(1).norm(dim=1) + 1e-8
        iters += (~done).long()
        z = torch.where(done.view(-1, *([1] * (z.dim() - 1))), z, new)
        done |= diff / scale <= tol
        if bool(done.all()):
            break
    return z, iters, done


class FixedPointCore(nn.Module):
    """The gated later→earlier layered map and its implicit-gradient fixed-point solve."""

    def __init__(
        self, width: int, layers: int, gate_bias: float, tol: float, max_iter: int, policy: str
    ) -> None:
        super().__init__()
        self.width, self.n_layers = width, layers
        self.tol, self.max_iter, self.policy = tol, max_iter, policy
        self.forward_layers = nn.ModuleList(nn.Linear(width, width) for _ in range(layers))
        self.wormhole = nn.Linear(width, width, bias=False)  # U: h_L -> layer 1
        self.gate = nn.Linear(width, width)  # V, b_g
        nn.init.constant_(self.gate.bias, gate_bias)
        self.stats: dict[str, float] = {}

    def step(self, z: Tensor, e: Tensor) -> Tensor:
        """One application of the network map ``f(z; e)``; ``z`` is ``(N, L, width)``."""
        last = z[:, -1]
        g = torch.sigmoid(self.gate(last))
        h = torch.tanh(self.forward_layers[0](e) + g * self.wormhole(last))
        hs = [h]
        for layer in self.forward_layers[1:]:
            h = torch.tanh(layer(h))
            hs.append(h)
        return torch.stack(hs, dim=1)

    def forward(self, e: Tensor) -> Tensor:
        z0 = e.new_zeros(e.shape[0], self.n_layers, self.width)
        with torch.no_grad():
            z_star, iters, done = fixed_point(
                lambda z: self.step(z, e), z0, self.tol, self.max_iter
            )
        self._report("forward", iters, done)
        if not torch.is_grad_enabled():
            return z_star[:, -1]
        z = self.step(z_star, e)  # one step with a graph to the parameters and e
        if z.requires_grad:
            z_ref = z.detach().requires_grad_()
            with torch.enable_grad():
                f_ref = self.step(z_ref, e.detach())
            z.register_hook(self._adjoint_hook(z_ref, f_ref))
        return z[:, -1]

    def _adjoint_hook(self, z_ref: Tensor, f_ref: Tensor) -> Callable[[Tensor], Tensor]:
        def solve(grad: Tensor) -> Tensor:
            def vjp(y: Tensor) -> Tensor:
                (jt_y,) = torch.autograd.grad(f_ref, z_ref, y, retain_graph=True)
                return jt_y + grad

            y, iters, done = fixed_point(vjp, grad, self.tol, self.max_iter)
            self._report("adjoint", iters, done)
            return y

        return solve

    def _report(self, which: str, iters: Tensor, done: Tensor) -> None:
        prefix = "fp" if which == "forward" else "fp_adjoint"
        self.stats[f"{prefix}_iters"] = float(iters.float().mean())
        self.stats[f"{prefix}_iters_max"] = float(iters.max())
        failed = float((~done).float().mean())
        self.stats[f"{prefix}_nonconverged"] = failed
        if failed > 0:
            message = (
                f"{which} fixed point did not converge for {failed:.1%} of inputs "
                f"(tol={self.tol}, max_iter={self.max_iter})"
            )
            if self.policy == "error":
                raise FixedPointError(message)
            warnings.warn(message, FixedPointWarning, stacklevel=3)


class FixedPointNet(nn.Module):
    """Encoder → fixed-point core (``layers`` gated layers of ``width``) → linear head."""

    def __init__(
        self,
        width: int = 64,
        layers: int = 4,
        gate_bias: float = -3.0,
        tol: float = 1e-4,
        max_iter: int = 50,
        on_nonconvergence: str = "warn",
        num_classes: int = 10,
        input_shape: Sequence[int] = (1, 8, 8),
    ) -> None:
        super().__init__()
        if on_nonconvergence not in POLICIES:
            raise ConfigError(
                f"backbone.on_nonconvergence={on_nonconvergence!r} is invalid: choose warn or error"
            )
        if not isinstance(max_iter, int) or max_iter < 1 or not tol > 0:
            raise ConfigError(
                f"backbone.max_iter={max_iter}, tol={tol}: need max_iter >= 1, tol > 0"
            )
        if not isinstance(layers, int) or layers < 1:
            raise ConfigError(f"backbone.layers={layers} is invalid for fixedpoint: must be >= 1")
        self.encoder = nn.Linear(math.prod(int(s) for s in input_shape), width)
        self.core = FixedPointCore(width, layers, gate_bias, tol, max_iter, on_nonconvergence)
        # A width->width readout gives the short circuit a rear tap of the core's shape.
        self.readout = nn.Linear(width, width)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        e = torch.tanh(self.encoder(x.flatten(1)))
        return self.head(torch.tanh(self.readout(self.core(e))))

    def step_metrics(self) -> dict[str, float]:
        """Iterations per input and non-converged fractions of the last forward/backward."""
        return dict(self.core.stats)

    def sc_taps(self) -> list[nn.Module]:
        return [self.encoder, self.core, self.readout, self.head]
