"""scnet-run takes Hydra's own flags as any Hydra app does (issue 11 item 1) and names the key a
typo meant (item 2). In-process through ``scnet.cli.run.main`` unless the console matters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scnet.cli.common import group_options
from scnet.cli.run import main

TINY = ["experiment=demo", "depth=8", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]  # fmt: skip


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_groups_and_options(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "--help")
    assert code == 0 and not err
    assert out.startswith("scnet-run: one training run")
    for group in ("backbone", "data", "sc", "optim", "trainer", "experiment"):
        assert f"{group}: {', '.join(group_options(group))}" in out
    assert "sc:\n  enabled: true" in out  # the config follows, overridable key by key
    assert list(tmp_path.iterdir()) == []


def test_hydra_help_and_info(capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "--hydra-help")
    assert code == 0 and "--multirun" in out and "--config-dir" in out
    code, out, _ = run(capsys, "--info", "searchpath")
    assert code == 0 and "file://" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["job", "hydra", "all"])
def test_cfg_prints_the_composed_config(kind: str, capsys, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "--cfg", kind, "sc.weight=0.5", "depth=56")
    assert code == 0, err
    if kind != "hydra":
        assert "weight: 0.5" in out and "depth: 56" in out
    if kind != "job":
        assert "hydra:" in out or "run:\n" in out
    assert list(tmp_path.iterdir()) == []  # printing a config writes nothing


def test_flags_and_overrides_in_any_order(capsys) -> None:
    code, out, _ = run(capsys, "sc.weight=0.3", "--cfg", "job", "--resolve", "seed=4")
    assert code == 0 and "weight: 0.3" in out and "seed: 4" in out


def test_shell_completion_script(capsys) -> None:
    code, out, _ = run(capsys, "--shell-completion", "install=bash")
    assert code == 0 and "hydra_bash_completion" in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["sc.wieght=0.2"], "did you mean sc.weight?"),
        (["+sc.wieght=0.2"], "did you mean sc.weight?"),
        (["optim.momentun=0.5"], "did you mean optim.momentum?"),
        (["+trainer.max_epoch=2"], "did you mean trainer.max_epochs?"),
        (["--cfg", "job", "sc.wieght=0.2"], "did you mean sc.weight?"),
    ],
)
def test_typo_names_the_key_and_never_advises_plus(argv, words, capsys) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and not out
    assert err.count("\n") == 1 and words in err
    assert "To append" not in err and "use +" not in err


def test_config_dir_adds_the_users_configs(capsys, tmp_path: Path, monkeypatch) -> None:
    mine = tmp_path / "my_conf" / "experiment"
    mine.mkdir(parents=True)
    (mine / "mine.yaml").write_text("# @package _global_\nsc:\n  weight: 0.35\nseed: 7\n")
    (mine / "broken.yaml").write_text("# @package _global_\nsc:\n  weight: -1\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "-cd", "my_conf", "--cfg", "job", "experiment=mine")
    assert code == 0, err
    assert "weight: 0.35" in out and "seed: 7" in out
    # The preflight validates what the user's config composes to, before any run.
    code, out, err = run(capsys, "-cd", "my_conf", "experiment=broken")
    assert code == 2 and "sc.weight=-1" in err and err.count("\n") == 1


def test_config_name_picks_the_primary_config(capsys, tmp_path: Path) -> None:
    (tmp_path / "quick.yaml").write_text("defaults:\n  - config\n  - _self_\nseed: 11\n")
    code, out, err = run(capsys, "-cd", str(tmp_path), "-cn", "quick", "--cfg", "job")
    assert code == 0 and "seed: 11" in out, err
    code, _, err = run(capsys, "-cn", "no_such_config", "seed=1")
    assert code == 2 and err.startswith("scnet-run: error:") and err.count("\n") == 1


def test_multirun_runs_each_combination(tmp_path: Path, capsys) -> None:
    sweep_dir = tmp_path / "multi"
    code, _, err = run(capsys, "-m", *TINY, "sc.weight=0.1,0.5", "logger=csv",
                       f"hydra.sweep.dir={sweep_dir}")  # fmt: skip
    assert code == 0, err[-2000:]
    results = sorted(sweep_dir.glob("*/result.json"))
    assert len(results) == 2
    assert all(json.loads(p.read_text())["status"] == "completed" for p in results)


def test_multirun_refuses_a_bad_job_before_any_runs(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "-m", *TINY, "sc.weight=0.1,-3", f"hydra.sweep.dir={tmp_path}/m")
    assert code == 2 and "sc.weight=-3" in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()


def test_console_script_help_exit_zero(tmp_path: Path) -> None:
    """As a user types it: a real process, exit 0, the help on stdout, nothing on stderr."""
    proc = subprocess.run([sys.executable, "-m", "scnet.cli.run", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "Config groups" in proc.stdout and not proc.stderr


@pytest.mark.parametrize("path", ["/tmp/a=b,c/x y", "/tmp/it's", "/tmp/[x]/{y}"])
def test_path_override_round_trips_through_hydras_parser(path):
    from scnet.cli.common import override_value, path_override

    assert override_value([path_override("hydra.run.dir", path)], "hydra.run.dir") == path


def test_run_dir_and_resume_with_override_grammar_in_the_path(tmp_path):
    """A run dir whose path holds '=', ',' and a space (a sweep's --seeds/--set look dir does):
    the run lands there, and resuming from its last.ckpt continues in that same dir."""
    from scnet.cli.common import path_override
    from tests.conftest import TINY_RUN, read_result, run_cli

    run_dir = tmp_path / "looks" / "seeds=3,4 depth=20"
    first = run_cli("run", *TINY_RUN, path_override("hydra.run.dir", run_dir))
    assert first.returncode == 0, first.stderr
    ckpt = path_override("ckpt_path", run_dir / "checkpoints" / "last.ckpt")
    resumed = run_cli("run", *TINY_RUN, "trainer.max_epochs=2", ckpt)
    assert resumed.returncode == 0, resumed.stderr
    result = read_result(run_dir)
    assert result["status"] == "completed" and result["metrics"]["epochs"] == 2
    assert sorted(p.name for p in (tmp_path / "looks").iterdir()) == ["seeds=3,4 depth=20"]


def test_a_new_callback_node_with_its_target_is_accepted(capsys) -> None:
    """docs/configuration.md's example: +callbacks.NAME._target_=… and its arguments compose."""
    code, out, err = run(capsys, "--cfg", "job",
                         "+callbacks.swa._target_=lightning.pytorch.callbacks.StochasticWeightAveraging",
                         "+callbacks.swa.swa_lrs=0.01")  # fmt: skip
    assert code == 0, err
    assert "StochasticWeightAveraging" in out and "swa_lrs: 0.01" in out
