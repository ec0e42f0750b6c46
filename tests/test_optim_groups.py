"""Weight-decay parameter groups: BERT's no-decay list for AdamW, decay on everything for SGD."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from scnet.errors import ConfigError
from scnet.lit.optim import build_optimizer, param_groups

CONF = Path(__file__).resolve().parents[1] / "conf" / "optim"


class Tiny(nn.Module):
    """Linear (weight + bias), LayerNorm, BatchNorm, an embedding and a frozen layer."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(5, 4)
        self.fc = nn.Linear(4, 4)
        self.LayerNorm = nn.LayerNorm(4)
        self.bn = nn.BatchNorm1d(4)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def names(module: nn.Module, params: list[nn.Parameter]) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in module.named_parameters() if id(p) in ids}


def preset(name: str) -> dict:
    """``conf/optim/<name>.yaml``: the knobs, and the optimizer/schedule nodes reading them."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))


def test_adamw_exempts_biases_and_norm_weights() -> None:
    model, cfg = Tiny(), preset("adamw")
    assert cfg["decay_norm_and_bias"] is False and cfg["weight_decay"] == 0.01
    opt = build_optimizer(param_groups(model, cfg), cfg)
    decay, exempt = opt.param_groups
    assert names(model, decay["params"]) == {"embed.weight", "fc.weight"}
    assert names(model, exempt["params"]) == {
        "fc.bias", "LayerNorm.weight", "LayerNorm.bias", "bn.weight", "bn.bias",
    }  # fmt: skip
    assert decay["weight_decay"] == 0.01 and exempt["weight_decay"] == 0.0
    assert isinstance(opt, torch.optim.AdamW) and exempt["lr"] == decay["lr"] == cfg["lr"]


def test_exempt_params_really_are_not_decayed() -> None:
    model, cfg = Tiny(), {**preset("adamw"), "lr": 0.1, "weight_decay": 0.5}
    opt = build_optimizer(param_groups(model, cfg), cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # no gradient: only decay can move a parameter
    opt.step()
    after = dict(model.named_parameters())
    assert torch.equal(after["LayerNorm.weight"], before["LayerNorm.weight"])
    assert torch.equal(after["fc.bias"], before["fc.bias"])
    assert torch.allclose(after["fc.weight"], before["fc.weight"] * (1 - 0.1 * 0.5))


@pytest.mark.parametrize("preset_name", ["sgd", "adam"])
def test_vision_presets_decay_every_weight(preset_name: str) -> None:
    """He et al. / pytorch_resnet_cifar10: SGD weight decay on all parameters, BN included."""
    model, cfg = Tiny(), preset(preset_name)
    assert cfg["decay_norm_and_bias"] is True
    (group,) = build_optimizer(param_groups(model, cfg), cfg).param_groups
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names(model, group["params"]) == trainable
    assert group["weight_decay"] == cfg["weight_decay"]


def test_missing_key_means_decay_all_and_bad_value_is_refused() -> None:
    model = Tiny()
    assert len(param_groups(model, {"name": "sgd"})) == 1
    with pytest.raises(ConfigError, match=r"optim.decay_norm_and_bias='no' .* true, false"):
        param_groups(model, {"decay_norm_and_bias": "no"})


def test_bad_value_is_refused_before_training() -> None:
    from hydra import compose, initialize_config_dir

    from scnet import train
    from scnet.cli.common import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=demo", "depth=8", "optim=adamw",
                                           "optim.decay_norm_and_bias=maybe"])  # fmt: skip
    with pytest.raises(ConfigError, match="optim.decay_norm_and_bias='maybe'"):
        train.prepare(cfg)


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    from scnet.cli.common import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_learning_rates_live_in_presets_not_backbones() -> None:
    """Groups do not write into each other: a backbone yaml describes the network only (an lr
    or optimizer there would silently carry over to ``optim=sgd``); the papers' recipes live
    in ``experiment/``."""
    demo = _compose("experiment=mcqa_minilm", "data=dream")
    assert (demo.backbone.name, demo.optim.name, demo.optim.lr) == ("minilm", "adamw", 5e-5)
    assert demo.optim.decay_norm_and_bias is False and demo.sc.k == 4
    assert demo.data.tokenizer == demo.backbone.pretrained  # the experiment ties them
    plain = _compose("backbone=minilm", "data=dream")  # the network alone: default recipe
    assert (plain.optim.name, plain.sc.k, plain.data.tokenizer) == ("sgd", 2, None)
    for path in (CONF.parent / "backbone").glob("*.yaml"):
        top = set(yaml.safe_load(path.read_text())) - {"defaults"}
        assert top <= {"backbone", "depth"}, (path.name, top)
        assert "defaults" not in yaml.safe_load(path.read_text()), path.name


def test_optimizer_reaches_the_module_as_a_partial() -> None:
    """``optim.optimizer`` is a ``_partial_`` torch optimizer built from the recipe's knobs."""
    from hydra.utils import instantiate

    cfg = _compose("experiment=demo", "optim.lr=0.07", "optim.momentum=0.5")
    factory = instantiate(cfg.optim.optimizer)
    opt = factory(Tiny().parameters())
    assert isinstance(opt, torch.optim.SGD)
    assert (opt.defaults["lr"], opt.defaults["momentum"]) == (0.07, 0.5)
    schedule = instantiate(cfg.optim.lr_schedule)(opt, total_steps=10, steps_per_epoch=2)
    assert schedule.get_last_lr() == [0.07]  # cosine starts at lr
