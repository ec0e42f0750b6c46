"""Seed 003's near-singularity diagnostic (scnet/lit/condition.py) and its report (Table 1)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from scnet.errors import ConfigError
from scnet.lit.condition import (
    CONDITION_FILE,
    SINGULAR,
    build_condition,
    condition_numbers,
    representations,
)
from scnet.models.fcn import FCN
from scnet.models.plainnet import PlainNet
from scnet.report import paper
from scnet.report.plainnet import ORDER, components
from scnet.report.registry import FIGURES, TABLES


def test_condition_numbers_equal_numpy_on_hidden_layers() -> None:
    torch.manual_seed(0)
    model = PlainNet(depth=6, width=10, batch_norm=True, input_shape=(1, 8, 8))
    x = torch.randn(40, 1, 8, 8)
    model.train()
    got = condition_numbers(model, x)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        want = [np.linalg.cond(h.flatten(1).double().numpy()) for h in model.hidden(x)]
    assert len(got) == 5
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_backbones_without_hidden_use_their_taps() -> None:
    torch.manual_seed(0)
    model = FCN(depth=4, width=12, num_classes=3, input_shape=(16,))
    x = torch.randn(30, 16)
    reps = representations(model, x)
    assert len(reps) == len(model.sc_taps()) and not any(t._forward_hooks for t in model.sc_taps())
    want = [np.linalg.cond(h.detach().double().numpy()) for h in reps]
    np.testing.assert_allclose(condition_numbers(model, x), want, rtol=1e-9)


def test_dead_layer_is_capped_as_singular() -> None:
    torch.manual_seed(0)
    model = PlainNet(depth=4, width=8, batch_norm=False, beta=0.0, input_shape=(1, 4, 4))
    with torch.no_grad():
        model.layers[1].weight.zero_()
        model.layers[1].bias.fill_(-1.0)  # ReLU(-1) = 0: every unit of layer 1 is dead
    values = condition_numbers(model, torch.randn(20, 1, 4, 4))
    assert values[0] < 1e6 and values[1] == SINGULAR and values[2] == SINGULAR
    assert math.isfinite(SINGULAR) and 1e15 < SINGULAR < 1e16


def test_bad_condition_config_is_one_line(tmp_path: Path) -> None:
    assert build_condition({"enabled": False, "samples": 0}, tmp_path) == []
    for cfg, needle in (
        ({"enabled": True, "samples": 1}, "condition.samples=1 is invalid"),
        ({"enabled": True, "every_n_epochs": 0}, "condition.every_n_epochs=0 is invalid"),
        ({"enabled": True, "sample": 5}, "unknown keys ['sample']"),
    ):
        with pytest.raises(ConfigError, match=None) as err:
            build_condition(cfg, tmp_path)
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_tiny_plainnet_run_writes_condition_csv_and_metrics(tmp_path: Path) -> None:
    from scnet import train
    from scnet.cli.common import compose_config

    cfg = compose_config([
        "backbone=plainnet", "depth=6", "data=digits", "sc=off", "trainer.max_epochs=3",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false", "logger.wandb.mode=disabled",
        "condition.enabled=true", "condition.samples=100", "condition.every_n_epochs=2",
    ])  # fmt: skip
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    OmegaConf.save(cfg, tmp_path / "cfg.yaml")
    datamodule, module = train.prepare(cfg)
    metrics = train.fit_and_test(cfg, run_dir, datamodule, module)
    table = pd.read_csv(run_dir / CONDITION_FILE)
    assert list(table["epoch"].unique()) == [1, 2]  # every 2nd epoch, and the last one
    assert list(table[table["epoch"] == 2]["layer"]) == [0, 1, 2, 3, 4]
    assert (table["cond"] >= 1.0).all()
    last = table[table["epoch"] == 2]["log10_cond"]
    assert metrics["cond/log10_last"] == pytest.approx(float(last.iloc[-1]), abs=1e-4)
    assert metrics["cond/log10_median"] == pytest.approx(float(last.median()), abs=1e-4)
    assert not any(t._forward_hooks for t in module.backbone.sc_taps())


def test_components_labels_match_their_table() -> None:
    assert components({"backbone.batch_norm": True, "backbone.beta": 0.01,
                       "backbone.max_norm": 2.0}) == "BN + LReLU + max-norm"  # fmt: skip
    assert components({"backbone.batch_norm": "False", "backbone.beta": "0.0",
                       "backbone.max_norm": float("nan")}) == "none"  # fmt: skip
    assert components({"backbone.batch_norm": False, "backbone.beta": 0.0,
                       "backbone.max_norm": None}) == "none"  # fmt: skip
    assert set(paper.SEED003_TABLE1) == set(ORDER) - {"none"}


def _fake_sweep(tmp_path: Path) -> pd.DataFrame:
    """8 combinations x 2 seeds; 'LReLU' has only a failed trial; per-run condition.csv."""
    rows, expected = [], []
    for bn in (True, False):
        for beta in (0.0, 0.01):
            for max_norm in (None, 2.0):
                config = {"backbone.batch_norm": bn, "backbone.beta": beta,
                          "backbone.max_norm": max_norm}  # fmt: skip
                expected.append(config)
                label = components(config)
                for seed in (0, 1):
                    run_dir = tmp_path / "runs" / f"{label}-{seed}".replace(" ", "")
                    run_dir.mkdir(parents=True)
                    failed = label == "LReLU"
                    acc = 0.5 + 0.1 * len(label.split("+")) + 0.01 * seed
                    pd.DataFrame({"epoch": [0] * 3 + [1] * 3, "layer": [0, 1, 2] * 2,
                                  "cond": 1.0, "log10_cond": [1, 2, 3, 1, 2, 3 + seed]}).to_csv(
                        run_dir / CONDITION_FILE, index=False)  # fmt: skip
                    rows.append({
                        **config, "seed": seed, "state": "FAIL" if failed else "COMPLETE",
                        "test/acc": None if failed else acc, "train/acc": None if failed else acc + 0.05,
                        "cond/log10_last": None if failed else 3.0 + seed, "cond/log10_median": 2.0,
                        "run_dir": str(run_dir),
                    })  # fmt: skip
    results = pd.DataFrame(rows)
    results.attrs.update({"keys": ["backbone.batch_norm", "backbone.beta", "backbone.max_norm"],
                          "metric": "test/acc", "expected": expected})  # fmt: skip
    return results


def test_plainnet_table1_and_condition_figure(tmp_path: Path) -> None:
    results = _fake_sweep(tmp_path)
    out = tmp_path / "report"
    md, csv_path, tex = TABLES["plainnet_table1"](results, tmp_path, out)
    lines = [x for x in md.read_text().splitlines() if x.startswith("| ") and "---" not in x][1:]
    assert [x.split(" | ")[0].lstrip("| ") for x in lines] == list(ORDER)  # their order, then none
    full = next(x for x in lines if x.startswith("| BN + LReLU + max-norm "))
    # acc = 0.5 + 0.1 * 3 + 0.01 * seed -> test error 20 and 19 % -> 19.50 ± 0.71; train -5 points
    assert "| 14.50 ± 0.71 | 19.50 ± 0.71 | 2 | 0 | 0.11 | 5.48 | 3.50 | 2.00 |" in full
    lrelu = next(x for x in lines if x.startswith("| LReLU |"))
    assert "| failed | failed | 0 | 2 | 92.37 | 92.03 |" in lrelu  # both its trials failed
    assert (
        "| none |" in md.read_text()
        and "1 combination(s) have no completed trial" in md.read_text()
    )
    table = pd.read_csv(csv_path)
    assert len(table) == 8 and "train_error_values" not in table
    assert r"$\kappa$" in tex.read_text() and r"\begin{tabular}" in tex.read_text()
    (png,) = FIGURES["condition_per_layer"](results, tmp_path, out)
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000


def test_report_refuses_a_sweep_without_the_component_keys(tmp_path: Path) -> None:
    results = pd.DataFrame({"state": ["COMPLETE"], "test/acc": [0.5], "depth": [20]})
    results.attrs.update({"keys": ["depth"], "metric": "test/acc", "expected": []})
    with pytest.raises(ConfigError, match="needs the grid keys backbone.batch_norm"):
        TABLES["plainnet_table1"](results, tmp_path, tmp_path / "out")
