"""Gradient-flow lab: grad-stats callback, the seeds' backbones and data, and the figures."""

from __future__ import annotations

import bz2
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from scnet.data.sequences import AddingDataModule, SequentialDigitsDataModule
from scnet.data.usps import USPSDataModule
from scnet.errors import DataError
from scnet.lit.condition import condition_numbers
from scnet.lit.grad_stats import GRAD_STATS_FILE, GradStatsCallback, build_grad_stats
from scnet.lit.short_circuit import install_short_circuit
from scnet.models import tap_shapes
from scnet.models.fixedpoint import (
    FixedPointCore,
    FixedPointError,
    FixedPointNet,
    FixedPointWarning,
)
from scnet.models.highway import Highway
from scnet.models.lstm import LSTMNet
from scnet.models.plainnet import PlainNet
from scnet.models.residual_mlp import ResidualMLP
from scnet.report import gradients
from scnet.report.registry import FIGURES

SC_MULTI = {"enabled": True, "weight": 0.2, "k": 2, "strategy": "multi", "mode": "propagate"}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ------------------------------------------------------------------------ backbones
BACKBONES = {
    "residual_mlp": lambda: ResidualMLP(depth=6, width=8, input_shape=(1, 8, 8), num_classes=10),
    "plain_mlp": lambda: ResidualMLP(depth=6, width=8, residual=False, input_shape=(1, 8, 8)),
    "plainnet_mlp": lambda: PlainNet(depth=6, width=8, input_shape=(1, 8, 8)),
    "plainnet_cnn": lambda: PlainNet(depth=4, width=4, kind="cnn", input_shape=(1, 8, 8)),
    "highway_mlp": lambda: Highway(depth=3, width=8, input_shape=(1, 8, 8)),
    "highway_conv": lambda: Highway(depth=3, width=4, kind="conv", input_shape=(1, 8, 8)),
    "fixedpoint": lambda: FixedPointNet(width=8, layers=3, input_shape=(1, 8, 8)),
}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_backbone_shapes_taps_and_sc(name: str) -> None:
    model = BACKBONES[name]()
    x = torch.randn(4, 1, 8, 8)
    shapes = tap_shapes(model, x)
    assert len(shapes) == len(model.sc_taps()) >= 3
    sc = install_short_circuit(model, SC_MULTI, x)
    assert sc is not None and sc.connections
    out = model(x)
    assert out.shape[0] == 4 and out.shape[1] == (20 if name == "plain_mlp" else 10)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_residual_switch_changes_forward() -> None:
    plain = ResidualMLP(depth=5, width=8, residual=False, input_shape=(1, 1, 8), num_classes=3)
    resid = ResidualMLP(depth=5, width=8, residual=True, input_shape=(1, 1, 8), num_classes=3)
    resid.load_state_dict(plain.state_dict())
    x = torch.randn(2, 1, 1, 8)
    assert not torch.allclose(plain(x), resid(x))


def test_lstm_reads_sequences() -> None:
    model = LSTMNet(hidden=6, num_classes=1, input_shape=(1, 12, 2))
    assert model(torch.randn(3, 1, 12, 2)).shape == (3, 1)
    assert len(tap_shapes(model, torch.randn(2, 1, 12, 2))) == 2


def test_max_norm_holds_after_optimizer_steps() -> None:
    model = PlainNet(depth=4, width=16, max_norm=0.5, input_shape=(1, 8, 8))
    opt = torch.optim.SGD(model.parameters(), lr=5.0)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    exceeded = False
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        norms = torch.cat([m.weight.detach().flatten(1).norm(dim=1) for m in model.sc_taps()])
        exceeded |= bool((norms > 0.5 + 1e-6).any())  # the big step does break it ...
        model.after_optimizer_step()
        norms = torch.cat([m.weight.detach().flatten(1).norm(dim=1) for m in model.sc_taps()])
        assert float(norms.max()) <= 0.5 + 1e-6  # ... and the projection restores it
    assert exceeded


def test_uniform_init_bounds() -> None:
    model = PlainNet(depth=3, width=20, max_norm=None, input_shape=(1, 8, 8))
    layer = model.layers[0]
    bound = math.sqrt(6 / 64)
    assert float(layer.weight.abs().max()) <= bound
    assert float(layer.weight.abs().max()) > 0.9 * bound  # really uniform on the full range
    assert float(layer.bias.abs().max()) == 0.0


def _first_last_grad_ratio(beta: float) -> float:
    torch.manual_seed(0)
    model = PlainNet(depth=100, beta=beta, input_shape=(1, 8, 8))
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return float(model.layers[0].weight.grad.norm() / model.layers[-1].weight.grad.norm())


def test_plainnet_defaults_are_the_measured_beta_and_c() -> None:
    """Seed 003 leaves β and c open; the defaults are docs/gradient_lab.md's measurement."""
    import yaml

    from scnet.cli.common import REPO_ROOT

    conf = yaml.safe_load((REPO_ROOT / "conf" / "backbone" / "plainnet.yaml").read_text())
    model = PlainNet(input_shape=(1, 8, 8))
    assert (conf["backbone"]["beta"], conf["backbone"]["max_norm"]) == (0.7, 1.0)
    assert (model.act.negative_slope, model.max_norm) == (0.7, 1.0)
    # At 100 layers with BN, β = 0.01 explodes the input end's gradient; β = 0.7 does not.
    assert _first_last_grad_ratio(0.01) > 1e4 and _first_last_grad_ratio(0.7) < 100


def test_default_max_norm_binds_so_its_ablation_rows_differ() -> None:
    """Uniform init gives hidden rows ‖w_j‖ ≈ √2: c = 1 changes every row, c = 2 none."""

    def hidden_weights(max_norm: float | None) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = PlainNet(depth=6, width=50, max_norm=max_norm, input_shape=(1, 8, 8))
        return [layer.weight.detach() for layer in model.layers[1:]]

    free, bound, loose = hidden_weights(None), hidden_weights(1.0), hidden_weights(2.0)
    norms = torch.cat([w.norm(dim=1) for w in free])
    assert 1.3 < float(norms.median()) < 1.5 and float(norms.min()) > 1.0
    assert all(torch.equal(a, b) for a, b in zip(free, loose, strict=True))  # c = 2: a no-op
    bound_norms = torch.cat([w.norm(dim=1) for w in bound])
    assert torch.allclose(bound_norms, torch.ones_like(bound_norms))  # c = 1: every row moved


def test_condition_numbers_per_layer() -> None:
    model = PlainNet(depth=6, width=10, batch_norm=False, input_shape=(1, 8, 8))
    values = condition_numbers(model, torch.randn(50, 1, 8, 8))
    assert len(values) == 5 and all(v >= 1.0 for v in values)


def test_highway_gate_at_init_is_nearly_closed() -> None:
    x = torch.rand(64, 1, 8, 8)
    model = Highway(depth=3, width=50, gate_bias=-2.0, input_shape=(1, 8, 8))
    with torch.no_grad():
        for gate in model.gates(x):
            assert abs(float(gate.mean()) - 1 / (1 + math.exp(2.0))) < 0.02
        closed = Highway(depth=1, width=50, gate_bias=-4.0, input_shape=(1, 8, 8))
        h = closed.stem_act(closed.stem(x.flatten(1)))
        y = closed.layers[0](h)
    assert float((y - h).norm() / h.norm()) < 0.05  # y ≈ x: the layer starts as identity


# ------------------------------------------------------------------------ fixed point
def test_implicit_gradient_equals_unrolled_gradient() -> None:
    core = FixedPointCore(6, 3, gate_bias=1.0, tol=1e-12, max_iter=500, policy="error").double()
    e = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    (core(e) ** 2).sum().backward()
    implicit = [p.grad.clone() for p in core.parameters()] + [e.grad.clone()]
    assert core.stats["fp_iters"] > 3  # a real iteration, the wormhole is open (bias +1)
    core.zero_grad()
    e.grad = None
    z = e.new_zeros(4, 3, 6)
    for _ in range(300):  # backprop through a long unrolled iteration
        z = core.step(z, e)
    (z[:, -1] ** 2).sum().backward()
    unrolled = [p.grad for p in core.parameters()] + [e.grad]
    for a, b in zip(implicit, unrolled, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_fixed_point_nonconvergence_is_reported() -> None:
    x = torch.randn(5, 1, 8, 8)
    model = FixedPointNet(width=8, layers=3, gate_bias=2.0, tol=1e-12, max_iter=2)
    with pytest.warns(FixedPointWarning, match="did not converge"):
        model(x)
    assert model.step_metrics()["fp_nonconverged"] == 1.0
    strict = FixedPointNet(width=8, layers=3, gate_bias=2.0, tol=1e-12, max_iter=2,
                           on_nonconvergence="error")  # fmt: skip
    with pytest.raises(FixedPointError):
        strict(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a converging net warns about nothing
        FixedPointNet(width=8, layers=3, tol=1e-4, max_iter=100)(x).sum().backward()


# ------------------------------------------------------------------------ data
def _write_libsvm(path: Path, rows: list[tuple[int, list[float]]]) -> None:
    lines = [f"{lab} " + " ".join(f"{i + 1}:{v}" for i, v in enumerate(vals)) for lab, vals in rows]
    path.write_bytes(bz2.compress(("\n".join(lines) + "\n").encode()))


def test_usps_loader_reads_libsvm_release(tmp_path: Path) -> None:
    folder = tmp_path / "usps"
    folder.mkdir()
    _write_libsvm(folder / "usps.bz2", [(1, [-1.0] * 256), (10, [1.0] * 256), (3, [0.0] * 256)])
    _write_libsvm(folder / "usps.t.bz2", [(2, [0.5] * 256)])
    dm = USPSDataModule(root=str(tmp_path), batch_size=2)
    dm.setup("fit")
    train = dm.splits.train
    assert train.x.shape == (3, 1, 16, 16) and train.y.tolist() == [0, 9, 2]
    assert float(train.x[0].max()) == 0.0 and float(train.x[1].min()) == 1.0
    assert float(dm.splits.test.x[0, 0, 0, 0]) == 0.75
    (folder / "usps.t.bz2").write_bytes(bz2.compress(b"2 1:x\n"))
    with pytest.raises(DataError, match="bad USPS line 1"):
        USPSDataModule(root=str(tmp_path)).setup("fit")
    with pytest.raises(DataError, match="data=digits"):
        USPSDataModule(root=str(tmp_path / "none")).setup("fit")


def test_adding_problem_targets_are_marked_sums() -> None:
    dm = AddingDataModule(length=10, n_train=20, n_test=5, batch_size=5)
    dm.setup("fit")
    x, y = dm.splits.train.x[:, 0], dm.splits.train.y[:, 0]
    assert x.shape == (20, 10, 2) and torch.all(x[..., 1].sum(1) == 2)
    torch.testing.assert_close((x[..., 0] * x[..., 1]).sum(1), y)


def test_permuted_digits_are_a_fixed_permutation() -> None:
    plain = SequentialDigitsDataModule(batch_size=8)
    perm = SequentialDigitsDataModule(permute=True, perm_seed=3, batch_size=8)
    plain.setup("fit")
    perm.setup("fit")
    a, b = plain.splits.train.x, perm.splits.train.x
    assert a.shape == b.shape == (a.shape[0], 1, 64, 1)
    assert not torch.equal(a, b)
    torch.testing.assert_close(a.sort(dim=2).values, b.sort(dim=2).values)


# ------------------------------------------------------------------------ grad stats
def test_grad_stats_off_by_default_installs_nothing() -> None:
    from scnet.cli.common import compose_config

    cfg = compose_config(["experiment=demo"])
    assert cfg.grad_stats.enabled is False
    assert build_grad_stats(cfg.grad_stats, Path("unused")) == []


def test_grad_stats_schedule() -> None:
    cb = GradStatsCallback("unused", every_n_steps=10, batches_per_epoch=1, epochs=[0, 5])
    assert cb.should_record(20, 3, 4) and cb.should_record(7, 5, 0)
    assert not cb.should_record(7, 3, 0) and not cb.should_record(7, 5, 1)


def _tiny_run(run_dir: Path, overrides: list[str]) -> Path:
    """Train in-process (no CLI start-up cost) and save the resolved config like Hydra."""
    from scnet import train
    from scnet.cli.common import compose_config

    common = [
        "data=digits", "logger.wandb.mode=disabled", "trainer.enable_progress_bar=false",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "grad_stats.enabled=true",
        "grad_stats.batches_per_epoch=2", "+trainer.enable_model_summary=false",
    ]  # fmt: skip
    cfg = compose_config(common + overrides)
    run_dir.mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml", resolve=True)
    datamodule, module = train.prepare(cfg)
    train.fit_and_test(cfg, run_dir, datamodule, module)
    if module.short_circuit is not None:
        module.short_circuit.detach()
    for tap in module.backbone.sc_taps():  # the callback leaves no hook behind
        assert not tap._forward_hooks
    return run_dir


def _png_ok(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000


@pytest.mark.slow  # ~3 min on the shared 2-core box (6 in-process Lightning fits)
def test_tiny_runs_give_grad_stats_and_figures(tmp_path: Path) -> None:
    runs = []
    for sc in ("on", "off"):
        runs.append(_tiny_run(tmp_path / f"fcn-{sc}", ["experiment=fig5_fcn", f"sc={sc}",
                                                      "data=digits", "trainer.max_epochs=1"]))  # fmt: skip
        runs.append(_tiny_run(tmp_path / f"res-{sc}", ["backbone=resnet", "depth=8", f"sc={sc}",
                                                      "trainer.max_epochs=3"]))  # fmt: skip
    for residual in ("true", "false"):
        runs.append(_tiny_run(tmp_path / f"mlp-{residual}", [
            "backbone=residual_mlp", "depth=6", "sc=off", f"backbone.residual={residual}",
            "grad_stats.per_node=true", "trainer.max_epochs=1",
        ]))  # fmt: skip
    stats = pd.read_csv(tmp_path / "res-on" / GRAD_STATS_FILE)
    assert sorted(stats["tap"].unique()) == list(range(1, 8))  # ResNet-8: 7 conv taps
    assert sorted(stats["stage"].unique()) == [1, 2, 3] and set(stats["epoch"]) == {0, 1, 2}
    assert len(stats) == 7 * 2 * 3  # 7 taps x 2 batches x 3 epochs
    assert (stats["w_grad_norm"] > 0).all() and (stats["act_std"] > 0).all()
    # SC 4 -> 2 enlarges the gradient arriving at layer 2 of the FCN (paper Fig. 5).
    on = pd.read_csv(tmp_path / "fcn-on" / GRAD_STATS_FILE).groupby("tap")["out_grad_norm"].mean()
    off = pd.read_csv(tmp_path / "fcn-off" / GRAD_STATS_FILE).groupby("tap")["out_grad_norm"].mean()
    assert on[2] > off[2]

    results = pd.DataFrame({"run_dir": [str(r) for r in runs]})
    out = tmp_path / "report"
    for name in ("fig5_fcn_gradients", "fig6_resnet_gradients", "seed002_gradients"):
        files = FIGURES[name](results, tmp_path, out)
        assert len(files) == 1, name
        _png_ok(files[0])
    direct = gradients.plot_fcn_gradients({"FCN": [runs[1]]}, out / "direct.png")
    _png_ok(direct)


@pytest.mark.slow
def test_cli_fixedpoint_run_logs_iterations(tmp_path: Path) -> None:
    run_dir = tmp_path / "fp"
    cmd = [
        sys.executable, "-m", "scnet.cli.run", "backbone=fixedpoint", "data=adding",
        "data.n_train=200", "data.n_test=50", "data.length=10", "trainer.max_epochs=1",
        "grad_stats.enabled=true", "logger.wandb.mode=disabled", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env={**os.environ, "WANDB_MODE": "offline"}, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((run_dir / "result.json").read_text())["status"] == "completed"
    metrics = pd.read_csv(run_dir / "metrics.csv")
    assert metrics["train/fp_iters"].dropna().iloc[0] >= 1
    assert (run_dir / GRAD_STATS_FILE).is_file()
