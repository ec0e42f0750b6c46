"""MNIST-1D: offline generation and cache, the 1-D ResNet, the benchmark CNN, the presets."""

from __future__ import annotations

import multiprocessing as mp
import random
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from scnet.data import get_datamodule
from scnet.data import mnist1d as m1d
from scnet.errors import ConfigError
from scnet.models import Backbone, CifarResNet, count_parameters, tap_shapes
from scnet.models.cnn1d import ConvNet1D
from scnet.models.gru1d import GRU1D
from scnet.sc import ShortCircuit, plan


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding the generated dataset (generated once for the module, ~1 s)."""
    path = tmp_path_factory.mktemp("data")
    m1d.load_arrays(path)
    return path


def _cache(root: Path) -> Path:
    return root / "mnist1d" / m1d.CACHE_NAME


# ---------------------------------------------------------------------------- data
def test_generates_the_default_split_offline(tmp_path: Path, monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("mnist1d tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    dm = get_datamodule("mnist1d", root=str(tmp_path))
    dm.setup("fit")
    s = dm.splits
    assert s.train.x.shape == (4000, 1, 40) and s.test.x.shape == (1000, 1, 40)
    assert s.train.x.dtype == torch.float32 and s.train.y.dtype == torch.int64
    assert s.val is s.test  # val_size 0: validate on the test set, as data=digits
    assert sorted(s.train.y.unique().tolist()) == list(range(10))
    assert np.bincount(s.train.y.numpy()).min() > 350  # 400 per class before the split
    whole = torch.cat([s.train.x, s.test.x])
    assert abs(whole.mean().item()) < 1e-3 and abs(whole.std().item() - 1) < 1e-2
    assert dm.input_shape == (1, 40) and dm.num_classes == 10 and dm.mean is None
    assert _cache(tmp_path).is_file()


def test_cache_is_read_not_regenerated(root: Path, monkeypatch) -> None:
    first = m1d.load_arrays(root)

    def boom() -> dict:
        raise AssertionError("regenerated although the cache is valid")

    monkeypatch.setattr(m1d, "generate", boom)
    second = m1d.load_arrays(root)
    assert all(np.array_equal(first[k], second[k]) for k in m1d.ARRAYS)


def test_generation_is_deterministic(root: Path) -> None:
    cached = m1d.load_arrays(root)
    fresh = m1d.generate()
    assert all(np.array_equal(cached[k], fresh[k]) for k in m1d.ARRAYS)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong_shape"])
def test_damaged_cache_is_regenerated(root: Path, tmp_path: Path, damage: str) -> None:
    good = m1d.load_arrays(root)
    path = _cache(tmp_path)
    path.parent.mkdir(parents=True)
    if damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "truncated":
        path.write_bytes(_cache(root).read_bytes()[:5000])
    else:
        np.savez(path, **{k: v[:10] for k, v in good.items()})
    arrays = m1d.load_arrays(tmp_path)
    assert all(np.array_equal(arrays[k], good[k]) for k in m1d.ARRAYS)
    again = m1d._read_cache(path)  # the bad file was replaced by a valid one
    assert again is not None and np.array_equal(again["x"], good["x"])


def test_generation_leaves_global_rngs_alone() -> None:
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    m1d.generate()  # make_dataset calls set_seed(42) on both generators
    assert (random.random(), np.random.rand()) == expected


def _load_in_child(root: str, queue) -> None:
    queue.put(m1d.load_arrays(Path(root))["x"].sum())


def test_concurrent_first_loads_write_one_valid_cache(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load_in_child, args=(str(tmp_path), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    sums = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert len(set(sums)) == 1
    assert m1d._read_cache(_cache(tmp_path)) is not None
    assert [p.name for p in (tmp_path / "mnist1d").iterdir()] == [m1d.CACHE_NAME]  # no temp left


def test_val_split_is_carved_from_train(root: Path) -> None:
    dm = get_datamodule("mnist1d", root=str(root), val_size=500)
    dm.setup("fit")
    assert dm.sizes == {"train": 3500, "val": 500, "test": 1000}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (128, 1, 40) and y.shape == (128,)


# ----------------------------------------------------------------------- 1-D ResNet
def _resnet1d_params(depth: int, in_ch: int = 1, widths=(16, 32, 64), classes: int = 10) -> int:
    """Conv weights (kernel 3, no bias) + BN (gamma, beta) + Linear, for depth = 6n + 2."""
    n = (depth - 2) // 6
    w0, w1, w2 = widths
    convs = in_ch * w0 + 2 * n * w0 * w0
    convs += w0 * w1 + (2 * n - 1) * w1 * w1 + w1 * w2 + (2 * n - 1) * w2 * w2
    bn = 2 * (w0 + 2 * n * (w0 + w1 + w2))
    return 3 * convs + bn + w2 * classes + classes


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
def test_resnet1d_parameter_count_formula(depth: int) -> None:
    model = CifarResNet(depth=depth, input_shape=(1, 40))
    assert model.dims == 1
    assert count_parameters(model) == _resnet1d_params(depth)
    # Same structure as the 2-D model: every 3x3 kernel became a length-3 one.
    twin = CifarResNet(depth=depth, input_shape=(1, 8, 8))
    convs1 = [m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv1d)]
    convs2 = [m.weight.numel() for m in twin.modules() if isinstance(m, nn.Conv2d)]
    assert [3 * c for c in convs1] == convs2


def test_resnet1d_taps_shapes_and_plan() -> None:
    model = CifarResNet(depth=20, input_shape=(1, 40))
    taps = model.sc_taps()
    assert len(taps) == 19 and all(isinstance(t, nn.Conv1d) for t in taps)
    assert taps[0] is model.conv1 and taps[-1] is model.layer3[-1].conv2
    shapes = [tuple(s) for s in tap_shapes(model, torch.randn(2, 1, 40))]
    assert shapes == [(16, 40)] * 7 + [(32, 20)] * 6 + [(64, 10)] * 6
    assert model.stage_of_tap() == [1] * 7 + [2] * 6 + [3] * 6
    rears = sorted({r for r, _ in plan(shapes, k=2, strategy="multi")})
    assert rears == [7, 13, 19]  # one rear per stage, as in 2-D


@pytest.mark.parametrize("length", [40, 37, 9])
def test_resnet1d_forward_shape(length: int) -> None:
    model = CifarResNet(depth=8, num_classes=7, input_shape=(2, length))
    assert model(torch.randn(3, 2, length)).shape == (3, 7)


def test_resnet_dims_errors() -> None:
    with pytest.raises(ConfigError, match=r"expected \(C, H, W\)"):
        CifarResNet(depth=20, input_shape=(1, 40), dims=2)
    with pytest.raises(ConfigError, match=r"expected \(C, L\)"):
        CifarResNet(depth=20, input_shape=(1, 8, 8), dims=1)
    with pytest.raises(ConfigError, match="dims=3 is invalid for backbone=resnet"):
        CifarResNet(depth=20, input_shape=(1, 40), dims=3)


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_weight_zero_is_sc_off() -> None:
    """fig8_sc_weight_mnist1d's baseline: SC weight 0 gives bit-identical gradients to no SC."""
    torch.manual_seed(0)
    model = CifarResNet(depth=14, input_shape=(1, 40))
    x, y = torch.randn(8, 1, 40), torch.randint(0, 10, (8,))
    plain = _grads(model, x, y)
    connections = plan(tap_shapes(model, x), k=2, strategy="multi")
    with ShortCircuit(model.sc_taps(), connections, weight=0.0):
        zero = _grads(model, x, y)
    with ShortCircuit(model.sc_taps(), connections, weight=0.2):
        on = _grads(model, x, y)
    assert all(torch.equal(a, b) for a, b in zip(plain, zero, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(plain, on, strict=True))


# ---------------------------------------------------------------------------- CNN
def test_cnn1d_matches_the_reference_size() -> None:
    model = ConvNet1D(channels=25, input_shape=(1, 40))
    assert count_parameters(model) == 5210  # Greydanus's ConvBase on length-40 inputs
    assert isinstance(model, Backbone) and isinstance(CifarResNet(input_shape=(1, 40)), Backbone)
    assert model(torch.randn(4, 1, 40)).shape == (4, 10)
    shapes = [tuple(s) for s in tap_shapes(model, torch.randn(2, 1, 40))]
    assert shapes == [(25, 19), (25, 10), (25, 5), (10,)]


def test_gru1d_matches_the_reference_size() -> None:
    """Greydanus's bidirectional GRU: 6 units a direction, Linear on all 40 steps' outputs."""
    model = GRU1D(hidden=6, input_shape=(1, 40))
    assert count_parameters(model) == 5134
    assert isinstance(model, Backbone)
    assert model(torch.randn(4, 1, 40)).shape == (4, 10)
    x = torch.randn(1, 1, 40)
    flipped = model(x.flip(-1))  # both directions read every position: order matters
    assert not torch.allclose(model(x), flipped)
    with pytest.raises(ConfigError, match=r"backbone=gru1d: expected \(C, L\)"):
        GRU1D(input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="hidden=0 is invalid for backbone=gru1d"):
        GRU1D(hidden=0)


def test_cnn1d_rejects_images() -> None:
    with pytest.raises(ConfigError, match=r"backbone=cnn1d: expected \(C, L\)"):
        ConvNet1D(input_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="too short"):
        ConvNet1D(input_shape=(1, 2))


# ------------------------------------------------------------------------- presets
@pytest.mark.parametrize(
    ("preset", "target", "depth"),
    [
        ("mnist1d_logreg", "scnet.models.fcn.FCN", 1),
        ("mnist1d_mlp", "scnet.models.fcn.FCN", 3),
        ("mnist1d_cnn", "scnet.models.cnn1d.ConvNet1D", 4),
        ("mnist1d_gru", "scnet.models.gru1d.GRU1D", 1),
        ("mnist1d_resnet", "scnet.models.resnet.CifarResNet", 20),
    ],
)
def test_presets_compose(preset: str, target: str, depth: int) -> None:
    from scnet.cli.common import compose_config

    cfg = compose_config([f"experiment={preset}"])
    assert cfg.backbone._target_ == target and cfg.depth == depth
    assert cfg.data.name == "mnist1d" and cfg.data.batch_size in (64, 100)
    assert cfg.sc.enabled == (preset == "mnist1d_resnet")
    assert cfg.optim.name == ("sgd" if preset == "mnist1d_resnet" else "adam")


@pytest.mark.parametrize(
    ("option", "connections"),
    [
        ("first_blob", [(5, 2), (5, 4)]),  # the paper's SCResNet-20 placement, at depth 56 too
        ("single", [(55, 38), (55, 40), (55, 42), (55, 44), (55, 46), (55, 48), (55, 50),
                    (55, 52), (55, 54)]),
    ],
)  # fmt: skip
def test_sc_placements_compose_over_the_resnet_preset(
    option: str, connections: list[tuple[int, int]]
) -> None:
    """An sc option picks the placement even under experiment=mnist1d_resnet (which must not
    restate the sc keys, or it would silently override the option)."""
    from scnet.cli.common import compose_config

    cfg = compose_config(["experiment=mnist1d_resnet", "depth=56", f"sc={option}"])
    assert cfg.sc.enabled and cfg.sc.strategy == "single"
    model = CifarResNet(input_shape=(1, 40), depth=56)
    shapes = [tuple(s) for s in tap_shapes(model, torch.randn(2, 1, 40))]
    got = plan(shapes, k=cfg.sc.k, strategy=cfg.sc.strategy, rear=cfg.sc.rear)
    assert [tuple(c) for c in got] == connections


def test_sc_weight_only_is_the_on_placement_in_the_literal_mode() -> None:
    """sc=weight_only: sc=on's connections, attached in weight_only mode (only the fronts' own
    weight gradients change; the stem's, below every front, does not)."""
    from scnet.cli.common import compose_config
    from scnet.lit.short_circuit import install_short_circuit

    on, literal = (compose_config(["experiment=mnist1d_resnet", f"sc={o}"]).sc
                   for o in ("on", "weight_only"))  # fmt: skip
    assert {**on, "mode": "weight_only"} == dict(literal)
    torch.manual_seed(0)
    model = CifarResNet(input_shape=(1, 40), depth=20)
    x, y = torch.randn(8, 1, 40), torch.randint(0, 10, (8,))

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = grads()
    sc = install_short_circuit(model, literal, x)
    assert sc is not None and sc.mode == "weight_only"
    assert sc.connections == install_short_circuit(CifarResNet(input_shape=(1, 40), depth=20),
                                                   on, x).connections  # fmt: skip
    with_sc = grads()
    assert torch.equal(with_sc["conv1.weight"], plain["conv1.weight"])
    assert not torch.allclose(with_sc["layer1.0.conv1.weight"], plain["layer1.0.conv1.weight"])
