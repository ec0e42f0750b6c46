"""The short circuit (SC): a backward-only connection from a deep layer to shallower ones.

Source: "Deep Neural Networks with Short Circuits for Improved Gradient Learning",
Sections 3.1-3.3, Algorithm 1, Eq. 11-13 and 20 (``shared/seeds/000_*.txt``).

Notation (paper, Table 1): ``Z^l = W^l a^{l-1} (+ b^l)`` is the output of layer ``l`` (a *tap*),
``δ^l = ∂J/∂Z^l`` its sensitivity (Eq. 10-11). A connection ``(r, f)`` joins a *rear* tap ``r``
to a *front* tap ``f < r`` of the same output shape (the two preconditions of Section 3.3).
``δ_sc = ∂J/∂Z^r`` is the full sensitivity arriving at the rear, and ``w`` the SC weight.

Two readings of the paper ship, both checked against a hand-written backprop oracle:

``propagate`` (default; Eq. 20, Fig. 1)
    The Jacobian product between ``f`` and ``r`` is truncated to the identity, so the front's
    sensitivity becomes ``δ^f + w·δ_sc`` and this augmented sensitivity flows on to every
    layer below ``f``.

``weight_only`` (Algorithm 1 and Eq. 13 read literally)
    Only the front layer's own parameters see the extra term:
    ``∂J/∂W^f = (δ^f + w·δ_sc)·a^{f-1}ᵀ`` (and ``∂J/∂b^f`` gains ``w·Σδ_sc``); the sensitivity
    passed below ``f`` is unchanged.

Forward values are never touched (the forward hooks only register gradient hooks), so the
forward pass costs nothing extra and the model gains no parameters. In backward, ``propagate``
costs one fused multiply-add per connection; ``weight_only`` recomputes the front layer once
to get its parameter-only vector-Jacobian product.

Two wirings of ``propagate``, same numbers (``docs/method.md``):

* **hooks** (eager default): the rear's tensor gradient hook posts ``δ_sc`` to a mailbox and
  the front's hook adds ``w·δ_sc`` with one fused ``add``. Compilers cannot follow this:
  TorchDynamo drops tensor hooks registered on intermediates (the SC silently vanished).
* **differentiable identity** (used while ``torch.compile`` traces, or with
  ``traceable=True``): at the front, :class:`_FrontTap` returns the front output itself plus
  a *ghost* (a 0-stride expand of an empty scalar: no data, no arithmetic) that stands for
  the front's pre-activation ``Z^f``; at the rear, :class:`_ShortCircuitIdentity` returns the
  rear output itself and in backward sends ``grad`` to the rear and ``w·grad`` to each ghost,
  which ``_FrontTap`` adds to ``δ^f``. Both mark their input dirty instead of returning an
  alias, so later in-place ops (``ReLU(inplace=True)``) and tuple outputs (BERT layers) keep
  working, and the ghost keeps ``w·δ_sc`` entering at ``Z^f`` even when ``Z^f`` is later
  modified in place. Ordinary autograd edges: correct across graph breaks, DDP and several
  forwards before one backward.

``weight_only`` is refused under compile by scnet-run (``check_compilable``): Eq. 13 needs the
front layer's parameter-only VJP, which the hooks get by recomputing the front inside
backward; a traceable identity on tap outputs cannot split ``δ`` between a layer's
parameters and its input, and recomputing the front in the compiled forward would add the
FLOPs that compiling is meant to save. It is an ablation (1.34x eager by design); run it
eager. Its hooks are ``torch.compiler.disable``-d, so a direct ``torch.compile`` still gets
eager-exact gradients, at the price of a graph break at each tap.

Usage::

    sc = ShortCircuit(model.sc_taps(), connections=[(4, 2)], weight=0.2).attach()
    ...                       # train as usual
    sc.detach()               # the plain backbone again; ``with sc:`` works too
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

# Dynamo does not guard on nn.Module hooks by default, so a graph compiled for a backbone
# without SC hooks was silently reused for an instance with them (and after detach() the SC
# stayed): measured, compiled SC gradients equal to the plain net's. The SC lives in forward
# hooks, so scnet has Dynamo guard on them (a recompile when hooks change; C++ guard checks).
torch._dynamo.config.skip_nnmodule_hook_guards = False

MODES = ("propagate", "weight_only")
STRATEGIES = ("single", "multi")
Connection = tuple[int, int]  # (rear, front), 1-based tap indices in forward order


def plan(
    shapes: Sequence[Sequence[int]],
    k: int,
    strategy: str = "multi",
    rear: int | None = None,
) -> list[Connection]:
    """Choose SC connections by Algorithm 1: fronts ``{l : l mod k = 0, l < r, shape(l) = shape(r)}``.

    Args:
        shapes: output shape of each tap (batch dimension excluded), taps numbered 1..L.
        k: the gap of Algorithm 1; every k-th tap below the rear is a front.
        strategy: ``single`` uses one rear (``rear``, default the last tap); ``multi`` uses one
            rear per group of equal-shaped taps (the last tap of each group, e.g. each ResNet
            stage), restricted to taps ``<= rear`` when ``rear`` is given.
        rear: the rear tap for ``single``; an upper bound on the rears for ``multi``.

    Returns:
        ``(rear, front)`` pairs sorted by rear, then front.

    Raises:
        ValueError: bad ``k``, ``strategy`` or ``rear``, or no connection satisfies the rule.
    """
    num_taps = len(shapes)
    if num_taps < 2:
        raise ValueError(f"sc: the backbone declares {num_taps} tap(s); a short circuit needs 2")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"sc.k={k!r} is invalid: k must be an integer >= 1")
    if strategy not in STRATEGIES:
        raise ValueError(
            f"sc.strategy={strategy!r} is invalid: choose one of {', '.join(STRATEGIES)}"
        )
    if rear is not None and (
        isinstance(rear, bool) or not isinstance(rear, int) or not 1 <= rear <= num_taps
    ):
        raise ValueError(f"sc.rear={rear!r} is out of range: taps are numbered 1..{num_taps}")

    shapes = [tuple(s) for s in shapes]
    if strategy == "single":
        rears = [rear or num_taps]
    else:
        last_of_group: dict[tuple[int, ...], int] = {}
        for index, shape in enumerate(shapes[: rear or num_taps], start=1):
            last_of_group[shape] = index
        rears = sorted(last_of_group.values())

    connections = [
        (r, f) for r in rears for f in range(1, r) if f % k == 0 and shapes[f - 1] == shapes[r - 1]
    ]
    if not connections:
        raise ValueError(
            f"sc: no front tap satisfies Algorithm 1 for strategy={strategy}, k={k}, rear={rear} "
            f"(fronts need l mod k = 0, l < rear and the rear's shape); try a smaller sc.k"
        )
    return connections


def validate_connections(connections: Sequence[Sequence[int]], num_taps: int) -> list[Connection]:
    """Check ``(rear, front)`` pairs against L taps; returns them de-duplicated and sorted."""
    checked: list[Connection] = []
    for pair in connections:
        if len(pair) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in pair):
            raise ValueError(f"sc connection {pair!r} is invalid: expected [rear, front] integers")
        rear, front = int(pair[0]), int(pair[1])
        if not (1 <= front <= num_taps and 1 <= rear <= num_taps):
            raise ValueError(
                f"sc connection (rear={rear}, front={front}) is out of range: taps are numbered 1..{num_taps}"
            )
        if front >= rear:
            raise ValueError(
                f"sc connection (rear={rear}, front={front}) is invalid: front must be < rear"
            )
        if (rear, front) not in checked:
            checked.append((rear, front))
    if not checked:
        raise ValueError("sc: no connections given")
    return sorted(checked)


@dataclass
class _Mailbox:
    """Carries rear sensitivities to one front output of one forward pass.

    The rear's gradient hook drops ``δ_sc`` here; the front's gradient hook (which autograd runs
    later, because the rear depends on the front) picks it up. One mailbox per front per
    forward pass, so several forwards before one backward stay correctly wired.
    """

    shape: torch.Size
    deltas: list[Tensor] = field(default_factory=list)
    # weight_only: what is needed to recompute the front layer for its parameter-only VJP.
    module: nn.Module | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    rng_state: tuple[Tensor, Tensor | None] | None = None


WEIGHT_ONLY_COMPILE_ERROR = (
    "sc.mode=weight_only cannot be compiled (its Eq. 13 recompute of each front runs inside "
    "backward); use sc.mode=propagate or compile=false"
)


class _FrontTap(torch.autograd.Function):
    """Identity on a front output ``Z^f`` that also returns a *ghost* handle for its rear(s).

    Forward: ``Z^f`` itself (marked dirty: same tensor object, history rebased onto this
    node, no copy) and a ghost, ``expand`` of an uninitialised scalar to ``Z^f``'s shape (no
    data is read or written). Backward: ``δ^f + Σ w·δ_sc``, the ghost's gradient being what the
    rears sent, so the SC enters exactly at ``Z^f`` even if ``Z^f`` is later changed in place.
    """

    @staticmethod
    def forward(ctx: Any, front: Tensor) -> tuple[Tensor, Tensor]:
        ctx.mark_dirty(front)
        ghost = front.new_empty(()).expand(front.shape)
        return front, ghost

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None, sc_grad: Tensor | None) -> Tensor | None:
        if sc_grad is None:
            return grad
        return sc_grad if grad is None else grad + sc_grad  # Eq. 20: δ^f + w·δ_sc


class _ShortCircuitIdentity(torch.autograd.Function):
    """The SC at a rear tap as a differentiable identity (Eq. 20).

    Forward: the rear output unchanged (marked dirty: no alias, no copy, no arithmetic).
    Backward: ``grad`` (= δ_sc, the full sensitivity at the rear) to the rear, and ``w·grad``
    to each front's ghost (one multiply per rear, shared by its fronts).
    """

    @staticmethod
    def forward(ctx: Any, weight: float, rear: Tensor, *ghosts: Tensor) -> Tensor:
        ctx.weight = weight
        ctx.num_fronts = len(ghosts)
        ctx.mark_dirty(rear)
        return rear

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        scaled = grad * ctx.weight
        return (None, grad, *([scaled] * ctx.num_fronts))


def _primary(output: Any) -> Tensor | None:
    """The tensor an SC endpoint refers to: the output itself, or its first element."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    return None


def _detached(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(_detached(v) for v in value)
    if isinstance(value, dict):
        return {key: _detached(v) for key, v in value.items()}
    return value


def _has_dropout(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in module.modules())


def _device_of(module: nn.Module) -> torch.device:
    param = next(module.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _capture_rng(device: torch.device) -> tuple[Tensor, Tensor | None]:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


@contextmanager
def _replayed_rng(
    state: tuple[Tensor, Tensor | None] | None, device: torch.device
) -> Iterator[None]:
    """Replays the RNG state of the original forward so dropout masks match on recompute."""
    if state is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


class ShortCircuit:
    """Backward-only connections between taps of a model (see the module docstring).

    Args:
        taps: the modules whose outputs are SC endpoints, in forward order (tap 1 first);
            usually ``model.sc_taps()``.
        connections: ``(rear, front)`` pairs of 1-based tap indices, ``1 <= front < rear <= L``.
        weight: the SC weight ``w >= 0`` (paper default 0.2; Fig. 8 studies 0.1/0.2/0.5).
        mode: ``propagate`` or ``weight_only``.
        traceable: wire ``propagate`` with the differentiable identity in eager mode too
            (default: hooks in eager, the identity while ``torch.compile`` traces).

    Raises:
        ValueError: at construction for invalid indices, ``front >= rear``, a negative or
            non-finite weight or an unknown mode; at the first forward when a rear's output
            shape differs from its front's (naming both taps and shapes).
    """

    def __init__(
        self,
        taps: Sequence[nn.Module],
        connections: Sequence[Sequence[int]],
        weight: float = 0.2,
        mode: str = "propagate",
        traceable: bool = False,
    ) -> None:
        self.taps = list(taps)
        self.traceable = bool(traceable)
        self.weight = self._check_weight(weight)
        if mode not in MODES:
            raise ValueError(f"sc.mode={mode!r} is invalid: choose one of {', '.join(MODES)}")
        self.mode = mode
        self.connections = validate_connections(connections, len(self.taps))
        if self.traceable:
            self.check_compilable()
        self._fronts_of: dict[int, list[int]] = defaultdict(list)
        self._last_rear_of: dict[int, int] = {}
        for rear, front in self.connections:
            self._fronts_of[rear].append(front)
            self._last_rear_of[front] = max(rear, self._last_rear_of.get(front, 0))
        # Per front, this forward pass's record: a mailbox (hooks) or a ghost tensor (identity).
        self._pending: dict[int, _Mailbox | Tensor] = {}
        self._rng_before: dict[int, tuple[Tensor, Tensor | None]] = {}
        self._handles: list[Any] = []
        # True while weight_only recomputes a front: its forward hook must not wire that pass
        # (it would park a mailbox holding the front's input until the next step).
        self._recomputing = False

    # -- validation -----------------------------------------------------------------------
    @staticmethod
    def _check_weight(weight: float) -> float:
        try:
            value = float(weight)
        except (TypeError, ValueError):
            raise ValueError(
                f"sc.weight={weight!r} is invalid: must be a finite number >= 0"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"sc.weight={weight!r} is invalid: must be a finite number >= 0")
        return value

    def check_compilable(self) -> None:
        """Raise ValueError (one line) when this SC cannot run under ``torch.compile``."""
        if self.mode == "weight_only":
            raise ValueError(WEIGHT_ONLY_COMPILE_ERROR)

    # -- lifecycle ------------------------------------------------------------------------
    def attach(self) -> ShortCircuit:
        """Install forward hooks on the taps that take part in a connection. Returns ``self``."""
        if self._handles:
            return self
        involved = {i for pair in self.connections for i in pair}
        for index in sorted(involved):
            tap = self.taps[index - 1]
            pre_hook, hook = self._make_rng_hook(index), self._make_forward_hook(index)
            if self.mode == "weight_only":
                # Its Eq. 13 recompute needs tensor hooks, which Dynamo drops from compiled
                # graphs: these hooks always run eagerly (under torch.compile, a graph break
                # at each tap and eager-exact gradients; scnet-run refuses it: check_compilable).
                pre_hook, hook = torch.compiler.disable(pre_hook), torch.compiler.disable(hook)
            if self.mode == "weight_only" and index in self._last_rear_of and _has_dropout(tap):
                self._handles.append(tap.register_forward_pre_hook(pre_hook))
            self._handles.append(tap.register_forward_hook(hook, with_kwargs=True))
        return self

    def detach(self) -> None:
        """Remove every hook: the model is the plain backbone again."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._pending.clear()
        self._rng_before.clear()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> ShortCircuit:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        pairs = ", ".join(f"{r}->{f}" for r, f in self.connections)
        return f"ShortCircuit([{pairs}], weight={self.weight}, mode={self.mode})"

    # -- forward: wire this pass's mailboxes -------------------------------------------------
    def _make_rng_hook(self, index: int):
        def hook(module: nn.Module, args: tuple) -> None:
            # Taken *before* the front runs, so a weight_only recompute draws the same dropout mask.
            if module.training and torch.is_grad_enabled() and not self._recomputing:
                self._rng_before[index] = _capture_rng(_device_of(module))

        return hook

    def _make_forward_hook(self, index: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
            out = _primary(output)
            # No graph, no backward: nothing to wire (eval, no_grad, frozen prefix).
            if self._recomputing or out is None or not torch.is_grad_enabled():
                return
            if not out.requires_grad:
                return
            # weight_only never gets here while tracing (its hooks are compiler-disabled).
            tracing = self.traceable or torch.compiler.is_compiling()
            records = self._collect_fronts(index, out)
            ghosts = [r for r in records if isinstance(r, Tensor)]
            outboxes = [r for r in records if isinstance(r, _Mailbox)]
            if ghosts:  # fronts wired by the identity (compiled, or across a graph break)
                _ShortCircuitIdentity.apply(self.weight, out, *ghosts)
            if tracing and not outboxes:
                if index in self._last_rear_of:
                    self._pending[index] = _FrontTap.apply(out)[1]
            elif tracing:  # a front ran eagerly (graph break before it): hooks, run eagerly
                torch.compiler.disable(self._wire_hooks)(index, module, args, kwargs, out, outboxes)
            else:
                self._wire_hooks(index, module, args, kwargs, out, outboxes)

        return hook

    def _wire_hooks(
        self,
        index: int,
        module: nn.Module,
        args: tuple,
        kwargs: dict,
        out: Tensor,
        outboxes: list[_Mailbox],
    ) -> None:
        inbox = (
            self._open_mailbox(index, module, args, kwargs, out)
            if index in self._last_rear_of
            else None
        )
        out.register_hook(self._make_grad_hook(inbox, outboxes))

    def _open_mailbox(
        self, index: int, module: nn.Module, args: tuple, kwargs: dict, out: Tensor
    ) -> _Mailbox:
        box = _Mailbox(shape=out.shape)
        if self.mode == "weight_only":
            box.module, box.args, box.kwargs = module, _detached(args), _detached(kwargs)
            box.rng_state = self._rng_before.pop(index, None)
        self._pending[index] = box
        return box

    def _collect_fronts(self, rear: int, out: Tensor) -> list[_Mailbox | Tensor]:
        boxes: list[_Mailbox | Tensor] = []
        for front in self._fronts_of.get(rear, ()):
            box = self._pending.get(front)
            if box is None:
                # The front did not run (or ran without grad) in this pass: δ_sc has nowhere to go.
                continue
            if box.shape != out.shape:
                raise ValueError(
                    f"sc connection (rear={rear}, front={front}): shapes differ, tap {rear} outputs "
                    f"{tuple(out.shape)} but tap {front} outputs {tuple(box.shape)}; a short circuit "
                    "needs equal shapes (paper, Section 3.3)"
                )
            boxes.append(box)
            if self._last_rear_of[front] == rear:
                del self._pending[front]  # its last rear is wired; drop our reference
        return boxes

    # -- backward: deliver δ_sc ---------------------------------------------------------------
    def _make_grad_hook(self, inbox: _Mailbox | None, outboxes: list[_Mailbox]):
        def hook(grad: Tensor) -> Tensor:
            if inbox is not None and inbox.deltas:
                deltas = inbox.deltas[:]
                inbox.deltas.clear()  # drop the references now: nothing outlives backward
                if self.mode == "propagate":
                    for delta_sc in deltas:  # one fused add per connection (Eq. 20: δ^f + w·δ_sc)
                        grad = grad.add(delta_sc, alpha=self.weight)
                else:
                    delta_sc = deltas[0]
                    for extra in deltas[1:]:
                        delta_sc = delta_sc + extra
                    self._add_weight_only_grads(inbox, delta_sc)
            for box in outboxes:  # this tap is a rear: δ_sc is its full sensitivity
                box.deltas.append(grad)
            return grad

        return hook

    def _add_weight_only_grads(self, box: _Mailbox, delta_sc: Tensor) -> None:
        """Eq. 13: add ``w·δ_sc``'s vector-Jacobian product to the front's own parameters only."""
        module = box.module
        assert module is not None
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            return
        self._recomputing = True
        try:
            with torch.enable_grad(), _replayed_rng(box.rng_state, delta_sc.device):
                out = _primary(module(*box.args, **box.kwargs))
        finally:
            self._recomputing = False
        assert out is not None
        grads = torch.autograd.grad(out, params, delta_sc * self.weight, allow_unused=True)
        # Written before the front's own AccumulateGrad runs, which then adds δ^f·aᵀ on top.
        for param, grad in zip(params, grads, strict=True):
            if grad is None:
                continue
            param.grad = grad if param.grad is None else param.grad + grad
        box.module, box.args, box.kwargs, box.rng_state = None, (), {}, None
