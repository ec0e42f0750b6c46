"""Shared test helpers: running the CLIs in a subprocess, offline and into tmp dirs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# A 1-epoch ResNet-8 on sklearn digits: the cheapest real run (≈10 s, mostly imports).
TINY_RUN = ["experiment=demo", "depth=8", "trainer.max_epochs=1", "logger.wandb.mode=disabled"]


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("SCNET_DEBUG", None)
    env.update(extra)
    return env


def run_cli(module: str, *args: str, env: dict[str, str] | None = None, timeout: int = 600):
    """Run ``python -m scnet.cli.<module> args`` from the repo root; returns CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", f"scnet.cli.{module}", *args],
        cwd=REPO, env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def read_result(run_dir: Path) -> dict:
    return json.loads((run_dir / "result.json").read_text())


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """Give SIGINT/SIGTERM their handlers back after every test.

    Lightning sets SIGINT to SIG_IGN while it shuts down after an interrupt, and the sweep
    engine installs its own handlers: a test that lets either happen in-process would leave
    them to every later test, and a child process started later inherits an ignored SIGINT,
    so a test that sends it Ctrl-C (tests/test_signals.py) would fail by test order alone.
    """
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A throwaway local PostgreSQL server (``make pg-server`` installs Debian's package)."""
    pytest.importorskip("psycopg2")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries not found (make pg-server)")
    root = Path(tempfile.mkdtemp(prefix="scnet-pg-"))
    as_pg: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the postgres user
        shutil.chown(root, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    try:
        subprocess.run([*as_pg, str(bin_dir / "initdb"), "-D", str(data), "-U", "scnet",
                        "--auth=trust"], check=True, capture_output=True)  # fmt: skip
        subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"),
                        "-o", f"-p {port} -k {root} -h 127.0.0.1", "-w", "start"],
                       check=True, capture_output=True)  # fmt: skip
        yield f"postgresql://scnet@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_pg, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def fresh_db(pg_url: str, name: str) -> str:
    """A new database on the test server, so every test starts from an empty study."""
    import psycopg2

    conn = psycopg2.connect(pg_url.replace("postgresql://", "postgresql://", 1))
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return pg_url.rsplit("/", 1)[0] + f"/{name}"
