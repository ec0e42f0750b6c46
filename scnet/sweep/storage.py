"""Where a sweep's Optuna study lives, and the study-wide lock.

- Default: SQLite (Optuna's ``RDBStorage``) at ``<sweep dir>/optuna.db``, for drivers on one
  machine. SQLite's locking is unreliable on network file systems: do not share it across nodes.
- ``--storage postgresql://user@host/db`` for drivers on many machines.
- No journal files: Optuna's ``JournalStorage`` has no heartbeat, so a trial whose node died
  could never be re-run; that is the guarantee this engine is built on.

Heartbeats are Optuna's (``heartbeat_interval``/``grace_period``, kept by the database clock, so
hosts need no clock agreement). Their settings are stored in the study when it is created and
every later driver uses the study's values: a driver with a shorter ``--stale-after`` can no
longer take a live trial from another.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

from scnet.errors import ConfigError
from scnet.secrets import redact_text

DB_FILE = "optuna.db"
SCHEMES = ("sqlite", "postgresql")  # the two the fault tests cover
HINTS = {"postgres": "postgresql", "pg": "postgresql", "psql": "postgresql", "sqlite3": "sqlite"}


def resolve_url(url: str | None, sweep_dir: Path) -> str:
    """The storage URL (the default SQLite file, or ``url`` checked); bad ones: one line."""
    if url is None:
        return f"sqlite:///{sweep_dir / DB_FILE}"
    shown = redact_text(url)
    if "://" not in url:
        raise ConfigError(
            f"--storage {shown}: not a database URL: use sqlite:///PATH (one machine) or "
            "postgresql://USER@HOST/DB (several)"
        )
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme in HINTS:
        raise ConfigError(
            f"--storage {shown}: unknown scheme {scheme!r}: did you mean {HINTS[scheme]}://?"
        )
    if scheme == "sqlite" and url.split(":///", 1)[-1] in ("", ":memory:"):
        raise ConfigError(
            f"--storage {shown}: an in-memory SQLite study cannot be shared by workers"
        )
    if scheme not in SCHEMES:
        raise ConfigError(
            f"--storage {shown}: unknown scheme {scheme!r}: use one of {', '.join(SCHEMES)} "
            "(journal files are not supported: they have no heartbeat)"
        )
    return _with_driver(url)


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; use psycopg2 when only it is installed."""
    if not url.startswith("postgresql://") or importlib.util.find_spec("psycopg"):
        return url
    if importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    raise ConfigError("--storage postgresql://…: no PostgreSQL driver: pip install psycopg2-binary")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def describe(url: str) -> str:
    """The URL for messages and the optuna-dashboard command (password masked)."""
    return redact_text(url)


def dashboard_command(url: str) -> str:
    """An optuna-dashboard command line that opens this storage (tested in test_sweep_slow)."""
    note = (
        " (password masked: give it via PGPASSWORD or ~/.pgpass)" if "***@" in describe(url) else ""
    )
    shown = describe(url).replace(":***@", "@")
    return f"optuna-dashboard '{shown}'{note}"


def _sqlite_immediate(engine) -> None:
    """SQLite transactions start as readers and fail at once (no busy wait) when two try to
    become writers; ``BEGIN IMMEDIATE`` takes the write lock first, so concurrent drivers queue
    on the busy timeout instead (SQLAlchemy's documented pysqlite recipe)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def open_storage(url: str, heartbeat_s: int, grace_s: int):
    """Optuna's RDBStorage with heartbeats; unreachable databases raise one ConfigError line."""
    import optuna
    import sqlalchemy

    kwargs: dict = {"pool_pre_ping": True}
    if is_sqlite(url):
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 120}, "poolclass": sqlalchemy.pool.NullPool}
    for attempt in range(5):
        try:
            with _creating(url):
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s, grace_period=grace_s
                )
            if is_sqlite(url):
                _sqlite_immediate(storage.engine)
            return storage
        except Exception as err:  # sqlalchemy/driver errors: many types, one message
            # Drivers starting together race to create Optuna's tables; the losers retry.
            if "IntegrityError" in type(err).__name__ and attempt < 4:
                time.sleep(0.5 + attempt)
                continue
            first = redact_text(str(err).strip().splitlines()[0]) if str(err).strip() else ""
            raise ConfigError(
                f"--storage {describe(url)}: cannot connect ({type(err).__name__}: {first})"
            ) from None
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _creating(url: str) -> Iterator[None]:
    """Serialize SQLite schema creation between local drivers (its DDL is not concurrent-safe)."""
    if not is_sqlite(url):
        yield
        return
    with _flock(Path(url.split(":///", 1)[1] + ".lock")):
        yield


@contextlib.contextmanager
def study_lock(storage, url: str, study_name: str) -> Iterator[None]:
    """One process at a time reclaims, re-queues and claims trials of this study.

    Optuna's own re-queue (``fail_stale_trials`` then the callback's ``add_trial``) is two
    writes by whichever process won the FAIL; a kill -9 between them loses the trial, and a
    FAIL/add done by two processes duplicates it. Under this lock every such pass re-reads the
    study, so it is done exactly once. The lock dies with its holder: ``flock`` is released by
    the kernel, a PostgreSQL advisory lock with its connection.
    """
    if is_sqlite(url):
        with _flock(Path(url.split(":///", 1)[1] + ".lock")):
            yield
        return
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(study_name.encode()).digest()[:8], "big", signed=True)
    with storage.engine.connect() as conn:
        conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a dead connection has released it already
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
