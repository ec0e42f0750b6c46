"""The fast path stays honest: classic == fast pipeline, channels_last, SC costs (issue 6)."""

from __future__ import annotations

import weakref
from collections import Counter

import lightning as L
import pytest
import torch
from torch import nn

from scnet.data.base import ArrayDataModule, ArraySplits, Split
from scnet.data.classic import ClassicDataModule
from scnet.errors import ConfigError
from scnet.lit.classifier import ClassifierModule
from scnet.lit.short_circuit import install_short_circuit
from scnet.models import FCN, CifarResNet
from scnet.speed import maybe_compile, process_start_time

SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "scheduler": "constant"}
SC_ON = {"enabled": True, "weight": 0.2, "k": 2, "strategy": "multi", "mode": "propagate"}


class RandomImages(ArrayDataModule):
    """Seeded uint8 3x8x8 images, 4 classes; CIFAR-style pad-2 crop + flip when augmenting."""

    name = "random"
    input_shape = (3, 8, 8)
    num_classes = 4
    mean = (0.5, 0.4, 0.3)
    std = (0.25, 0.2, 0.3)
    crop_padding = 2
    hflip = True

    def __init__(self, n: int = 96, template: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n, self.template = n, template

    def load(self) -> ArraySplits:
        g = torch.Generator().manual_seed(123)
        if self.template:  # every image is 1..64 in raster order: crops/flips are recoverable
            x = torch.arange(1, 65, dtype=torch.uint8).view(1, 1, 8, 8).repeat(self.n, 3, 1, 1)
        else:
            x = torch.randint(0, 256, (self.n, 3, 8, 8), generator=g, dtype=torch.uint8)
        y = torch.randint(0, 4, (self.n,), generator=g)
        return ArraySplits(Split(x, y), Split(x[:32].clone(), y[:32].clone()))


def _modules(**data_kwargs) -> tuple[RandomImages, ClassicDataModule]:
    fast = RandomImages(**data_kwargs)
    classic = ClassicDataModule(RandomImages(**data_kwargs))
    fast.setup("fit")
    classic.setup("fit")
    return fast, classic


def test_classic_batches_are_bit_identical_to_fast_without_augmentation() -> None:
    fast, classic = _modules(batch_size=20, augment=False, seed=3)
    for loaders in [
        (fast.train_dataloader(), classic.train_dataloader()),
        (fast.train_dataloader(), classic.train_dataloader()),  # epoch 1: a new order
        (fast.val_dataloader(), classic.val_dataloader()),
    ]:
        pairs = list(zip(*loaders, strict=True))
        assert len(pairs) == len(loaders[0])
        for (xf, yf), (xc, yc) in pairs:
            assert xf.dtype == xc.dtype == torch.float32
            assert torch.equal(xf, xc) and torch.equal(yf, yc)


def _augmentation_ids(x: torch.Tensor) -> torch.Tensor:
    """For template images: index (dy*5+dx)*2+flip of the pad-2 crop/flip that made each one."""
    base = torch.arange(1, 65, dtype=torch.float32).view(1, 8, 8)
    padded = nn.functional.pad(base, (2, 2, 2, 2))
    candidates = []
    for dy in range(5):
        for dx in range(5):
            crop = padded[:, dy : dy + 8, dx : dx + 8]
            candidates += [crop, crop.flip(-1)]
    cand = torch.stack(candidates).flatten(1)  # (50, 64)
    got = torch.round(x[:, 0] * 255).flatten(1)  # channel 0, back to pixel values
    match = (got[:, None, :] == cand[None]).all(-1)  # (N, 50)
    assert (match.sum(1) >= 1).all(), "an augmented sample is not a pad-2 crop/flip"
    return match.float().argmax(1)


def test_classic_augmentation_is_distributed_like_fast() -> None:
    """Per-sample RNG draws differ, so compare the distributions of crop offsets and flips."""
    torch.manual_seed(0)
    fast, classic = _modules(n=800, template=True, batch_size=200, augment=True, seed=1)
    fast.mean = fast.std = classic.inner.mean = classic.inner.std = None
    ids = {}
    for name, dm in (("fast", fast), ("classic", classic)):
        xs = [x for _ in range(2) for x, _ in dm.train_dataloader()]
        ids[name] = _augmentation_ids(torch.cat(xs))
    for found in ids.values():
        assert len(found) == 1600
        # Ambiguous ties (equal candidates) cannot occur: all pixels are distinct.
        offsets = torch.bincount(found // 2, minlength=25).float()
        flips = (found % 2).float().mean()
        # 1600 draws over 25 offsets: 64 expected each, sd ~7.9; flips sd ~0.0125.
        assert offsets.min() > 30 and offsets.max() < 100
        assert abs(flips - 0.5) < 0.06
    assert not torch.equal(ids["fast"], ids["classic"])  # really two pipelines


def _fit(datamodule: L.LightningDataModule, **module_kwargs) -> ClassifierModule:
    L.seed_everything(0, verbose=False)
    backbone = CifarResNet(depth=8, num_classes=4, input_shape=(3, 8, 8))
    module = ClassifierModule(backbone, SC_ON, SGD, input_shape=(3, 8, 8), **module_kwargs)
    trainer = L.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, accelerator="cpu", deterministic=True,
    )  # fmt: skip
    trainer.fit(module, datamodule=datamodule)
    return module


def test_tiny_run_identical_between_fast_and_classic_pipelines() -> None:
    fast, classic = _modules(batch_size=16, augment=False, seed=5)
    a = _fit(fast).state_dict()
    b = _fit(classic).state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_channels_last_same_outputs_and_gradients() -> None:
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    results = []
    for channels_last in (False, True):
        torch.manual_seed(0)
        backbone = CifarResNet(depth=8, num_classes=4, input_shape=(3, 8, 8))
        module = ClassifierModule(
            backbone, SC_ON, SGD, input_shape=(3, 8, 8), channels_last=channels_last
        )
        out = module(x)
        out.square().sum().backward()
        if channels_last:
            assert backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        results.append((out.detach(), [p.grad for p in backbone.parameters()]))
    (out_a, grads_a), (out_b, grads_b) = results
    torch.testing.assert_close(out_a, out_b, rtol=1e-4, atol=1e-5)
    for ga, gb in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------- SC costs


def _aten_counts(fn) -> Counter:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return Counter(e.name for e in prof.events() if e.name.startswith("aten::"))


def _watch_tap_outputs(model: nn.Module) -> tuple[list, list]:
    """Weak references to every tap output of the next forward (to prove none is retained)."""
    refs: list = []

    def hook(_module, _args, output) -> None:
        refs.append(weakref.ref(output))

    handles = [tap.register_forward_hook(hook) for tap in model.sc_taps()]
    return refs, handles


@pytest.mark.parametrize("mode", ["propagate", "weight_only"])
def test_sc_adds_no_forward_work_one_add_per_connection_and_retains_nothing(mode: str) -> None:
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    counts = {}
    for with_sc in (False, True):
        torch.manual_seed(0)
        model = CifarResNet(depth=14, num_classes=4, input_shape=(3, 8, 8))
        sc = install_short_circuit(model, {**SC_ON, "mode": mode}, x[:2]) if with_sc else None
        model(x).sum().backward()  # warm-up: .grad tensors exist from here on
        holder = {}
        forward = _aten_counts(lambda m=model, h=holder: h.update(loss=m(x).sum()))
        backward = _aten_counts(lambda h=holder: h.pop("loss").backward())
        counts[with_sc] = (forward, backward)
        # One more step, watched: after backward no tap output (activation) may survive.
        refs, handles = _watch_tap_outputs(model)
        model(x).sum().backward()
        for handle in handles:
            handle.remove()
        assert len(refs) >= 13 and all(r() is None for r in refs), "activations outlived backward"
        if sc is not None:
            assert not sc._pending  # every mailbox was consumed and dropped
            connections = len(sc.connections)
    assert connections >= 3
    fronts = len({front for _, front in sc.connections})
    forward_extra = counts[True][0] - counts[False][0]
    assert not counts[False][0] - counts[True][0]
    if mode == "propagate":
        assert not forward_extra, f"SC changed the forward pass: {forward_extra}"
    else:  # keeps each front's input for the recompute: a detach (an alias, no copy, no FLOP)
        assert forward_extra == Counter({"aten::detach": fronts}), forward_extra
    extra = counts[True][1] - counts[False][1]
    if mode == "propagate":
        assert extra == Counter({"aten::add": connections}), extra
        assert not counts[False][1] - counts[True][1]
    else:  # recomputes each front conv once and adds its weight gradient
        assert extra["aten::convolution"] == connections


def test_compile_keeps_sc_and_refuses_weight_only_in_one_line() -> None:
    model = FCN(depth=4, width=8, num_classes=3, input_shape=(1, 2, 2))
    x = torch.zeros(2, 1, 2, 2)
    sc = install_short_circuit(model, SC_ON, x)
    assert maybe_compile(model, enabled=False, sc=sc) is model
    assert maybe_compile(model, enabled=True, sc=sc) is not model
    assert maybe_compile(model, enabled=True) is not model
    sc.detach()
    weight_only = install_short_circuit(model, {**SC_ON, "mode": "weight_only"}, x)
    with pytest.raises(ConfigError, match=r"^sc.mode=weight_only cannot be compiled"):
        maybe_compile(model, enabled=True, sc=weight_only)


def test_compiled_graph_keeps_the_sc() -> None:
    """Dynamo drops tensor hooks on intermediates (with the hooks alone, a compiled ResNet's
    gradients equalled the *plain* one's); the SC's traceable wiring keeps it: compiled SC
    gradients equal eager SC gradients and differ from plain ones. (Inductor: slow suite,
    tests/test_sc_compile.py.)"""
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def grads(with_sc: bool, compiled: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        torch._dynamo.reset()
        model = CifarResNet(depth=8, num_classes=4, input_shape=(3, 8, 8))
        if with_sc:
            install_short_circuit(model, SC_ON, x[:2])
        run = torch.compile(model, backend="eager") if compiled else model
        run(x).square().sum().backward()
        return [p.grad for p in model.parameters()]

    plain, eager_sc, compiled_sc = grads(False, False), grads(True, False), grads(True, True)
    assert any(not torch.equal(a, b) for a, b in zip(plain, eager_sc, strict=True))
    for a, b in zip(eager_sc, compiled_sc, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_process_start_time_is_before_now() -> None:
    import time

    age = time.time() - process_start_time()
    assert 0 < age < 3600
