"""ShortCircuit against a hand-written backprop of the paper's Eq. 11-13 and 20.

The oracle computes every sensitivity and gradient with explicit float64 tensor algebra
(matmuls; unfold/fold for convolutions) and no autograd, so it checks the hooks rather than
re-running the same graph.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scnet.sc import ShortCircuit, plan

TOL = 1e-6


@pytest.fixture(autouse=True)
def float64():
    """The oracle comparison is done in float64; restore the global default afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# --------------------------------------------------------------------------- oracle layers
@dataclass
class DenseOp:
    """Z = a Wᵀ + b on (N, features)."""

    layer: nn.Linear

    def forward(self, a: Tensor) -> Tensor:
        return a @ self.layer.weight.T + self.layer.bias

    def backward(self, a: Tensor, delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (∂J/∂a, ∂J/∂W, ∂J/∂b) for sensitivity ``delta`` = ∂J/∂Z (Eq. 11-12)."""
        return delta @ self.layer.weight, delta.T @ a, delta.sum(0)


@dataclass
class ConvOp:
    """3×3 'same' convolution written as a matmul over unfolded patches."""

    layer: nn.Conv2d

    def forward(self, a: Tensor) -> Tensor:
        n, _, h, w = a.shape
        cols = F.unfold(a, 3, padding=1)  # (N, Cin·9, H·W)
        weight = self.layer.weight.reshape(self.layer.out_channels, -1)
        z = weight @ cols + self.layer.bias[None, :, None]
        return z.reshape(n, -1, h, w)

    def backward(self, a: Tensor, delta: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n, c, h, w = delta.shape
        cols = F.unfold(a, 3, padding=1)
        d = delta.reshape(n, c, h * w)
        weight = self.layer.weight.reshape(c, -1)
        grad_w = torch.einsum("nck,npk->cp", d, cols).reshape_as(self.layer.weight)
        grad_a = F.fold(weight.T @ d, (h, w), 3, padding=1)  # fold is unfold's adjoint
        return grad_a, grad_w, d.sum((0, 2))


class Flatten(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)


def oracle_grads(ops, x, y, connections, weight, mode):
    """Backprop by hand with SC; loss J = ½‖Z^L − y‖², tanh between layers, taps = ops.

    Returns {layer index: (∂J/∂W, ∂J/∂b)} for layers 1..L.
    """
    num = len(ops)
    inputs, zs, a = [], [], x
    for i, op in enumerate(ops, start=1):
        a = a.flatten(1) if isinstance(op, DenseOp) and a.dim() > 2 else a
        inputs.append(a)
        z = op.forward(a)
        zs.append(z)
        a = torch.tanh(z) if i < num else z

    rears_of = defaultdict(list)
    for rear, front in connections:
        rears_of[front].append(rear)
    delta_full: dict[int, Tensor] = {}
    grads = {}
    grad_a = zs[-1] - y  # ∂J/∂Z^L (linear output layer), Eq. 10
    for i in range(num, 0, -1):
        z = zs[i - 1]
        # Eq. 11 below the output layer; the output layer is linear.
        delta = grad_a if i == num else grad_a.reshape(z.shape) * (1 - torch.tanh(z) ** 2)
        sc = sum((weight * delta_full[r] for r in rears_of[i]), torch.zeros_like(delta))
        if mode == "propagate":
            delta = delta + sc  # Eq. 20: truncated Jacobian ≈ identity; flows on below
            delta_param = delta
        else:
            delta_param = delta + sc  # Eq. 13: only this layer's parameters see it
        delta_full[i] = delta
        _, grad_w, grad_b = ops[i - 1].backward(inputs[i - 1], delta_param)
        grad_a, _, _ = ops[i - 1].backward(inputs[i - 1], delta)  # what flows below: δ, not δ_param
        grads[i] = (grad_w, grad_b)
    return grads


# --------------------------------------------------------------------------- models
def make_mlp(seed: int = 0) -> tuple[nn.Sequential, list[nn.Module]]:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    dims = [6, 5, 5, 5, 5, 5, 3]
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.Tanh())
    model = nn.Sequential(*layers)
    return model, [m for m in model if isinstance(m, nn.Linear)]


def make_cnn(seed: int = 0) -> tuple[nn.Sequential, list[nn.Module]]:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(),
        nn.Conv2d(3, 3, 3, padding=1), nn.Tanh(),
        nn.Conv2d(3, 3, 3, padding=1), nn.Tanh(),
        nn.Conv2d(3, 3, 3, padding=1), nn.Tanh(),
        Flatten(), nn.Linear(3 * 4 * 4, 2),
    )  # fmt: skip
    return model, [m for m in model if isinstance(m, (nn.Conv2d, nn.Linear))]


def oracle_ops(taps):
    return [DenseOp(t) if isinstance(t, nn.Linear) else ConvOp(t) for t in taps]


def autograd_grads(model, taps, x, y, sc: ShortCircuit | None):
    model.zero_grad(set_to_none=True)
    if sc is not None:
        sc.attach()
    out = model(x)
    (0.5 * ((out - y) ** 2).sum()).backward()
    if sc is not None:
        sc.detach()
    return {i: (t.weight.grad.clone(), t.bias.grad.clone()) for i, t in enumerate(taps, start=1)}


def data_for(kind: str):
    gen = torch.Generator().manual_seed(1)
    if kind == "mlp":
        return torch.randn(4, 6, generator=gen), torch.randn(4, 3, generator=gen)
    return torch.randn(3, 2, 4, 4, generator=gen), torch.randn(3, 2, generator=gen)


MODELS = {"mlp": make_mlp, "cnn": make_cnn}
CONNECTIONS = {
    "one": [(4, 2)],
    "several": [(4, 2), (5, 3), (5, 1)],
    "chain": [(5, 3), (3, 1)],  # the rear 3 is itself a front: its δ includes 5's contribution
}


# --------------------------------------------------------------------------- gradient oracle
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("mode", ["propagate", "weight_only"])
@pytest.mark.parametrize("conn_name", list(CONNECTIONS))
def test_gradients_match_hand_written_backprop(kind, mode, conn_name):
    model, taps = MODELS[kind]()
    connections = CONNECTIONS[conn_name]
    if kind == "cnn":  # tap 5 is the classifier (another shape); keep conv-only connections
        connections = [(r, f) for r, f in connections if r <= 4] or [(4, 2)]
    x, y = data_for(kind)
    sc = ShortCircuit(taps, connections, weight=0.2, mode=mode)
    got = autograd_grads(model, taps, x, y, sc)
    with torch.no_grad():
        want = oracle_grads(oracle_ops(taps), x, y, connections, 0.2, mode)
    for i in want:
        torch.testing.assert_close(got[i][0], want[i][0], atol=TOL, rtol=0)
        torch.testing.assert_close(got[i][1], want[i][1], atol=TOL, rtol=0)


@pytest.mark.parametrize("kind", list(MODELS))
def test_oracle_without_sc_equals_plain_autograd(kind):
    """Sanity check of the oracle itself: with no connection it is ordinary backprop."""
    model, taps = MODELS[kind]()
    x, y = data_for(kind)
    got = autograd_grads(model, taps, x, y, None)
    with torch.no_grad():
        want = oracle_grads(oracle_ops(taps), x, y, [], 0.2, "propagate")
    for i in want:
        torch.testing.assert_close(got[i][0], want[i][0], atol=TOL, rtol=0)


@pytest.mark.parametrize("mode", ["propagate", "weight_only"])
def test_sc_changes_front_gradients_only_where_expected(mode):
    model, taps = make_mlp()
    x, y = data_for("mlp")
    plain = autograd_grads(model, taps, x, y, None)
    sc = autograd_grads(model, taps, x, y, ShortCircuit(taps, [(4, 2)], 0.2, mode))
    for i in (3, 4, 5, 6):  # at and above the rear, and between: untouched
        assert torch.equal(plain[i][0], sc[i][0]), i
    assert not torch.allclose(plain[2][0], sc[2][0])
    below_changed = not torch.equal(plain[1][0], sc[1][0])
    assert below_changed == (mode == "propagate")


def test_weight_zero_is_plain_backprop():
    model, taps = make_cnn()
    x, y = data_for("cnn")
    plain = autograd_grads(model, taps, x, y, None)
    sc = autograd_grads(model, taps, x, y, ShortCircuit(taps, [(4, 2)], 0.0))
    for i in plain:
        torch.testing.assert_close(plain[i][0], sc[i][0], atol=0, rtol=0)


@pytest.mark.parametrize("traceable", [False, True], ids=["hooks", "traceable"])
def test_two_forwards_before_one_backward_are_wired_separately(traceable):
    model, taps = make_mlp()
    x, y = data_for("mlp")
    sc = ShortCircuit(taps, [(4, 2)], 0.2, traceable=traceable).attach()
    model.zero_grad()
    loss = sum(0.5 * ((model(x[i::2]) - y[i::2]) ** 2).sum() for i in range(2))
    loss.backward()
    sc.detach()
    with torch.no_grad():
        want = oracle_grads(oracle_ops(taps), x, y, [(4, 2)], 0.2, "propagate")
    torch.testing.assert_close(taps[1].weight.grad, want[2][0], atol=TOL, rtol=0)


# --------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("mode", ["propagate", "weight_only"])
def test_forward_is_bit_identical(mode):
    model, taps = make_cnn()
    x, _ = data_for("cnn")
    plain = model(x)
    with ShortCircuit(taps, [(4, 2), (4, 1)], 0.5, mode):
        shorted = model(x)
    assert torch.equal(plain, shorted)


def test_detach_restores_plain_gradients_exactly():
    model, taps = make_cnn()
    x, y = data_for("cnn")
    plain = autograd_grads(model, taps, x, y, None)
    sc = ShortCircuit(taps, [(4, 2)], 0.2)
    autograd_grads(model, taps, x, y, sc)  # attaches, then detaches
    assert not sc.attached
    after = autograd_grads(model, taps, x, y, None)
    for i in plain:
        assert torch.equal(plain[i][0], after[i][0]) and torch.equal(plain[i][1], after[i][1])
    assert all(not t._forward_hooks for t in taps)


def test_no_parameters_added_and_no_references_kept():
    model, taps = make_mlp()
    before = [id(p) for p in model.parameters()]
    sc = ShortCircuit(taps, [(4, 2)], 0.2).attach()
    x, y = data_for("mlp")
    (0.5 * ((model(x) - y) ** 2).sum()).backward()
    assert [id(p) for p in model.parameters()] == before
    assert sc._pending == {}  # mailboxes are released once their rear is wired


def test_inplace_activation_after_tap_is_supported():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 4),
        nn.ReLU(inplace=True),
        nn.Linear(4, 4),
        nn.ReLU(inplace=True),
        nn.Linear(4, 4),
    )
    taps = [model[0], model[2], model[4]]
    x = torch.randn(3, 4)
    with ShortCircuit(taps, [(3, 1)], 0.2):
        model(x).sum().backward()
    assert torch.isfinite(taps[0].weight.grad).all()


def test_no_grad_forward_is_a_no_op():
    model, taps = make_mlp()
    sc = ShortCircuit(taps, [(4, 2)], 0.2).attach()
    with torch.no_grad():
        model(data_for("mlp")[0])
    assert sc._pending == {}


def test_weight_only_replays_dropout_mask_on_recompute():
    """The recomputed front sees the same dropout mask as the original forward."""
    torch.manual_seed(0)
    front = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.5))
    model = nn.Sequential(front, nn.Tanh(), nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 5))
    taps = [front, model[2], model[4]]
    x = torch.randn(8, 5)

    # δ_sc at tap 3 (the output) is out − 0 for J = ½‖out‖²; with weight_only it is unchanged.
    torch.manual_seed(123)
    model.zero_grad(set_to_none=True)
    out = model(x)
    (0.5 * (out**2).sum()).backward()
    plain = front[0].weight.grad.clone()
    delta_sc = out.detach()

    torch.manual_seed(123)
    model.zero_grad(set_to_none=True)
    with ShortCircuit(taps, [(3, 1)], 0.2, "weight_only"):
        (0.5 * (model(x) ** 2).sum()).backward()
    got = front[0].weight.grad.clone()

    torch.manual_seed(123)
    mask_out = front(x)  # same RNG state as the original forward -> same mask
    (extra,) = torch.autograd.grad(mask_out, [front[0].weight], 0.2 * delta_sc)
    torch.testing.assert_close(got, plain + extra, atol=TOL, rtol=0)


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"connections": [(7, 2)]}, "out of range"),
        ({"connections": [(4, 0)]}, "out of range"),
        ({"connections": [(2, 2)]}, "front must be < rear"),
        ({"connections": [(2, 4)]}, "front must be < rear"),
        ({"connections": []}, "no connections"),
        ({"connections": [(4, 2)], "weight": -0.1}, "sc.weight"),
        ({"connections": [(4, 2)], "weight": math.nan}, "sc.weight"),
        ({"connections": [(4, 2)], "weight": math.inf}, "sc.weight"),
        ({"connections": [(4, 2)], "mode": "sideways"}, "sc.mode"),
    ],
)
def test_invalid_construction_raises(kwargs, match):
    _, taps = make_mlp()
    with pytest.raises(ValueError, match=match):
        ShortCircuit(taps, **kwargs)


def test_shape_mismatch_raises_at_first_forward_naming_both_taps():
    model, taps = make_mlp()
    x, _ = data_for("mlp")
    with (
        ShortCircuit(taps, [(6, 2)], 0.2),
        pytest.raises(ValueError, match=r"rear=6, front=2.*\(4, 3\).*\(4, 5\)"),
    ):
        model(x)


# --------------------------------------------------------------------------- planner
RESNET20_SHAPES = [(16, 32, 32)] * 7 + [(32, 16, 16)] * 6 + [(64, 8, 8)] * 6


def test_plan_multi_gives_one_rear_per_stage():
    got = plan(RESNET20_SHAPES, k=2, strategy="multi")
    assert got == [
        (7, 2),
        (7, 4),
        (7, 6),
        (13, 8),
        (13, 10),
        (13, 12),
        (19, 14),
        (19, 16),
        (19, 18),
    ]


def test_plan_single_uses_last_tap_and_equal_shapes_only():
    assert plan(RESNET20_SHAPES, k=2, strategy="single") == [(19, 14), (19, 16), (19, 18)]
    assert plan(RESNET20_SHAPES, k=3, strategy="single", rear=7) == [(7, 3), (7, 6)]


def test_plan_paper_fig5_fcn():
    shapes = [(100,)] * 4 + [(10,)]
    assert plan(shapes, k=2, strategy="single", rear=4) == [(4, 2)]


def test_plan_multi_with_rear_bound():
    assert plan(RESNET20_SHAPES, k=4, strategy="multi", rear=13) == [(7, 4), (13, 8), (13, 12)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "sc.k"),
        ({"k": -2}, "sc.k"),
        ({"k": 2, "strategy": "dense"}, "sc.strategy"),
        ({"k": 2, "rear": 20}, "sc.rear"),
        ({"k": 2, "rear": 0}, "sc.rear"),
        ({"k": 40}, "no front tap"),
    ],
)
def test_plan_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plan(RESNET20_SHAPES, **kwargs)


# --------------------------------------------------------------------------- traceable wiring
# The differentiable identity (what torch.compile traces; tests/test_sc_compile.py compiles it)
# run eagerly against the same float64 oracle and invariants as the hooks.
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("conn_name", list(CONNECTIONS))
def test_traceable_identity_matches_hand_written_backprop(kind, conn_name):
    model, taps = MODELS[kind]()
    connections = CONNECTIONS[conn_name]
    if kind == "cnn":
        connections = [(r, f) for r, f in connections if r <= 4] or [(4, 2)]
    x, y = data_for(kind)
    got = autograd_grads(model, taps, x, y, ShortCircuit(taps, connections, 0.2, traceable=True))
    with torch.no_grad():
        want = oracle_grads(oracle_ops(taps), x, y, connections, 0.2, "propagate")
    for i in want:
        torch.testing.assert_close(got[i][0], want[i][0], atol=TOL, rtol=0)
        torch.testing.assert_close(got[i][1], want[i][1], atol=TOL, rtol=0)


def test_traceable_identity_forward_bit_identical_and_detach_restores_plain():
    model, taps = make_cnn()
    x, y = data_for("cnn")
    plain_out = model(x)
    plain = autograd_grads(model, taps, x, y, None)
    sc = ShortCircuit(taps, [(4, 2), (4, 1)], 0.5, traceable=True)
    with sc:
        assert torch.equal(model(x), plain_out)
    autograd_grads(model, taps, x, y, sc)
    after = autograd_grads(model, taps, x, y, None)
    for i in plain:
        assert torch.equal(plain[i][0], after[i][0]) and torch.equal(plain[i][1], after[i][1])
    assert sc._pending == {} and all(not t._forward_hooks for t in taps)


@pytest.mark.parametrize("where", ["front", "rear"])
def test_traceable_identity_equals_hooks_with_inplace_activation(where):
    """In-place ops after a tap: the SC still enters at the tap's own output ``Z^f`` (the ghost),
    exactly where the hooks put it, and an in-place op after a rear does not raise."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 4), nn.ReLU(inplace=True),
        nn.Linear(4, 4), nn.ReLU(inplace=True), nn.Linear(4, 4),
    )  # fmt: skip
    taps = [model[0], model[2], model[4], model[6]]
    pair = [(3, 1)] if where == "front" else [(3, 1), (4, 3)]
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))

    def grads(traceable: bool | None) -> list[Tensor]:
        model.zero_grad(set_to_none=True)
        if traceable is None:
            model(x).square().sum().backward()
        else:
            with ShortCircuit(taps, pair, 0.3, traceable=traceable):
                model(x).square().sum().backward()
        return [t.weight.grad.clone() for t in taps]

    plain, hooks, identity = grads(None), grads(False), grads(True)
    assert not torch.allclose(plain[0], hooks[0])
    for a, b in zip(hooks, identity, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_traceable_weight_only_is_refused_in_one_line():
    _, taps = make_mlp()
    with pytest.raises(ValueError, match=r"sc.mode=weight_only cannot be compiled.*propagate"):
        ShortCircuit(taps, [(4, 2)], 0.2, "weight_only", traceable=True)
    eager = ShortCircuit(taps, [(4, 2)], 0.2, "weight_only")  # eager weight_only: fine
    with pytest.raises(ValueError, match="weight_only"):
        eager.check_compilable()
