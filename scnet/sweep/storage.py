"""Where a sweep's Optuna study lives.

Default: an Optuna ``JournalStorage`` over a ``JournalFileBackend`` file in the sweep dir. Its
appends are serialized by a lock file, so several processes (or machines on a shared file
system) can work on one study. ``--storage`` takes a database URL (``postgresql://…``,
``sqlite:///…``) or a journal file path (``journal:PATH`` or a plain path).
"""

from __future__ import annotations

import time
from pathlib import Path

from scnet.errors import ConfigError
from scnet.secrets import redact_text

JOURNAL_FILE = "optuna.journal"
RDB_SCHEMES = ("postgresql", "mysql", "sqlite")


def describe(url: str | None, sweep_dir: Path) -> str:
    """The storage as a URL-ish string for messages and optuna-dashboard (password masked)."""
    if url is None:
        return str(sweep_dir / JOURNAL_FILE)
    return redact_text(url)


def is_rdb(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0].split("+", 1)[0] in RDB_SCHEMES


def journal_path(url: str | None, sweep_dir: Path) -> Path | None:
    if url is None:
        return sweep_dir / JOURNAL_FILE
    if is_rdb(url):
        return None
    return Path(url.removeprefix("journal:").removeprefix("file:"))


def _with_driver(url: str) -> str:
    """SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; use psycopg2 when only it is installed."""
    import importlib.util

    if not url.startswith("postgresql://") or importlib.util.find_spec("psycopg"):
        return url
    if importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    raise ConfigError("--storage postgresql://…: no PostgreSQL driver: pip install psycopg2-binary")


def open_storage(url: str | None, sweep_dir: Path):
    """Open (creating if needed) the storage; unreachable ones raise one ConfigError line."""
    import optuna

    path = journal_path(url, sweep_dir)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(path))
            return optuna.storages.JournalStorage(backend)
        except OSError as err:
            raise ConfigError(f"--storage {path}: cannot open the journal file ({err})") from None
    if "://" not in url:
        raise ConfigError(f"--storage {describe(url, sweep_dir)}: not a database URL or file path")
    url = _with_driver(url)
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
        except Exception as err:  # sqlalchemy/driver errors: many types, one message
            # Workers starting together race to create Optuna's tables; the losers retry.
            if "IntegrityError" in type(err).__name__ and attempt < 4:
                time.sleep(1.0 + attempt)
                continue
            _raise_unreachable(url, sweep_dir, err)
    raise AssertionError("unreachable")


def _raise_unreachable(url: str, sweep_dir: Path, err: Exception) -> None:
    first = redact_text(str(err).strip().splitlines()[0]) if str(err).strip() else ""
    raise ConfigError(
        f"--storage {describe(url, sweep_dir)}: cannot connect ({type(err).__name__}: {first})"
    ) from None
