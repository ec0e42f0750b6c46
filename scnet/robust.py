"""Fault handling for single runs: unwritable or full disks, bad checkpoints, secrets on disk.

Everything here runs before training (so a bad environment costs seconds, not an epoch) or
wraps what training writes (so a crash never leaves a half-written checkpoint behind).
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scnet.errors import ConfigError, ScnetError
from scnet.secrets import redact, redact_text


class StorageError(ScnetError):
    """The run dir cannot be written (read-only, no permission, disk full)."""

    exit_code = 4


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def probe_write(folder: Path, size: int = 64 * 1024) -> None:
    """Write and delete ``size`` bytes in ``folder``: raises ``OSError`` if that is impossible.

    A real write (not ``os.access``) catches read-only mounts, ACLs and a full disk alike.
    """
    fd, name = tempfile.mkstemp(prefix=".scnet-probe-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        Path(name).unlink(missing_ok=True)


def check_writable(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Fail before Hydra creates anything when ``run_dir`` (or where it would go) is unwritable."""
    target = _nearest_existing(run_dir)
    if not target.is_dir():
        raise StorageError(
            f"{key}={run_dir} cannot be created: {target} is a file, not a folder; "
            f"pass {key}=<a writable folder>"
        )
    try:
        probe_write(target)
    except OSError as err:
        raise StorageError(storage_message(err, run_dir, key)) from None


def storage_message(err: OSError, where: Path | str, key: str = "hydra.run.dir") -> str:
    """One line for an ``OSError`` met while writing run outputs, with the fix."""
    if err.errno == errno.ENOSPC:
        return (
            f"no space left on device writing {err.filename or where}: free some space or pass "
            f"{key}=<a folder on a disk with room>; a started run resumes from its "
            "checkpoints/last.ckpt"
        )
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (
            f"{key}={where} is not writable ({os.strerror(err.errno)}): pass "
            f"{key}=<a writable folder>"
        )
    return f"cannot write {err.filename or where}: {err.strerror or err}; check the disk"


# --------------------------------------------------------------------------- checkpoints
# What scnet's and Lightning's checkpoints may hold beyond tensors and plain containers
# (hyper-parameters saved from an OmegaConf config, paths): torch's weights_only unpickler
# refuses every other global, so a crafted checkpoint cannot run code.
def _safe_globals() -> list[Any]:
    import collections
    import pathlib

    found: list[Any] = [collections.defaultdict, pathlib.PosixPath, pathlib.PurePosixPath]
    try:
        from omegaconf import DictConfig, ListConfig
        from omegaconf.base import ContainerMetadata, Metadata
        from omegaconf.nodes import AnyNode

        found += [DictConfig, ListConfig, ContainerMetadata, Metadata, AnyNode]
    except ImportError:  # pragma: no cover - omegaconf ships with Hydra
        pass
    return found


RESUME_KEYS = ("state_dict", "optimizer_states", "loops")


def read_checkpoint(path: str | Path) -> Mapping[str, Any]:
    """Open a checkpoint without running code from it, and check it can resume a run.

    ``torch.load(weights_only=True)`` (plus :func:`_safe_globals`) unpickles tensors and plain
    containers only; the metadata Lightning needs to resume is checked here so that a file
    that cannot resume is refused in one line before anything is built or written.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={path} does not exist: pass a checkpoint file such as <run dir>/checkpoints/last.ckpt"
        )
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # corrupt zip, truncated or crafted pickle, not a torch file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"ckpt_path={path} is not a readable checkpoint ({type(err).__name__}: {reason[:160]}); "
            "it was left as is: resume from another checkpoint (e.g. checkpoints/best.ckpt) "
            "or start afresh without ckpt_path"
        ) from None
    state = ckpt.get("state_dict") if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping):
        raise ConfigError(
            f"ckpt_path={path} is not a Lightning checkpoint (no state_dict): pass a file "
            "written by scnet-run, such as <run dir>/checkpoints/last.ckpt"
        )
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise ConfigError(
            f"ckpt_path={path} holds weights only (no {', '.join(missing)}): it cannot resume a "
            "run; resume from the run's checkpoints/last.ckpt"
        )
    for key in ("epoch", "global_step"):
        value = ckpt.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(
                f"ckpt_path={path} has corrupt metadata ({key}={value!r}, expected an integer "
                ">= 0): resume from another checkpoint (e.g. checkpoints/best.ckpt)"
            )
    return ckpt


def check_checkpoint(path: str | Path, module: Any) -> None:
    """Fail before training when ``path`` is unreadable or does not fit ``module``.

    Compares every tensor shape with the model's, so a wrong ``depth``/backbone is named
    precisely instead of surfacing as Lightning's multi-line ``load_state_dict`` error.
    """
    ckpt = read_checkpoint(path)
    _check_shapes(Path(path), ckpt["state_dict"], module.state_dict())


def _check_shapes(path: Path, saved: Mapping[str, Any], model: Mapping[str, Any]) -> None:
    missing = sorted(set(model) - set(saved))
    extra = sorted(set(saved) - set(model))
    hint = "resume with the same backbone, depth and data as the run that wrote it"
    if missing or extra:
        which = f"lacks {missing[0]}" if missing else f"has an unexpected {extra[0]}"
        raise ConfigError(
            f"ckpt_path={path} does not fit this model: it {which} "
            f"({len(missing)} missing, {len(extra)} unexpected tensors); {hint}"
        )
    for key, tensor in model.items():
        shape = tuple(getattr(saved[key], "shape", ()))
        if shape != tuple(tensor.shape):
            raise ConfigError(
                f"ckpt_path={path} does not fit this model: {key} has shape {shape} in the "
                f"checkpoint but {tuple(tensor.shape)} in the model; {hint}"
            )


# --------------------------------------------------------------------------- secrets
def redact_hydra_dir(run_dir: Path, subdir: str = ".hydra") -> None:
    """Mask secrets in the YAML files Hydra wrote (config, overrides, hydra) in place.

    Hydra saves the overrides verbatim before our code runs; a ``+logger.wandb.api_key=…`` or a
    storage URL with a password would otherwise sit on disk in plain text.
    """
    from omegaconf import OmegaConf

    folder = run_dir / subdir
    if not folder.is_dir():
        return
    for path in folder.glob("*.yaml"):
        data = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        clean = redact(_redact_overrides(data))
        if clean != data:
            OmegaConf.save(OmegaConf.create(clean), path)


def _redact_overrides(value: Any) -> Any:
    """``key=value`` strings (Hydra's override lists) with a secret-looking key are masked."""
    if isinstance(value, list):
        return [_redact_overrides(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_overrides(v) for k, v in value.items()}
    if isinstance(value, str) and "=" in value:
        key, rhs = value.split("=", 1)
        masked = redact({key.lstrip("+~").rsplit(".", 1)[-1]: rhs})
        return f"{key}={next(iter(masked.values()))}"
    return value


@contextmanager
def redacted_argv() -> Iterator[None]:
    """``sys.argv`` with secrets masked, for libraries that record it (W&B's metadata does).

    Only for the duration of the block: Lightning's DDP launcher re-runs ``sys.argv`` and
    must see the real command.
    """
    saved = sys.argv
    sys.argv = [saved[0], *(redact_text(a) for a in _redact_overrides(list(saved[1:])))]
    try:
        yield
    finally:
        sys.argv = saved
