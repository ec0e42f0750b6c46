"""scnet-sweep's user-facing contract: storage URLs, secrets, study identity, retries, GPUs,
smaller looks, preflight. Fake trials (tests/sweep_fake_run.py) keep it fast."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from scnet.errors import ConfigError
from scnet.sweep import engine
from scnet.sweep import spec as spec_mod
from tests.test_sweep import fake_env, results, starts, sweep_cmd, write_sweep


def run_cli(tmp: Path, *argv: str) -> int:
    from scnet.cli.sweep import parse_args, run

    return run(
        parse_args([*argv, "--sweeps-dir", str(tmp / "sw"), "--output-dir", str(tmp / "out")])
    )


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("postgres://u:pw@db/x", "unknown scheme 'postgres': did you mean postgresql://?"),
        ("redis://u:pw@db/0", "unknown scheme 'redis': use one of sqlite, postgresql"),
        ("my-study.journal", "not a database URL"),
        ("journal:/tmp/x.log", "not a database URL"),
        ("mysql://u:pw@db/x", "unknown scheme 'mysql'"),
        ("sqlite:///:memory:", "in-memory SQLite study cannot be shared"),
    ],
)
def test_unknown_storage_is_one_line_exit_2_nothing_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, needle: str
) -> None:
    """Before: any unknown scheme became a journal file named after the URL (password and all)."""
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on"]')
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    with pytest.raises(ConfigError) as err:
        run_cli(tmp_path, "tiny", "--storage", url)
    assert needle in str(err.value) and "pw" not in str(err.value), str(err.value)
    proc = subprocess.run([*sweep_cmd(tmp_path, "tiny"), "--storage", url], capture_output=True,
                          text=True, env=fake_env(0))  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert not list(work.iterdir()) and not (tmp_path / "out").exists()


def test_secrets_never_reach_the_study_logs_or_results(tmp_path: Path) -> None:
    """An API key given as an override is masked in the stored study identity, the trial log,
    sweep_trial.json and results.csv (the trial process itself still gets it)."""
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on"]', "[0]")
    secret = "sk-SEKRET-4242"
    proc = subprocess.run([*sweep_cmd(tmp_path, "tiny"), f"+logger.wandb.api_key={secret}"],
                          env=fake_env(0), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert secret not in proc.stdout + proc.stderr
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert any(p.name == "optuna.db" for p in files) and any(
        p.name == "sweep_trial.log" for p in files
    )
    for p in files:
        assert secret.encode() not in p.read_bytes(), p
    log = next(p for p in files if p.name == "sweep_trial.log").read_text()
    assert "api_key=***" in log


def test_study_identity_same_resumes_different_is_refused(tmp_path: Path) -> None:
    """Same sweep + overrides + output dir resumes; another output dir or other overrides on
    the same storage is refused in one line naming the difference (before: silently adopted)."""
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on"]', "[0]")
    spec = spec_mod.load("tiny", tmp_path / "sw")
    url = f"sqlite:///{tmp_path}/shared.db"

    def ctx(out: str, overrides: list[str]) -> engine.Context:
        return engine.Context(spec=spec, overrides=overrides, sweep_dir=tmp_path / out / "sweeps" / "tiny",
                              storage_url=url)  # fmt: skip

    engine.open_study(ctx("a", ["depth=8"]))
    engine.open_study(ctx("a", ["depth=8"]))  # resume: fine
    with pytest.raises(
        ConfigError, match=r"with overrides \['depth=8'\] \(now overrides \['depth=14'\]\)"
    ):
        engine.open_study(ctx("a", ["depth=14"]))
    with pytest.raises(
        ConfigError, match=r"with --output-dir .*/a \(now --output-dir .*/b\)"
    ) as err:
        engine.open_study(ctx("b", ["depth=8"]))
    assert "\n" not in str(err.value)


@pytest.mark.slow  # several sweep processes: ~60 s on 2 busy cores
def test_a_run_dir_from_another_configuration_is_not_adopted(tmp_path: Path) -> None:
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on"]', "[0]")
    first = subprocess.run(sweep_cmd(tmp_path, "tiny", "depth=8"), env=fake_env(0), text=True,
                           capture_output=True, timeout=120)  # fmt: skip
    assert first.returncode == 0, first.stderr
    db = tmp_path / "out" / "sweeps" / "tiny" / "optuna.db"
    db.unlink()  # a study lost, its run dirs kept: a new sweep must not resume them
    second = subprocess.run(sweep_cmd(tmp_path, "tiny", "depth=14"), env=fake_env(0), text=True,
                            capture_output=True, timeout=120)  # fmt: skip
    assert second.returncode == 1 and "made by another configuration" in second.stdout, (
        second.stdout
    )
    assert len(starts(tmp_path / "out" / "sweeps" / "tiny" / "runs" / "trial-0000")) == 1


def test_one_point_grid_runs(tmp_path: Path) -> None:
    """Before: a KeyError: 'grid_id' traceback per trial (GridSampler with one point)."""
    write_sweep(tmp_path / "sw", "one", '  sc: ["on"]', "[0]")
    proc = subprocess.run(sweep_cmd(tmp_path, "one"), env=fake_env(0), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "1 trials: 1 completed" in proc.stdout


@pytest.mark.slow  # several sweep processes: ~60 s on 2 busy cores
def test_retry_failed_reruns_once_per_invocation_from_the_checkpoint(tmp_path: Path) -> None:
    write_sweep(tmp_path / "sw", "nan", "  optim.lr: [1.0e+30]", "[0]")
    run_dir = tmp_path / "out" / "sweeps" / "nan" / "runs" / "trial-0000"
    first = subprocess.run(sweep_cmd(tmp_path, "nan"), env=fake_env(0), capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert first.returncode == 1 and "--retry-failed" in first.stdout
    again = subprocess.run(sweep_cmd(tmp_path, "nan"), env=fake_env(0), capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert again.returncode == 1 and len(starts(run_dir)) == 1  # failed trials stay failed
    for n in (2, 3):  # each --retry-failed re-runs it once: a deterministic failure cannot loop
        retry = subprocess.run([*sweep_cmd(tmp_path, "nan"), "--retry-failed"], env=fake_env(0),
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert retry.returncode == 1 and "re-running 1 failed trials" in retry.stdout
        assert len(starts(run_dir)) == n and starts(run_dir)[-1]["ckpt_path"]
    assert results(tmp_path, "nan")[0]["state"] == "FAIL"


def test_max_retry_is_validated_and_bounds_lost_trials(tmp_path: Path) -> None:
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "bad.yaml").write_text(
        "metric: m\ndirection: maximize\nsampler: grid\nmax_retry: 99\n"
    )
    with pytest.raises(ConfigError, match="max_retry must be an integer from 0 to 10"):
        spec_mod.load("bad", tmp_path / "sw")
    write_sweep(tmp_path / "sw", "one", '  sc: ["on"]', "[0]")
    spec = spec_mod.load("one", tmp_path / "sw")
    assert spec.max_retry == spec_mod.DEFAULT_MAX_RETRY == 2
    ctx = engine.Context(spec=spec, overrides=[], sweep_dir=tmp_path / "out", max_retry=1)
    study = engine.open_study(ctx)
    for _ in range(3):  # lose the trial three times (claimed, never named: its claimer died)
        with engine.lock(study._storage, ctx):
            engine.reclaim(study, ctx)
            trial_id = study._pop_waiting_trial_id()
        if trial_id is None:
            break
    states = [(t.state.name, t.user_attrs.get("retries", 0)) for t in study.get_trials()]
    assert states == [("FAIL", 0), ("FAIL", 1)], states  # re-run once (max_retry 1), then failed
    last = study.get_trials()[-1]
    assert engine.is_done(last, 1) and "lost 2 times" in engine.error_of(last, 1)


def test_gpu_refusal_and_idle_note(capsys: pytest.CaptureFixture[str]) -> None:
    from scnet.cli.sweep import gpu_slots

    with pytest.raises(
        ConfigError, match="--workers 4 x --gpus-per-trial 1 needs 4 GPUs, 1 visible"
    ):
        gpu_slots(4, 1, False, ["0"])
    assert gpu_slots(4, 1, True, ["0"]) == ["0"]  # --share-gpus: all on GPU 0, said by the flag
    assert gpu_slots(1, 2, False, ["0", "1", "2"]) == ["0,1"]
    assert "GPU 2 stays idle" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="needs 4 GPUs, 3 visible"):
        gpu_slots(1, 4, True, ["0", "1", "2"])
    assert gpu_slots(3, 1, False, []) == []  # CPU only


def test_seeds_and_set_shrink_into_a_separate_study(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]\n  depth: [8, 14, 20]', "[0, 1, 2]")
    assert run_cli(tmp_path, "tiny", "--seeds", "0", "--set", "depth=8,14", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "4 trials" in out and "trial-0003: seed=0 sc=off depth=14" in out
    assert "looks/seeds=0_depth=8,14/sweeps/tiny/runs" in out
    with pytest.raises(ConfigError, match="--set 'lr=1': use KEY=V1,V2 with KEY one of sc, depth"):
        run_cli(tmp_path, "tiny", "--set", "lr=1")
    with pytest.raises(ConfigError, match="--seeds 'a' is invalid"):
        run_cli(tmp_path, "tiny", "--seeds", "a")
    small = spec_mod.shrink(spec_mod.load("tiny", tmp_path / "sw"), "0", [])
    assert small.study_name == "tiny@seeds=0" and small.n_total == 6


@pytest.mark.parametrize(
    ("item", "values"),
    [("sc=on,off", ["on", "off"]), ("sc=off", ["off"]), ("depth=8,14", [8, 14]),
     ("depth=range(8,21,6)", [8, 14, 20]), ("optim.lr=0.1,1e-3", [0.1, 0.001]),
     ("sc.weight=0.0,null", [0.0, None])],
)  # fmt: skip
def test_set_reads_values_as_the_command_line_does(tmp_path: Path, item: str, values: list) -> None:
    """Before: --set sc=on,off went through YAML 1.1, so 'on'/'off' became True/False and
    the sweep was refused with 'sc=true is unknown'. Now Hydra's own override parser reads it."""
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]\n  depth: [8]', "[0]")
    key = item.split("=")[0]
    spec = spec_mod.load("tiny", tmp_path / "sw")
    spec.grid.setdefault(key, [0])
    assert spec_mod.shrink(spec, None, [item]).grid[key] == values


@pytest.mark.parametrize("item", ["depth=[8,14", "depth=interval(8,14)"])
def test_set_that_hydra_cannot_enumerate_is_one_line(tmp_path: Path, item: str) -> None:
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]\n  depth: [8]', "[0]")
    with pytest.raises(ConfigError, match=r"^--set 'depth=.*' is invalid: [^\n]+$"):
        spec_mod.shrink(spec_mod.load("tiny", tmp_path / "sw"), None, [item])


def test_preflight_reports_each_distinct_error_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every distinct trial config is validated by scnet.preflight before any trial starts."""
    import scnet
    from scnet.cli.sweep import preflight

    def validate(cfg, hardware: bool = True) -> None:
        if cfg.depth == 14:
            raise ConfigError("depth=14 is bad")

    fake = types.SimpleNamespace(validate=validate)
    monkeypatch.setitem(sys.modules, "scnet.preflight", fake)
    monkeypatch.setattr(scnet, "preflight", fake, raising=False)
    write_sweep(tmp_path / "sw", "tiny", "  depth: [8, 14]", "[0, 1]")
    spec = spec_mod.load("tiny", tmp_path / "sw")
    with pytest.raises(ConfigError, match="depth=14: depth=14 is bad"):
        preflight(spec, [])
    assert capsys.readouterr().err == ""  # one distinct error: one line
    write_sweep(tmp_path / "sw", "ok", "  depth: [8, 20]", "[0, 1]")
    preflight(spec_mod.load("ok", tmp_path / "sw"), [])
    write_sweep(tmp_path / "sw", "two", "  depth: [14, 26]", "[0]")
    with pytest.raises(ConfigError, match="depth=14 is bad"):
        run_cli(tmp_path, "two")  # the CLI runs it before any trial: nothing started
    assert not (tmp_path / "out").exists()


def _wandb_command(config: dict, run_config: dict) -> list[str]:
    """The command ``wandb agent`` runs for one suggested parameter set (wandb_agent.py's
    macro expansion, with W&B's own helpers)."""
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    command = sweep_utils.create_sweep_command(list(config["command"]))
    macros = sweep_utils.create_sweep_command_args({"args": run_config})
    macros.update(env=["/usr/bin/env"], interpreter=[sys.executable])
    out: list[str] = []
    for chunk in map(str, command):
        is_macro = chunk.startswith("${") and chunk.endswith("}")
        out += macros.get(chunk[2:-1]) or [] if is_macro else [chunk]
    return out


@pytest.mark.slow  # one real scnet-run: ~20 s idle, 90 s on 2 busy cores
def test_wandb_export_validates_and_its_command_runs_scnet_run(tmp_path: Path) -> None:
    """--export wandb: W&B's own validator (the ``sweeps`` package) finds no violation, its grid
    controller yields a run, and that run's command is a real scnet-run that completes."""
    import yaml
    from sweeps.config.cfg import schema_violations_from_proposed_config

    from sweeps import next_run

    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]', "[0, 1]")
    out = tmp_path / "tiny.wandb.yaml"
    small = ["depth=8", "trainer.max_epochs=1", "logger.wandb.mode=disabled",
             "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
             "trainer.limit_test_batches=1", f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    assert run_cli(tmp_path, "tiny", *small, "--export", "wandb", str(out)) == 0
    config = yaml.safe_load(out.read_text())
    assert config["method"] == "grid" and config["metric"] == {
        "name": "test/acc",
        "goal": "maximize",
    }
    assert config["parameters"] == {"seed": {"values": [0, 1]}, "sc": {"values": ["on", "off"]}}
    assert schema_violations_from_proposed_config(config) == []
    suggested = next_run(config, [], validate=True)
    cmd = _wandb_command(config, suggested.config)
    assert sorted(cmd[-2:]) == ["sc=on", "seed=0"] and "logger.wandb.group=tiny" in cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**fake_env(0), "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"status": "completed"' in (tmp_path / "run" / "result.json").read_text()


def test_wandb_export_of_a_tpe_space_is_bayes_with_the_same_distributions(tmp_path: Path) -> None:
    from sweeps.config.cfg import schema_violations_from_proposed_config

    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "tp.yaml").write_text(
        "metric: val/loss\ndirection: minimize\nsampler: tpe\nbase: [experiment=demo]\nn_trials: 5\n"
        "space:\n  optim.lr: {type: float, low: 0.001, high: 0.3, log: true}\n"
        "  depth: {type: int, low: 8, high: 20, step: 6}\n"
        "  optim: {type: categorical, choices: [sgd, adam]}\n"
    )
    from scnet.sweep.wandb_export import to_wandb

    config = to_wandb(spec_mod.load("tp", tmp_path / "sw"), [])
    assert config["method"] == "bayes" and config["run_cap"] == 5
    assert config["metric"] == {"name": "val/loss", "goal": "minimize"}
    assert config["parameters"]["optim.lr"] == {
        "distribution": "log_uniform_values", "min": 0.001, "max": 0.3}  # fmt: skip
    assert config["parameters"]["depth"] == {"distribution": "int_uniform", "min": 8, "max": 20}
    assert config["parameters"]["optim"] == {"values": ["sgd", "adam"]}
    assert schema_violations_from_proposed_config(config) == []


def test_preflight_checks_this_machines_gpus_only_for_local_trials(tmp_path: Path) -> None:
    """A GPU sweep is refused before any trial on a machine without GPUs, but can still be
    listed, exported or submitted to SLURM from it (its trials run elsewhere)."""
    from scnet import preflight as checks

    if checks.cuda_device_count():
        pytest.skip("this machine has a GPU")
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "gpu.yaml").write_text(TINY_GPU)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        run_cli(tmp_path, "gpu")
    assert run_cli(tmp_path, "gpu", "--dry-run") == 0
    assert run_cli(tmp_path, "gpu", "--export", "wandb", str(tmp_path / "w.yaml")) == 0
    assert not (tmp_path / "out").exists()


TINY_GPU = """\
metric: test/acc
direction: maximize
sampler: grid
base: [experiment=demo, trainer.accelerator=gpu, trainer.devices=1]
seeds: [0]
grid:
  sc: ["on", "off"]
"""


@pytest.mark.parametrize("torn", ["", '{"args": ["depth=', "[1, 2]", '{"args": 3}'])
def test_a_torn_run_dir_record_is_rewritten_not_a_traceback(tmp_path: Path, torn: str) -> None:
    """Before: an empty sweep_trial.json (its writer killed -9 mid-write) crashed every later
    worker that reached that trial with a JSONDecodeError traceback."""
    cmd = ["scnet-run", "sc=on", "seed=0", f"hydra.run.dir={tmp_path}"]
    (tmp_path / "sweep_trial.json").write_text(torn)
    assert engine._adopt_problem(tmp_path, cmd) == ""
    assert engine._adopt_problem(tmp_path, cmd) == ""  # the rewritten record is its own
    assert "made by another" in engine._adopt_problem(tmp_path, [*cmd[:-1], "sc=off"])


def test_a_kill_mid_write_of_the_run_dir_record_leaves_no_torn_file(tmp_path: Path) -> None:
    """The record is written atomically: SIGKILL half-way through the write leaves no
    sweep_trial.json at all, so the next worker records it afresh."""
    child = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from scnet.utils import io\n"
        "def half(handle, data, chunk=1):\n"
        "    handle.write(data[: len(data) // 2]); handle.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "io.write_all = half\n"
        "from scnet.sweep import engine\n"
        "engine._adopt_problem(Path(sys.argv[1]), ['scnet-run', 'sc=on', 'seed=0'])\n"
    )
    proc = subprocess.run([sys.executable, "-c", child, str(tmp_path)], timeout=60)
    assert proc.returncode == -9
    assert not (tmp_path / "sweep_trial.json").exists()
    assert engine._adopt_problem(tmp_path, ["scnet-run", "sc=on", "seed=0"]) == ""
    assert engine._adopt_problem(tmp_path, ["scnet-run", "sc=off", "seed=0"]) != ""


def test_a_looks_printed_report_command_reports_that_look_only(tmp_path: Path) -> None:
    """Before: after `--set sc=off` the printed command was `scnet-report NAME --output-dir
    OUT/looks/TAG`, whose report expected the full grid and drew every other cell 'missing'.
    Now it repeats the look's flags, and scnet-report expects only the look's cells."""
    import shlex

    from scnet.cli.report import parse_args, run

    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]\n  depth: [8, 14]', "[0, 1]")
    proc = subprocess.run(sweep_cmd(tmp_path, "tiny", "--set", "depth=8", "--seeds", "0,1"),
                          env=fake_env(0), capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "report: scnet-report" in x)
    words = shlex.split(line.split("report: ", 1)[1])[1:]
    assert words == ["tiny", "--seeds", "0,1", "--set", "depth=8", "--output-dir",
                     str(tmp_path / "out")]  # fmt: skip
    paths = run(parse_args([*words, "--sweeps-dir", str(tmp_path / "sw")]))
    look = tmp_path / "out" / "looks" / "seeds=0,1_depth=8"
    assert {p.parent for p in paths} == {look / "reports" / "tiny"}
    table = (look / "reports" / "tiny" / "summary.md").read_text()
    assert "missing" not in table and "| 14 |" not in table and table.count("| 8 |") == 2
    with pytest.raises(SystemExit):  # --runs reads run dirs: a look's flags make no sense there
        parse_args(["--runs", str(look), "--set", "depth=8"])
