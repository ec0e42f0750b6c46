"""Atomic file writes: a temp file in the same folder, fsynced, then renamed over the target.

Why by hand: ``os.replace`` is atomic only within one file system, and Lightning's own
"atomic" checkpoint save writes its temp file under ``$TMPDIR`` (fsspec transactions), so on
another file system the final "move" is a copy that truncates the old file first: a full disk
destroyed a good ``best.ckpt`` that way. Writing the temp file beside the target keeps the
rename atomic; a failed write leaves the previous file untouched and no temp file behind.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any


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


def append_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Append ``rows`` (with ``header`` first when the file is new) all or nothing.

    Why not a plain append: a full disk mid-append left a torn last line that readers choke
    on. Here the file is cut back to its previous length when the write fails, so it keeps
    exactly the rows it had (rewriting the whole file atomically would cost O(rows) per step).
    """
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    new = not path.exists() or path.stat().st_size == 0
    if new:
        writer.writerow(header)
    writer.writerows(rows)
    with open(path, "ab") as handle:
        start = handle.tell()
        try:
            write_all(handle, buffer.getvalue().encode())
            handle.flush()
        except BaseException:
            handle.truncate(start)
            raise


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
