"""scnet-sweep: sweep files, exactly-once trials across workers, kill/resume, failures, storage.

Most engine tests swap scnet-run for tests/sweep_fake_run.py (SCNET_SWEEP_RUNNER), a
Lightning-free stand-in that keeps the run-dir contract and logs each invocation, so the
orchestration is tested in seconds. One default test and one slow test run real scnet-run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from scnet.errors import ConfigError
from scnet.sweep import engine
from scnet.sweep import spec as spec_mod
from scnet.sweep.results import latest_by_point

FAKE = Path(__file__).with_name("sweep_fake_run.py")
TINY = """\
description: tiny
reproduces: nothing
metric: test/acc
direction: maximize
sampler: grid
base: [experiment=demo]
seeds: {seeds}
grid:
{grid}
report:
  table: summary
  figures: [accuracy_vs_depth, fig4_convergence]
"""


def write_sweep(folder: Path, name: str, grid: str, seeds: str = "[0, 1]") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(TINY.format(grid=grid, seeds=seeds))
    return path


def sweep_cmd(tmp: Path, name: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scnet.cli.sweep", name, "--sweeps-dir", str(tmp / "sw"),
            "--output-dir", str(tmp / "out"), "--no-progress", *extra]  # fmt: skip


def fake_env(sleep: float) -> dict[str, str]:
    return {**os.environ, "SCNET_SWEEP_RUNNER": str(FAKE), "FAKE_SLEEP": str(sleep),
            "WANDB_MODE": "disabled"}  # fmt: skip


def results(tmp: Path, name: str) -> list[dict[str, str]]:
    with (tmp / "out" / "sweeps" / name / "results.csv").open() as fh:
        return list(csv.DictReader(fh))


def invocations(run_dir: Path) -> list[dict]:
    path = run_dir / "invocations.log"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def starts(run_dir: Path) -> list[dict]:
    """The fake run's start entries (one per trial process)."""
    return [x for x in invocations(run_dir) if "ckpt_path" in x]


# ----------------------------------------------------------------------------- spec


def test_spec_points_alias_and_values(tmp_path: Path) -> None:
    write_sweep(tmp_path, "a", '  sc: ["on", "off"]\n  sc.weight: [0.1, 0.5]', "[0, 1, 2]")
    (tmp_path / "b.yaml").write_text("alias_of: a\n")
    spec = spec_mod.load("b", tmp_path)
    assert spec.name == "a" and spec.n_total == 12
    points = spec.points()
    assert [p.index for p in points] == list(range(12))
    assert points[0].params == {"seed": 0, "sc": "on", "sc.weight": 0.1}
    assert len({json.dumps(p.params, sort_keys=True) for p in points}) == 12
    assert spec_mod.trial_overrides({"sc": "on", "x": None, "y": True}) == [
        "sc=on",
        "x=null",
        "y=true",
    ]
    for name in ("table2", "fig4_convergence", "fig7_connections", "sc_sensitivity",
                 "fig8_sc_weight", "fig9_batch_size", "tpe_search"):  # fmt: skip
        assert spec_mod.load(name).reproduces  # every shipped sweep file validates


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("metric: [unclosed\n", "malformed YAML"),
        ("metric: test/acc\ndirection: maximize\nsampler: grid\ngird: {}\n", "unknown key 'gird'"),
        ("metric: test/acc\ndirection: up\nsampler: grid\n", "direction"),
        ("metric: test/acc\ndirection: maximize\nsampler: grid\ngrid: {depth: 20}\n", "grid.depth"),
        (
            "metric: test/acc\ndirection: maximize\nsampler: tpe\nspace: {lr: {type: float}}\n",
            "space.lr.low/high",
        ),
    ],
)
def test_bad_sweep_files_are_one_line(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        spec_mod.load("bad", tmp_path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_inputs_one_line_nothing_written(tmp_path: Path) -> None:
    from scnet.cli.sweep import parse_args, run

    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]')
    cases = [
        (["nope"], "unknown sweep 'nope': choose one of tiny"),
        (["tiny", "dpeth=8"], "dpeth"),
        (["tiny", "sc=off"], "sc is varied by sweep tiny"),
        (["tiny", "--storage", "postgresql://u:secret@127.0.0.1:1/db"], "cannot connect"),
    ]
    for argv, needle in cases:
        args = parse_args([*argv, "--sweeps-dir", str(tmp_path / "sw"),
                           "--output-dir", str(tmp_path / "out")])  # fmt: skip
        with pytest.raises(ConfigError) as err:
            run(args)
        assert needle in str(err.value), str(err.value)
        assert "secret" not in str(err.value)
    assert not (tmp_path / "out" / "sweeps" / "tiny" / "results.csv").exists()
    proc = subprocess.run(sweep_cmd(tmp_path, "nope"), capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr


def test_dry_run_lists_trials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from scnet.cli.sweep import parse_args, run

    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]')
    args = parse_args(["tiny", "depth=8", "--dry-run", "--sweeps-dir", str(tmp_path / "sw"),
                       "--output-dir", str(tmp_path / "out")])  # fmt: skip
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "4 trials" in out and "trial-0003: seed=1 sc=off" in out and "depth=8" in out
    assert not (tmp_path / "out").exists()


def test_command_and_dead_owner_detection(tmp_path: Path) -> None:
    spec = spec_mod.load("tiny", write_sweep(tmp_path, "tiny", '  sc: ["on", "off"]').parent)
    ctx = engine.Context(spec=spec, overrides=["depth=8", "experiment=demo"], sweep_dir=tmp_path)
    run_dir = tmp_path / "runs" / "trial-0001"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_text("x")
    cmd = engine.command(ctx, {"seed": 1, "sc": "off"}, 1, run_dir)
    assert cmd.count("experiment=demo") == 1 and "logger.wandb.group=tiny" in cmd
    assert cmd[-2:] == [
        f"ckpt_path='{run_dir}/checkpoints/last.ckpt'",
        f"hydra.run.dir='{run_dir}'",
    ]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert engine.owner_dead(f"{socket.gethostname()}:{dead.pid}:1")
    assert not engine.owner_dead(engine.worker_id())
    assert not engine.owner_dead(f"otherhost:{dead.pid}:1")  # judged by its heartbeat only
    # a reused pid (same number, other start time) is a dead owner
    assert engine.owner_dead(f"{socket.gethostname()}:{os.getpid()}:1")


def test_trials_share_the_cores_between_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N concurrent trials each get cores // N intra-op threads (oversubscribed OpenMP pools
    made two CPU trials ~20x slower); a user's OMP_NUM_THREADS is kept."""
    spec = spec_mod.load("tiny", write_sweep(tmp_path, "tiny", '  sc: ["on"]').parent)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    for workers, want in ((1, "8"), (2, "4"), (3, "2"), (16, "1")):
        ctx = engine.Context(spec=spec, overrides=[], sweep_dir=tmp_path, workers=workers)
        assert engine.trial_env(ctx)["OMP_NUM_THREADS"] == want, workers
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    ctx = engine.Context(spec=spec, overrides=[], sweep_dir=tmp_path, workers=2)
    assert engine.trial_env(ctx)["OMP_NUM_THREADS"] == "3"


# ----------------------------------------------------------------------------- engine (fake runs)


def test_grid_two_workers_failure_report_and_noop_rerun(tmp_path: Path) -> None:
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]\n  optim.lr: [0.1, 1.0e+30]')
    cmd = sweep_cmd(tmp_path, "tiny", "depth=8", "--workers", "2")
    proc = subprocess.run(cmd, env=fake_env(0.2), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # failures make the exit code non-zero
    assert "8 trials: 4 completed, 4 failed" in proc.stdout and "optuna-dashboard" in proc.stdout
    rows = results(tmp_path, "tiny")
    assert [int(r["trial"]) for r in rows] == list(range(8))
    for r in rows:
        failing = float(r["optim.lr"]) > 1e20
        assert r["state"] == ("FAIL" if failing else "COMPLETE")
        assert ("NaN loss at step" in r["error"]) == failing
        assert bool(r["test/acc"]) != failing and Path(r["run_dir"]).is_dir()
    again = subprocess.run(cmd, env=fake_env(0.2), capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    for r in rows:  # completed and failed trials are not run again
        failing = float(r["optim.lr"]) > 1e20
        assert len(invocations(Path(r["run_dir"]))) == (1 if failing else 2)  # start (+ done)
    assert results(tmp_path, "tiny") == rows
    report = subprocess.run(
        [sys.executable, "-m", "scnet.cli.report", "tiny", "--sweeps-dir", str(tmp_path / "sw"),
         "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    out = tmp_path / "out" / "reports" / "tiny"
    names = {p.name for p in out.iterdir()}
    assert {"summary.md", "summary.csv", "summary.tex", "accuracy_vs_depth.png",
            "fig4_convergence.png"} <= names  # fmt: skip
    md = (out / "summary.md").read_text()
    assert "| on | 1e+30 | failed | 0 | 2 |" in md and "| on | 0.1 | 82.50 ± 0.71 | 2 | 0 |" in md


def _wait(predicate, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for the sweep")


def _kill_and_resume(tmp_path: Path, cmd: list[str], env: dict[str, str], n: int) -> None:
    """Start, SIGKILL the driver mid-sweep (then its orphans), re-run; check exactly-once."""
    runs = tmp_path / "out" / "sweeps" / "tiny" / "runs"
    driver = subprocess.Popen(cmd, env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def mid_sweep() -> bool:
        # Kill while a trial that started *after* another one finished is running (more run
        # dirs than the 2 workers): it has a whole trial ahead, so the kill surely lands in
        # flight. The two first trials run side by side and may finish a moment apart, which
        # under CPU load made "one done, one still running" a race.
        logs = [
            starts(d) + [x for x in invocations(d) if x.get("done")] for d in runs.glob("trial-*")
        ]
        done = sum(any(x.get("done") for x in log) for log in logs)
        started = sum(bool(log) and not any(x.get("done") for x in log) for log in logs)
        return done >= 1 and started >= 1 and sum(bool(log) for log in logs) > 2

    _wait(mid_sweep, timeout=300)
    os.kill(driver.pid, signal.SIGKILL)  # kill -9 of the driver ...
    driver.wait()
    os.killpg(driver.pid, signal.SIGKILL)  # ... and of the workers and trials it orphaned
    time.sleep(0.5)
    interrupted = {d.name: (d / "checkpoints" / "last.ckpt").is_file() for d in runs.glob("trial-*")
                   if starts(d) and not any(x.get("done") for x in invocations(d))}  # fmt: skip
    assert interrupted
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = results(tmp_path, "tiny")
    assert len(rows) == n and all(r["state"] == "COMPLETE" for r in rows)
    for i in range(n):
        log = invocations(runs / f"trial-{i:04d}")
        assert sum(bool(x.get("done")) for x in log) == 1, (i, log)  # exactly one completion
        assert not any(x.get("overlap") for x in log), (i, log)  # never trained twice at once
        if f"trial-{i:04d}" in interrupted:
            began = starts(runs / f"trial-{i:04d}")
            assert len(began) == 2  # re-run once
            # the re-run resumes from the checkpoint the interrupted attempt left, if any
            assert bool(began[1].get("ckpt_path")) == interrupted[f"trial-{i:04d}"]


def test_driver_that_ends_first_exits_0_while_another_runs(tmp_path: Path) -> None:
    """Two drivers share a study. Driver A holds seed 1's trial running; driver B, started
    then, finds nothing to claim and ends while A's trial runs: not a failure (exit 0; the CI
    failure of stop 8). When A ends, results.csv is complete."""
    write_sweep(tmp_path / "sw", "two", '  sc: ["on"]', "[0, 1]")
    release = tmp_path / "release"
    env = {**fake_env(0.1), "FAKE_HOLD_SEED": "1", "FAKE_HOLD_UNTIL": str(release)}
    cmd = sweep_cmd(tmp_path, "two")
    held = tmp_path / "out" / "sweeps" / "two" / "runs" / "trial-0001" / "invocations.log"
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        _wait(held.is_file, timeout=120)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "1 still running in another driver" in second.stdout, second.stdout
        assert "not finished" not in second.stdout
    finally:
        release.touch()
    out = first.communicate(timeout=120)[0]
    assert first.returncode == 0, out
    rows = results(tmp_path, "two")
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"]
    assert [len(invocations(Path(r["run_dir"]))) for r in rows] == [2, 2]  # each ran once


def test_trial_claimed_by_a_worker_killed_before_naming_itself_is_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 between the WAITING -> RUNNING claim and the ``worker`` attribute left a RUNNING
    trial with no owner. Claims and names are written under the study lock, so the next claim
    pass sees an unnamed RUNNING trial only when its claimer died: it is re-queued at once."""
    write_sweep(tmp_path / "sw", "two", '  sc: ["on"]', "[0, 1]")
    spec = spec_mod.load("two", tmp_path / "sw")
    ctx = engine.Context(spec=spec, overrides=[], sweep_dir=tmp_path / "out", stale_after=600)
    study = engine.open_study(ctx)
    waiting = study.get_trials(states=(optuna_state("WAITING"),))
    assert study._storage.set_trial_state_values(waiting[0]._trial_id, optuna_state("RUNNING"))
    for key, value in fake_env(0.1).items():
        monkeypatch.setenv(key, value)
    engine.worker_main(ctx)  # re-queues the unnamed trial, runs both points
    latest = latest_by_point(study)
    assert sorted(t.state.name for t in latest.values()) == ["COMPLETE", "COMPLETE"]
    assert latest[0].user_attrs["attempt"] == 2 and latest[0].user_attrs["retries"] == 1


def optuna_state(name: str):
    from optuna.trial import TrialState

    return TrialState[name]


def test_summary_counts_live_other_drivers_as_running(tmp_path: Path) -> None:
    """A RUNNING trial owned by a live process (another driver, another host) is someone
    else's: exit 0. Once its owner is a dead local process, it is unfinished: exit 1."""
    from scnet.cli.sweep import summary

    write_sweep(tmp_path / "sw", "one", '  sc: ["on"]', "[0]")
    spec = spec_mod.load("one", tmp_path / "sw")
    ctx = engine.Context(spec=spec, overrides=[], sweep_dir=tmp_path / "out", stale_after=60)
    study = engine.open_study(ctx)
    trial = engine.next_trial(study, ctx)
    study._storage.set_trial_user_attr(trial._trial_id, "worker", "elsewhere:1:1")
    assert summary(study, ctx, tmp_path / "r.csv", tmp_path) == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study._storage.set_trial_user_attr(
        trial._trial_id, "worker", f"{socket.gethostname()}:{dead.pid}:1"
    )
    assert summary(study, ctx, tmp_path / "r.csv", tmp_path) == 1


def test_killed_driver_resumes_every_trial_exactly_once(tmp_path: Path) -> None:
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]', "[0, 1, 2]")
    cmd = sweep_cmd(tmp_path, "tiny", "--workers", "2")
    _kill_and_resume(tmp_path, cmd, fake_env(5.0), 6)


@pytest.mark.slow
def test_real_runs_kill_and_resume(tmp_path: Path) -> None:
    """The same with real scnet-run trials (digits, depth 8, one epoch)."""
    os.environ.pop("SCNET_SWEEP_RUNNER", None)
    write_sweep(tmp_path / "sw", "tiny", '  sc: ["on", "off"]')
    real = tmp_path / "real_run.py"  # real scnet-run, wrapped to log invocations
    real.write_text(
        "import json, os, runpy, sys\nfrom pathlib import Path\n"
        "from scnet.cli.common import override_value\n"
        "d = Path(override_value(sys.argv, 'hydra.run.dir'))  # the engine quotes paths\n"
        "d.mkdir(parents=True, exist_ok=True)\n"
        "ck = next((a for a in sys.argv if a.startswith('ckpt_path=')), None)\n"
        "open(d / 'invocations.log', 'a').write(json.dumps({'ckpt_path': ck}) + '\\n')\n"
        "try:\n    sys.argv[0] = 'scnet-run'\n    runpy.run_module('scnet.cli.run', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code or 0\nelse:\n    code = 0\n"
        "if code == 0:\n    open(d / 'invocations.log', 'a').write(json.dumps({'done': True}) + '\\n')\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "SCNET_SWEEP_RUNNER": str(real), "WANDB_MODE": "disabled"}
    cmd = sweep_cmd(tmp_path, "tiny", "depth=8", "trainer.max_epochs=2", "--workers", "2")
    _kill_and_resume(tmp_path, cmd, env, 4)


@pytest.mark.slow  # ~30 s idle, ~2 min on 2 busy cores
def test_real_sweep_on_digits_with_a_failing_trial(tmp_path: Path) -> None:
    """End to end with real scnet-run: 2 workers, one trial diverges (lr 1e30 → NaN loss)."""
    write_sweep(tmp_path / "sw", "tiny", "  optim.lr: [0.05, 1.0e+30]", "[0]")
    cmd = sweep_cmd(tmp_path, "tiny", "depth=8", "trainer.max_epochs=1",
                    "logger.wandb.mode=disabled", "--workers", "2")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "SCNET_SWEEP_RUNNER"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "2 trials: 1 completed, 1 failed" in proc.stdout
    ok, bad = results(tmp_path, "tiny")
    assert ok["state"] == "COMPLETE" and 0.0 < float(ok["test/acc"]) <= 1.0
    assert bad["state"] == "FAIL" and "NaN loss at step 1" in bad["error"]
    run_dir = Path(ok["run_dir"])
    assert (run_dir / "metrics.csv").is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    report = subprocess.run(
        [sys.executable, "-m", "scnet.cli.report", "tiny", "--sweeps-dir", str(tmp_path / "sw"),
         "--output-dir", str(tmp_path / "out")], capture_output=True, text=True,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "out" / "reports" / "tiny" / "fig4_convergence.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- PostgreSQL


@pytest.mark.slow
def test_postgres_storage_three_workers_no_trial_twice(pg_url: str) -> None:
    """A real local PostgreSQL server; three drivers (one worker each) share one study."""
    from tests.conftest import fresh_db

    url = fresh_db(pg_url, "sweeps")
    work = Path(tempfile.mkdtemp(prefix="scnet-pgwork-"))
    write_sweep(work / "sw", "tiny", '  sc: ["on", "off"]', "[0, 1, 2, 3]")
    cmd = sweep_cmd(work, "tiny", "--storage", url)
    drivers = [subprocess.Popen(cmd, env=fake_env(0.5), stdout=subprocess.PIPE, text=True)
               for _ in range(3)]  # fmt: skip
    outs = [d.communicate(timeout=300)[0] for d in drivers]
    assert all(d.returncode == 0 for d in drivers), outs
    runs = work / "out" / "sweeps" / "tiny" / "runs"
    for i in range(8):
        log = invocations(runs / f"trial-{i:04d}")
        assert len(log) == 2 and log[1]["done"], (i, log)  # one run each, never two
    assert len({x["pid"] for d in runs.iterdir() for x in invocations(d)}) == 8
    rows = results(work, "tiny")
    assert len(rows) == 8 and all(r["state"] == "COMPLETE" for r in rows)
    shutil.rmtree(work, ignore_errors=True)


def test_tpe_sweep_runs_its_budget(tmp_path: Path) -> None:
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "tp.yaml").write_text(
        "metric: test/acc\ndirection: maximize\nsampler: tpe\nbase: [experiment=demo]\n"
        "space:\n  optim.lr: {type: float, low: 0.01, high: 0.3, log: true}\n"
        "  data.batch_size: {type: categorical, choices: [32, 64]}\nn_trials: 3\npruner: median\n"
    )
    proc = subprocess.run(sweep_cmd(tmp_path, "tp"), env=fake_env(0.1), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = results(tmp_path, "tp")
    assert len(rows) == 3 and all(r["state"] == "COMPLETE" for r in rows)
    assert all(
        0.01 <= float(r["optim.lr"]) <= 0.3 and r["data.batch_size"] in ("32", "64") for r in rows
    )
