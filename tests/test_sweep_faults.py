"""scnet-sweep under faults: exactly once under any race, on SQLite and PostgreSQL.

Trials are tests/sweep_fake_run.py (fast, Lightning-free). Its own ``flock`` on
``.fake_exclusive`` detects two trainings of one run dir at the same time (``overlap``),
independently of the engine's run-dir lock. Waits are on conditions (files, /proc, the study),
never on sleeps for ordering; every random choice is seeded.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from scnet.sweep import engine
from scnet.sweep import spec as spec_mod
from scnet.sweep.results import latest_by_point
from tests.conftest import fresh_db
from tests.test_sweep import fake_env, invocations, results, starts, sweep_cmd, write_sweep

# ----------------------------------------------------------------------------- helpers


def wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll ``predicate`` (a condition, not a delay) until true or fail after ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def session_pids(sid: int) -> list[int]:
    """Processes of session ``sid`` still alive (a driver started with start_new_session)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[3]) == sid and stat[0] != "Z":
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except OSError:
        return False


def flock_waiters(path: Path) -> int:
    """Processes blocked in flock() on ``path`` (the "->" lines of /proc/locks)."""
    ino = os.stat(path).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum("->" in ln and ln.split()[-3].rsplit(":", 1)[-1] == str(ino) for ln in lines)


def check_exactly_once(work: Path, name: str, n: int, url: str | None = None) -> dict[str, int]:
    """Every point completed by exactly one training, none trained twice at once."""
    runs = work / "out" / "sweeps" / name / "runs"
    overlaps, started = 0, 0
    for i in range(n):
        log = invocations(runs / f"trial-{i:04d}")
        assert sum(bool(x.get("done")) for x in log) == 1, (i, log)
        overlaps += sum(bool(x.get("overlap")) for x in log)
        started += len(starts(runs / f"trial-{i:04d}"))
    assert overlaps == 0
    rows = results(work, name)
    assert len(rows) == n and all(r["state"] == "COMPLETE" for r in rows), rows
    spec = spec_mod.load(name, work / "sw")
    study = engine.open_study(
        engine.Context(
            spec=spec, overrides=[], sweep_dir=work / "out" / "sweeps" / name, storage_url=url or ""
        )  # fmt: skip
    )
    complete = Counter(
        t.user_attrs["point"]
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
    )
    left = [
        t.number for t in study.get_trials(deepcopy=False) if t.state.name in ("WAITING", "RUNNING")
    ]
    assert set(complete) == set(range(n)) and not left, (complete, left)
    return {"trainings": started, "duplicates": sum(c - 1 for c in complete.values()), "lost": 0}


# ----------------------------------------------------------------------------- PostgreSQL


# ----------------------------------------------------------------------------- reclaimers


def _reclaimer(ctx: engine.Context, barrier) -> None:
    study = engine.open_study(ctx)
    barrier.wait()  # all reclaimers start their pass together
    with engine.lock(study._storage, ctx):
        engine.reclaim(study, ctx)


def reclaim_race(tmp: Path, url: str, how: str, rounds: int, n: int = 6) -> Counter:
    """Rounds of ``n`` processes reclaiming one lost trial at once; returns copies per round."""
    write_sweep(tmp / "sw", "one", '  sc: ["on"]', "[0]")
    spec = spec_mod.load("one", tmp / "sw")
    copies: Counter = Counter()
    fork = mp.get_context("fork")
    for r in range(rounds):
        sweep_dir = tmp / f"r{r}"
        if url.startswith("sqlite"):
            url_r = f"sqlite:///{sweep_dir}/optuna.db"
        else:
            url_r = fresh_db(url, f"race_{how}_{r}")
        ctx = engine.Context(spec=spec, overrides=[], sweep_dir=sweep_dir, storage_url=url_r,
                             stale_after=2)  # fmt: skip
        study = engine.open_study(ctx)
        trial = engine.next_trial(study, ctx)
        if how == "dead_owner":  # a worker on this host that was killed -9
            dead = subprocess.Popen([sys.executable, "-c", "pass"])
            dead.wait()
            owner = f"{socket.gethostname()}:{dead.pid}:1"
        else:  # a worker on another host whose heartbeat stopped (node loss)
            owner = "lost-node:1:1"
        study._storage.set_trial_user_attr(trial._trial_id, "worker", owner)
        if how == "heartbeat":
            lapsed = stale_ids(study, trial._trial_id)
            wait_for(lapsed, 30, "the heartbeat to lapse")
        barrier = fork.Barrier(n)
        procs = [fork.Process(target=_reclaimer, args=(ctx, barrier)) for _ in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        waiting = study.get_trials(deepcopy=False, states=(engine_state("WAITING"),))
        copies[len(waiting)] += 1
        assert [t.user_attrs["point"] for t in waiting] == [0], (r, len(waiting))
        assert waiting[0].user_attrs["retries"] == 1
    return copies


def stale_ids(study, trial_id: int):
    """A predicate: is ``trial_id`` stale by Optuna's heartbeat rule (the database clock)?"""
    return lambda: trial_id in study._storage._get_stale_trial_ids(study._study_id)


def engine_state(name: str):
    from optuna.trial import TrialState

    return TrialState[name]


@pytest.mark.parametrize("how", ["dead_owner", "heartbeat"])
def test_concurrent_reclaimers_requeue_a_lost_trial_exactly_once(tmp_path: Path, how: str) -> None:
    """Six processes find the same lost trial at once (SQLite): one WAITING copy, every round.
    (Before: 2-6 copies in 7 of 8 rounds.)"""
    assert reclaim_race(tmp_path, "sqlite", how, rounds=2) == Counter({1: 2})


@pytest.mark.slow
@pytest.mark.parametrize("how", ["dead_owner", "heartbeat"])
def test_concurrent_reclaimers_exactly_once_postgres(tmp_path: Path, pg_url: str, how: str) -> None:
    assert reclaim_race(tmp_path, pg_url, how, rounds=8) == Counter({1: 8})


# ----------------------------------------------------------------------------- chaos


def chaos(work: Path, url: str | None, rounds: int, seed: int, drivers: int = 4) -> dict:
    """Rounds of ``drivers`` drivers on one study, each round killing (-9) at random progress
    points a driver alone, a whole process group (node loss) or a single trial, then every
    remaining driver (the cluster goes down). Then the sweep is resumed to the end."""
    rng = random.Random(seed)
    write_sweep(work / "sw", "chaos", '  sc: ["on", "off"]\n  optim.lr: [0.1, 0.05]', "[0, 1, 2]")
    n = 12
    storage = ["--storage", url] if url else []
    cmd = sweep_cmd(work, "chaos", *storage, "--stale-after", "3")
    env = fake_env(0.6)
    runs = work / "out" / "sweeps" / "chaos" / "runs"

    def total_starts() -> int:
        return sum(len(starts(d)) for d in runs.glob("trial-*"))

    def done() -> int:
        return sum(any(x.get("done") for x in invocations(d)) for d in runs.glob("trial-*"))

    kills: Counter = Counter()
    played = 0
    for _ in range(rounds):
        if done() == n:
            break
        played += 1
        procs = [subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(drivers)]  # fmt: skip

        def live(procs=procs) -> list[subprocess.Popen]:
            return [p for p in procs if p.poll() is None]

        for _ in range(2):
            target = total_starts() + rng.randint(1, 3)
            wait_for(lambda t=target: total_starts() >= t or not live(), 300, "trials to start")
            if not live():
                break
            kind = rng.choice(["driver", "group", "trial"])
            victim = rng.choice(live())
            if kind == "trial":
                pids = [x["pid"] for d in runs.glob("trial-*") for x in starts(d)]
                pids = [p for p in pids if alive(p) and os.getsid(p) == victim.pid]
                if not pids:
                    kind = "group"
                else:
                    os.kill(rng.choice(pids), signal.SIGKILL)
            if kind == "driver":
                os.kill(victim.pid, signal.SIGKILL)
            elif kind == "group":
                os.killpg(victim.pid, signal.SIGKILL)
            kills[kind] += 1
        for p in procs:  # the rest of the cluster goes down too
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                kills["group at round end"] += 1
            p.wait()
            wait_for(lambda p=p: not session_pids(p.pid), 60, "the killed session to end")
    for _attempt in range(3):  # resume: workers and --retry-failed (killed trials failed)
        proc = subprocess.run([*cmd, "--retry-failed", "--workers", "2"], env=env, text=True,
                              capture_output=True, timeout=600)  # fmt: skip
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = check_exactly_once(work, "chaos", n, url)
    return {"rounds": played, "kills": dict(kills), **figures}


@pytest.mark.slow  # ~45 s idle, 90 s on 2 busy cores
def test_four_drivers_with_random_kills_sqlite(tmp_path: Path) -> None:
    figures = chaos(tmp_path, None, rounds=2, seed=1)
    assert figures["duplicates"] == 0 and sum(figures["kills"].values()) >= 4, figures


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 3])
def test_four_drivers_with_random_kills_sqlite_many_rounds(tmp_path: Path, seed: int) -> None:
    figures = chaos(tmp_path, None, rounds=6, seed=seed)
    print("chaos sqlite", figures)
    assert figures["duplicates"] == 0, figures


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 5])
def test_four_drivers_with_random_kills_postgres(tmp_path: Path, pg_url: str, seed: int) -> None:
    figures = chaos(tmp_path, fresh_db(pg_url, f"chaos{seed}"), rounds=6, seed=seed)
    print("chaos postgres", figures)
    assert figures["duplicates"] == 0, figures


# ----------------------------------------------------------------------------- run-dir lock


def test_run_dir_lock_a_duplicate_attempt_waits_then_adopts_the_result(tmp_path: Path) -> None:
    """The guard under the old duplicate re-queue: two WAITING attempts of one point, two
    workers. The second waits on the run dir's flock while the first trains (seen blocked in
    /proc/locks), then adopts its result.json: one training, never two at once."""
    write_sweep(tmp_path / "sw", "one", '  sc: ["on"]', "[0]")
    spec = spec_mod.load("one", tmp_path / "sw")
    sweep_dir = (tmp_path / "out" / "sweeps" / "one").resolve()
    study = engine.open_study(engine.Context(spec=spec, overrides=[], sweep_dir=sweep_dir))
    study.enqueue_trial({"seed": 0, "sc": "on"}, user_attrs={"point": 0, "attempt": 2})
    release = tmp_path / "release"
    env = {**fake_env(0.1), "FAKE_HOLD_SEED": "0", "FAKE_HOLD_UNTIL": str(release)}
    driver = subprocess.Popen([*sweep_cmd(tmp_path, "one"), "--workers", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    run_dir = sweep_dir / "runs" / "trial-0000"
    try:
        wait_for(lambda: starts(run_dir) and flock_waiters(run_dir / ".lock") == 1, 120,
                 "one trial running and the duplicate attempt blocked on the run-dir lock")  # fmt: skip
        assert len(starts(run_dir)) == 1
    finally:
        release.touch()
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 0, out + err
    log = invocations(run_dir)
    assert len(starts(run_dir)) == 1 and sum(bool(x.get("done")) for x in log) == 1, log
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states == ["COMPLETE", "COMPLETE"]  # the duplicate adopted the one result


def test_a_shorter_stale_after_cannot_take_a_live_trial(tmp_path: Path) -> None:
    """Driver A (--stale-after 600, heartbeat every 30 s) holds a trial; driver B starts with
    --stale-after 2 once A's heartbeat is older than 2 s. B uses the study's settings, so it
    leaves A's trial alone (before: it failed and re-ran it, and A crashed)."""
    write_sweep(tmp_path / "sw", "two", '  sc: ["on"]', "[0, 1]")
    release = tmp_path / "release"
    env = {**fake_env(0.1), "FAKE_HOLD_SEED": "1", "FAKE_HOLD_UNTIL": str(release)}
    first = subprocess.Popen([*sweep_cmd(tmp_path, "two"), "--stale-after", "600"], env=env,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    held = tmp_path / "out" / "sweeps" / "two" / "runs" / "trial-0001"
    try:
        wait_for(lambda: starts(held), 120, "driver A's trial")
        spec = spec_mod.load("two", tmp_path / "sw")
        ctx = engine.Context(spec=spec, overrides=[], sweep_dir=held.parents[1], stale_after=2)
        study = engine.open_study(ctx)
        rdb = study._storage._backend
        assert rdb.grace_period == 600  # the study's, not this context's
        rdb.grace_period = 2  # what B would have used before
        trial_id = study.get_trials(deepcopy=False)[1]._trial_id
        wait_for(stale_ids(study, trial_id), 30, "A's heartbeat to be older than 2 s")
        second = subprocess.run([*sweep_cmd(tmp_path, "two"), "--stale-after", "2"], env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert second.returncode == 0, second.stdout + second.stderr
        assert "1 still running in another driver" in second.stdout
    finally:
        release.touch()
    out = first.communicate(timeout=120)[0]
    assert first.returncode == 0, out
    assert len(starts(held)) == 1 and [r["state"] for r in results(tmp_path, "two")] == [
        "COMPLETE",
        "COMPLETE",
    ]


@pytest.mark.slow  # ~15 s idle, 40 s on 2 busy cores
def test_a_paused_worker_loses_its_trial_but_it_is_trained_once(tmp_path: Path) -> None:
    """Driver A's worker is paused (SIGSTOP) while its trial runs, so its heartbeat lapses and
    driver B re-queues and claims the trial. B's attempt waits on the run-dir lock (the trial
    process and A's worker still hold it); when A resumes, its tell is refused (taken over),
    it lets go, and B adopts the result. One training, never two at once; both exit 0."""
    write_sweep(tmp_path / "sw", "one", '  sc: ["on"]', "[0]")
    release = tmp_path / "release"
    env = {**fake_env(0.1), "FAKE_HOLD_SEED": "0", "FAKE_HOLD_UNTIL": str(release)}
    cmd = [*sweep_cmd(tmp_path, "one"), "--stale-after", "3"]
    a = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_dir = tmp_path / "out" / "sweeps" / "one" / "runs" / "trial-0000"
    b, worker = None, 0
    try:
        wait_for(lambda: starts(run_dir), 120, "A's trial")
        trial_pid = starts(run_dir)[0]["pid"]
        worker = int(Path(f"/proc/{trial_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(worker, signal.SIGSTOP)
        spec = spec_mod.load("one", tmp_path / "sw")
        study = engine.open_study(
            engine.Context(spec=spec, overrides=[], sweep_dir=run_dir.parents[1])
        )
        wait_for(stale_ids(study, study.get_trials()[0]._trial_id), 60, "A's heartbeat to lapse")
        b = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_for(lambda: flock_waiters(run_dir / ".lock") == 1, 120, "B blocked on the run dir")
        release.touch()
        wait_for(lambda: any(x.get("done") for x in invocations(run_dir)), 60, "the trial to end")
    finally:
        release.touch()
        if worker:
            os.kill(worker, signal.SIGCONT)
        for proc in (a, b):
            if proc is not None:
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, out + err
    assert len(starts(run_dir)) == 1 and not any(x.get("overlap") for x in invocations(run_dir))
    assert [t.state.name for t in study.get_trials()] == ["FAIL", "COMPLETE"]
    assert results(tmp_path, "one")[0]["state"] == "COMPLETE"


# ----------------------------------------------------------------------------- signals


def _held_driver(tmp_path: Path) -> tuple[subprocess.Popen, list[Path], Path]:
    write_sweep(tmp_path / "sw", "two", '  sc: ["on"]', "[0, 1]")
    release = tmp_path / "release"
    env = {**fake_env(0.2), "FAKE_HOLD_SEED": "*", "FAKE_HOLD_UNTIL": str(release)}
    driver = subprocess.Popen([*sweep_cmd(tmp_path, "two"), "--workers", "2"], env=env,
                              start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    runs = [tmp_path / "out" / "sweeps" / "two" / "runs" / f"trial-{i:04d}" for i in range(2)]
    wait_for(lambda: all(starts(d) and (d / "checkpoints" / "last.ckpt").is_file() for d in runs),
             120, "both trials running")  # fmt: skip
    return driver, runs, release


def _resumes_from_checkpoints(tmp_path: Path, runs: list[Path]) -> None:
    proc = subprocess.run(sweep_cmd(tmp_path, "two"), env=fake_env(0.1), capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for d in runs:
        began = starts(d)
        assert len(began) == 2 and began[1]["ckpt_path"], began
        assert sum(bool(x.get("done")) for x in invocations(d)) == 1


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)
def test_signal_to_the_driver_stops_workers_and_trials(tmp_path: Path, sig: int) -> None:
    """SIGTERM/SIGINT to the driver alone: each worker stops its trial (the trial sees SIGTERM,
    its checkpoint stays), records it interrupted, exits; one line, exit 143/130; the re-run
    resumes both trials from their checkpoints without spending a retry."""
    driver, runs, _ = _held_driver(tmp_path)
    os.kill(driver.pid, sig)
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 128 + sig, out + err
    assert err.count("\n") == 1 and f"interrupted by {signal.Signals(sig).name}" in err, err
    wait_for(lambda: not session_pids(driver.pid), 30, "no process left")
    for d in runs:
        assert {"SIGTERM"} == {x["signal"] for x in invocations(d) if "signal" in x}
    spec = spec_mod.load("two", tmp_path / "sw")
    study = engine.open_study(engine.Context(spec=spec, overrides=[], sweep_dir=runs[0].parents[1]))
    latest = latest_by_point(study)
    assert all(t.state.name == "FAIL" and t.user_attrs["interrupted"] for t in latest.values())
    _resumes_from_checkpoints(tmp_path, runs)
    retries = {t.user_attrs.get("retries") for t in latest_by_point(study).values()}
    assert retries == {0}  # an interruption is not the trial's fault


def test_workers_and_trials_end_when_their_driver_is_killed(tmp_path: Path) -> None:
    """kill -9 of the driver alone: its workers get SIGTERM from the kernel (PR_SET_PDEATHSIG),
    stop their trials and exit; nothing is left orphaned. (Before: workers ran on.)"""
    driver, runs, _ = _held_driver(tmp_path)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    wait_for(lambda: not session_pids(driver.pid), 60, "the orphaned workers and trials to end")
    for d in runs:
        assert any(x.get("signal") == "SIGTERM" for x in invocations(d)), invocations(d)
    _resumes_from_checkpoints(tmp_path, runs)


# ----------------------------------------------------------------------------- dashboard


def _dashboard_opens(tmp_path: Path, storage: list[str]) -> None:
    """Run a sweep, start the optuna-dashboard command it printed on 127.0.0.1, read its API."""
    import json
    import shlex
    import urllib.request

    pytest.importorskip("optuna_dashboard")
    write_sweep(tmp_path / "sw", "dash", '  sc: ["on"]', "[0]")
    proc = subprocess.run([*sweep_cmd(tmp_path, "dash"), *storage], env=fake_env(0),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "dashboard:" in ln)
    argv = shlex.split(line.split("dashboard:", 1)[1].split("(")[0])
    assert argv[0] == "optuna-dashboard"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(exe), *argv[1:], "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/studies"

    def answers() -> bool:
        assert server.poll() is None, server.stderr.read().decode()
        try:
            return urllib.request.urlopen(url, timeout=5).status == 200
        except OSError:
            return False

    try:
        wait_for(answers, 120, "optuna-dashboard to answer")
        studies = json.loads(urllib.request.urlopen(url, timeout=10).read())["study_summaries"]
        assert [s["study_name"] for s in studies] == ["dash"]
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.slow
def test_printed_dashboard_command_opens_the_sqlite_study(tmp_path: Path) -> None:
    _dashboard_opens(tmp_path, [])


@pytest.mark.slow
def test_printed_dashboard_command_opens_the_postgres_study(tmp_path: Path, pg_url: str) -> None:
    """Before: the printed PostgreSQL URL lacked the +psycopg2 driver suffix and failed."""
    _dashboard_opens(tmp_path, ["--storage", fresh_db(pg_url, "dash")])
