"""Atomic file writes: a temp file in the same folder, fsynced, then renamed over the target.

Why by hand: ``os.replace`` is atomic only within one file system, and Lightning's own
"atomic" checkpoint save writes its temp file under ``$TMPDIR`` (fsspec transactions), so on
another file system the final "move" is a copy that truncates the old file first: a full disk
destroyed a good ``best.ckpt`` that way. Writing the temp file beside the target keeps the
rename atomic; a failed write leaves the previous file untouched and no temp file behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write(handle)`` on a temp file beside ``path``, fsync it, rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)  # reopened by name, so the handle says which file it writes
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; keep the permissions open() gives
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)  # the rename itself survives a power cut
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: write_all(handle, data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def write_all(handle: IO[bytes], data: bytes, chunk: int = 1 << 20) -> None:
    """Write ``data`` in chunks (one place where a full disk shows up, for tests to reach)."""
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        handle.write(view[start : start + chunk])


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a directory: the rename still happened
        pass
    finally:
        os.close(fd)
