"""Everything about continuing a run: which run dir, whether it may be (re)used, the checkpoint
to resume from, the life of ``metrics.csv`` and the W&B run id.

The rules (tested in ``tests/test_faults.py``), so that no run's files are ever lost:

* a run dir holding a *completed* run is never trained into again, except to train it on
  (``ckpt_path=<dir>/checkpoints/last.ckpt trainer.max_epochs=<more>``);
* a run dir holding a *started* run (``checkpoints/last.ckpt``) is continued only with
  ``ckpt_path``; re-running its command without it is refused with the resume command;
* ``metrics.csv`` survives a resume: rows after the resumed checkpoint's epoch are dropped
  (the resumed run logs them again) and new rows are appended; every save rewrites it
  atomically (:mod:`scnet.utils.io`);
* a resumed run logs into the same W&B run (its id is kept in ``<run dir>/wandb_id``).

Only the standard library is imported at module level: the CLI calls :func:`check_run_dir`
before Hydra or torch is loaded.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from scnet.errors import ConfigError
from scnet.utils.io import atomic_write_text

RESULT_FILE = "result.json"
METRICS_FILE = "metrics.csv"
WANDB_ID_FILE = "wandb_id"


def last_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def read_result(run_dir: Path) -> dict[str, Any]:
    """``result.json`` of ``run_dir`` ({} when absent or unreadable)."""
    try:
        return json.loads((Path(run_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return {}


def run_dir_of(ckpt_path: str | Path) -> Path | None:
    """The run dir a checkpoint belongs to (``<run dir>/checkpoints/x.ckpt``), else None."""
    path = Path(ckpt_path)
    return path.parent.parent if path.parent.name == "checkpoints" else None


def check_run_dir(run_dir: Path, resuming: bool, max_epochs: int | None = None) -> None:
    """Refuse to (re)use ``run_dir`` in any way that would overwrite a run's results.

    ``max_epochs`` (when known) lets a completed run be trained on for more epochs.
    """
    run_dir = Path(run_dir)
    done = read_result(run_dir)
    if done.get("status") == "completed":
        if not resuming:
            raise ConfigError(
                f"hydra.run.dir={run_dir} already holds a completed run; choose a new "
                "hydra.run.dir (nothing was overwritten)"
            )
        epochs = done.get("metrics", {}).get("epochs")
        if max_epochs is not None and epochs is not None and int(max_epochs) <= int(epochs):
            raise ConfigError(
                f"ckpt_path: the run in {run_dir} already completed its {int(epochs)} epochs; "
                f"pass trainer.max_epochs={int(epochs) + 1} or more to train it on "
                "(nothing was changed)"
            )
        return
    if not resuming and last_checkpoint(run_dir).is_file():
        raise ConfigError(
            f"hydra.run.dir={run_dir} holds an unfinished run (checkpoints/last.ckpt): resume it "
            f"with ckpt_path={last_checkpoint(run_dir)} or choose a new hydra.run.dir "
            "(nothing was overwritten)"
        )


def checkpoint_epoch(path: str | Path) -> int:
    """The epoch a checkpoint was saved in (read without running code from the file; a file
    that cannot resume training is refused: :func:`scnet.robust.read_checkpoint`)."""
    from scnet.robust import read_checkpoint

    return int(read_checkpoint(path)["epoch"])


#: Per-epoch CSVs of a run and the rows of the checkpoint's own epoch E they keep on resume.
#: last.ckpt is saved after validation, inside epoch E: rows written during E's training
#: steps are in it (kept); condition.csv's rows are written at the end of epoch E, after the
#: checkpoint, and Lightning runs that epoch end again on resume (so E's rows are dropped).
EPOCH_CSVS = {METRICS_FILE: 0, "grad_stats.csv": 0, "grad_nodes.csv": 0, "condition.csv": 1}


def start(run_dir: Path, ckpt_path: str | None) -> None:
    """Make the run's CSVs fit the start: trimmed to the checkpoint, or gone when fresh."""
    epoch = checkpoint_epoch(ckpt_path) if ckpt_path else None
    for name, redone in EPOCH_CSVS.items():
        path = Path(run_dir) / name
        if epoch is not None:
            trim_metrics(path, epoch - redone)
        else:  # a fresh start in a reused run dir that never saved a checkpoint: no stale rows
            path.unlink(missing_ok=True)


def trim_metrics(path: Path, last_epoch: int) -> None:
    """Drop ``metrics.csv`` rows logged after the checkpoint being resumed from.

    Rows of epochs the resumed run will redo would otherwise appear twice; earlier rows stay,
    and the resumed run appends after them.
    """
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames or [], list(reader)
    keep = [r for r in rows if not r.get("epoch") or int(float(r["epoch"])) <= last_epoch]
    if len(keep) != len(rows):
        write_csv(path, fields, keep)


def write_csv(path: Path, fields: list[str], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def metrics_logger(run_dir: Path) -> Any:
    """Lightning's CSVLogger writing ``<run dir>/metrics.csv``, resume-safe and atomic.

    Lightning's writer deletes an existing ``metrics.csv`` when it starts (erasing a resumed
    run's history) and rewrites it in place when a new column appears (a kill or a full disk
    then loses it). This one keeps the file, and every save writes the whole table (old rows +
    new, one header that is the union of all columns) to a temp file renamed over it, so a
    run killed in its first epoch leaves a file a resume can append to.
    """
    from lightning.pytorch.loggers import CSVLogger
    from lightning.pytorch.loggers.csv_logs import ExperimentWriter

    class ResumableWriter(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:  # never delete: see metrics_logger
            return

        def save(self) -> None:
            if not self.metrics:
                return
            path = Path(self.metrics_file_path)
            old_fields: list[str] = []
            old_rows: list[dict[str, Any]] = []
            if path.is_file():
                with open(path, newline="") as handle:
                    reader = csv.DictReader(handle)
                    old_rows, old_fields = list(reader), list(reader.fieldnames or [])
            fields = sorted(set(old_fields).union(*self.metrics))
            write_csv(path, fields, [*old_rows, *self.metrics])
            self.metrics_keys = fields
            self.metrics = []

    class ResumableCSVLogger(CSVLogger):
        @property
        def experiment(self) -> Any:
            if self._experiment is None:
                self._fs.makedirs(self.root_dir, exist_ok=True)
                self._experiment = ResumableWriter(log_dir=self.log_dir)
            return self._experiment

    return ResumableCSVLogger(save_dir=str(run_dir), name="", version="")


def wandb_id(run_dir: Path) -> str:
    """The W&B run id of ``run_dir``: read back on resume, created (and kept) on first use."""
    path = Path(run_dir) / WANDB_ID_FILE
    if path.is_file() and (known := path.read_text().strip()):
        return known
    import secrets

    new = secrets.token_hex(4)  # W&B's own ids are 8 base-36 characters; any short id works
    atomic_write_text(path, new + "\n")
    return new
