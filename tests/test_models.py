"""Vision backbones: exact sizes, shapes, SC taps and config errors."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from scnet.errors import ConfigError
from scnet.models import FCN, CifarResNet, count_parameters, tap_shapes
from scnet.models.resnet import BasicBlock, PadShortcut


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------------------- ResNet

# He et al. 2016, Table 6 (0.27M ... 19.4M), option-A shortcuts, 10 classes.
PAPER_PARAM_COUNTS = {
    20: 269_722,
    32: 464_154,
    44: 658_586,
    56: 853_018,
    110: 1_727_962,
    1202: 19_421_274,
}


@pytest.mark.parametrize("depth", sorted(PAPER_PARAM_COUNTS))
def test_resnet_parameter_counts_match_paper(depth: int) -> None:
    start = time.perf_counter()
    model = CifarResNet(depth=depth, num_classes=10, input_shape=(3, 32, 32))
    elapsed = time.perf_counter() - start
    assert count_parameters(model) == PAPER_PARAM_COUNTS[depth]
    assert elapsed < 10.0, f"building depth={depth} took {elapsed:.1f}s"


@pytest.mark.parametrize(
    ("input_shape", "num_classes"),
    [((3, 32, 32), 10), ((3, 32, 32), 100), ((1, 8, 8), 10)],
)
def test_resnet_output_shape(input_shape: tuple[int, int, int], num_classes: int) -> None:
    model = CifarResNet(depth=20, num_classes=num_classes, input_shape=input_shape)
    out = model(torch.randn(4, *input_shape))
    assert out.shape == (4, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("depth", [8, 20, 32])
def test_resnet_taps_are_all_convs_in_forward_order(depth: int) -> None:
    model = CifarResNet(depth=depth)
    taps = model.sc_taps()
    assert len(taps) == depth - 1
    assert taps[0] is model.conv1
    assert all(isinstance(t, nn.Conv2d) for t in taps)
    # Same modules, same order as nn.Module registration (which follows the forward).
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [id(t) for t in taps] == [id(c) for c in convs]
    first_block = model.layer1[0]
    assert taps[1] is first_block.conv1 and taps[2] is first_block.conv2


def test_resnet_taps_fire_in_forward_order() -> None:
    model = CifarResNet(depth=20).eval()
    order: list[int] = []
    taps = model.sc_taps()
    handles = [t.register_forward_hook(lambda *_, i=i: order.append(i)) for i, t in enumerate(taps)]
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    for h in handles:
        h.remove()
    assert order == list(range(len(taps)))


def test_resnet_stage_of_tap() -> None:
    model = CifarResNet(depth=20)  # n = 3 blocks per stage, 2 convs per block
    stages = model.stage_of_tap()
    assert len(stages) == len(model.sc_taps())
    assert stages == [1] * 7 + [2] * 6 + [3] * 6


@pytest.mark.parametrize(
    ("input_shape", "sizes"),
    [((3, 32, 32), (32, 16, 8)), ((1, 8, 8), (8, 4, 2))],
)
def test_resnet_tap_shapes_form_three_stage_groups(
    input_shape: tuple[int, int, int], sizes: tuple[int, int, int]
) -> None:
    model = CifarResNet(depth=20, input_shape=input_shape)
    shapes = tap_shapes(model, torch.randn(2, *input_shape))
    expected = [torch.Size([w, s, s]) for w, s in zip((16, 32, 64), sizes, strict=True)]
    groups = [torch.Size(sh) for sh in dict.fromkeys(shapes)]  # unique, in order
    assert groups == expected
    stage_of = model.stage_of_tap()
    assert all(shapes[i] == expected[stage_of[i] - 1] for i in range(len(shapes)))


def test_tap_shapes_restores_mode_and_removes_hooks() -> None:
    model = CifarResNet(depth=8).train()
    model.layer2.eval()  # a mixed state must survive too
    bn_stats = model.bn1.running_mean.clone()
    tap_shapes(model, torch.randn(2, 3, 32, 32))
    assert model.training and model.layer1.training and not model.layer2.training
    assert torch.equal(model.bn1.running_mean, bn_stats)  # ran in eval mode
    assert all(not t._forward_hooks for t in model.sc_taps())


@pytest.mark.parametrize("depth", [0, 7, 19, 21, 57, -4, 2])
def test_resnet_bad_depth_raises_config_error(depth: int) -> None:
    with pytest.raises(ConfigError, match=rf"^depth={depth} is invalid for backbone=resnet") as e:
        CifarResNet(depth=depth)
    assert "6n+2" in str(e.value)
    assert "\n" not in str(e.value)


def test_resnet_bad_widths_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="widths"):
        CifarResNet(widths=(16, 32))
    with pytest.raises(ConfigError, match="widths"):
        CifarResNet(widths=(64, 32, 16))  # zero-padding shortcuts cannot shrink


def test_zero_padding_shortcut_adds_no_parameters() -> None:
    model = CifarResNet(depth=20)
    shortcuts = [b.shortcut for s in model.stages() for b in s]
    assert sum(isinstance(s, PadShortcut) for s in shortcuts) == 2  # stage 2 and 3 entries
    assert all(count_parameters(s) == 0 for s in shortcuts)
    for block in (b for s in model.stages() for b in s):
        body = [block.conv1, block.bn1, block.conv2, block.bn2]
        assert count_parameters(block) == sum(count_parameters(m) for m in body)


def test_pad_shortcut_subsamples_and_zero_pads() -> None:
    x = torch.randn(2, 16, 9, 9)  # odd size: must match a stride-2 conv's ceil(H/2)
    out = PadShortcut(16, 32, stride=2)(x)
    assert out.shape == (2, 32, 5, 5)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert out[:, :8].abs().sum() == 0 and out[:, 24:].abs().sum() == 0
    conv_out = BasicBlock(16, 32, stride=2).conv1(x)
    assert conv_out.shape == out.shape


def test_resnet_is_deterministic_given_seed() -> None:
    torch.manual_seed(123)
    a = CifarResNet(depth=8)
    torch.manual_seed(123)
    b = CifarResNet(depth=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


# ------------------------------------------------------------------------------- FCN


def test_fcn_default_is_fig5_preset() -> None:
    model = FCN()  # 5 Linear layers, width 100, sigmoid, MNIST-sized input
    taps = model.sc_taps()
    assert len(taps) == 5
    assert all(isinstance(t, nn.Linear) for t in taps)
    assert [t.out_features for t in taps] == [100, 100, 100, 100, 10]
    assert taps[0].in_features == 28 * 28
    assert sum(isinstance(m, nn.Sigmoid) for m in model.modules()) == 4
    assert count_parameters(model) == 784 * 100 + 3 * 100 * 100 + 100 * 10 + 4 * 100 + 10
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_fcn_taps_are_pre_activations() -> None:
    model = FCN(depth=3, width=7, input_shape=(1, 8, 8)).eval()
    shapes = tap_shapes(model, torch.randn(2, 1, 8, 8))
    assert shapes == [torch.Size([7]), torch.Size([7]), torch.Size([10])]
    # The sigmoid output is in (0, 1); a pre-activation tap is not squashed.
    seen: list[torch.Tensor] = []
    h = model.sc_taps()[0].register_forward_hook(lambda _m, _i, o: seen.append(o))
    with torch.no_grad():
        model(torch.randn(64, 1, 8, 8) * 10)
    h.remove()
    assert (seen[0] < 0).any()


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sigmoid", nn.Sigmoid),
        ("tanh", nn.Tanh),
        ("relu", nn.ReLU),
        ("leaky_relu", nn.LeakyReLU),
        ("gelu", nn.GELU),
        ("identity", nn.Identity),
    ],
)
def test_fcn_activations(name: str, cls: type[nn.Module]) -> None:
    model = FCN(depth=4, width=8, activation=name, input_shape=(1, 8, 8))
    acts = [m for m in model.net if not isinstance(m, (nn.Linear, nn.Flatten))]
    assert len(acts) == 3 and all(type(a) is cls for a in acts)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_fcn_depth_one_is_logistic_regression() -> None:
    model = FCN(depth=1, input_shape=(3, 4, 4), num_classes=5, bias=False)
    assert len(model.sc_taps()) == 1
    assert count_parameters(model) == 48 * 5


def test_fcn_unknown_activation_names_allowed_values() -> None:
    with pytest.raises(ConfigError, match="activation='swish'") as e:
        FCN(activation="swish")
    for allowed in ("sigmoid", "tanh", "relu", "leaky_relu", "gelu", "identity"):
        assert allowed in str(e.value)


@pytest.mark.parametrize(("kwargs", "key"), [({"depth": 0}, "depth"), ({"width": 0}, "width")])
def test_fcn_bad_sizes_raise_config_error(kwargs: dict[str, int], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key}=0 is invalid for backbone=fcn"):
        FCN(**kwargs)
