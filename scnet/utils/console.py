"""What a run prints: the composed config as a compact tree, and nothing twice.

One line per event is the rule; :func:`quiet_libraries` removes what the libraries print
that is not an event of this run (see its comments for each).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: Sections shown first in the tree, in the order a run uses them.
ORDER = ("data", "backbone", "sc", "optim", "model", "callbacks", "logger", "trainer", "paths")


def config_tree(cfg: DictConfig) -> Any:
    """A rich Tree: a line per section (``key=value ...``), a branch per object in a section.

    Compact on purpose (about 20 lines): ``.hydra/config.yaml`` and ``--cfg job`` have it all.
    """
    from rich.tree import Tree

    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    tree = Tree("[bold]config[/bold]", guide_style="dim")
    run = {k: v for k, v in data.items() if not isinstance(v, dict)}
    sections = [k for k in ORDER if k in data] + [k for k in data if k not in ORDER]
    for key in sections:
        value = data[key]
        if not isinstance(value, dict):
            continue
        objects = {k: v for k, v in value.items() if isinstance(v, dict)}
        if key in ("model",) or not objects:  # model: its parts are printed in their sections
            tree.add(f"[bold]{key}[/bold] {_inline(value)}")
            continue
        branch = tree.add(f"[bold]{key}[/bold] {_inline(value)}".rstrip())
        for sub, node in objects.items():
            branch.add(f"{sub}: {_inline(node)}")
    tree.add(f"[bold]run[/bold] {_inline(run)}")
    return tree


def _inline(node: dict[str, Any]) -> str:
    """``key=value`` for the scalars of ``node`` (a ``_target_`` shown by its last name)."""
    parts = []
    for key, value in node.items():
        if isinstance(value, dict) or key == "_partial_":
            continue
        if key == "_target_":
            parts.insert(0, str(value).rsplit(".", 1)[-1])
            continue
        parts.append(f"{key}={value}")
    return " ".join(parts).replace("[", "\\[")  # rich markup: a list is not a style


def print_config(cfg: DictConfig) -> None:
    """Print the composed config (``print_config=false`` turns it off; rank 0 only)."""
    if not cfg.get("print_config", False) or os.environ.get("LOCAL_RANK", "0") != "0":
        return
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # a log file or pipe: do not crop at rich's 80 columns
        console = Console(highlight=False, width=400)
    console.print(config_tree(cfg))


# Lines that are not events of this run (issue 11): Lightning's advert for litlogger, the
# TPU count, an internal step, DDP's banner; a torch-internal deprecation inside Lightning; W&B's notice about
# a setting Lightning passes; DDP's advice to sync val/test metrics, which scnet deliberately
# does not (every process evaluates the whole split, see ClassifierModule._step).
_NOISE = (
    "Tip: For seamless cloud logging",
    "TPU available",
    "Loading `train_dataloader`",
    "All distributed processes registered",  # a 5-line banner after "Initializing distributed"
)
_NOISY_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\).*",
    r".*sync_dist=True.*",
    r".*The anonymous setting has no effect.*",
)


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in _NOISE)


def quiet_libraries() -> None:
    """One line per event: each Lightning line once, no adverts or internal warnings, and
    under DDP only rank 0 on the console (other ranks keep their own log file)."""
    import warnings

    for pattern in _NOISY_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        lib = logging.getLogger(name)
        # Lightning adds its own console handler when imported before logging is set up;
        # with Hydra's handlers on the root that printed every line twice.
        if logging.getLogger().handlers:
            for handler in list(lib.handlers):
                lib.removeHandler(handler)
            lib.propagate = True
        for handler in [*lib.handlers, *logging.getLogger().handlers]:
            if not any(isinstance(f, _DropNoise) for f in handler.filters):
                handler.addFilter(_DropNoise())
    if os.environ.get("LOCAL_RANK", "0") != "0":  # DDP: the console is rank 0's
        for handler in logging.getLogger().handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.ERROR)


def to_run_log(text: str, logger_name: str = "scnet") -> None:
    """Write ``text`` (a traceback) to run.log only: the console gets the one-line error."""
    log = logging.getLogger(logger_name)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, text, None, None)
    for handler in [*logging.getLogger().handlers, *log.handlers]:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
