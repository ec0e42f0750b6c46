"""One validation pass over a composed run config, before anything is imported, built or written.

``validate(cfg)`` checks types, ranges and finiteness of every numeric key scnet reads (seed, SC,
optimizer, scheduler, warm-up, data sizes, trainer arguments, grad_stats, condition), the
trainer's keyword arguments against Lightning's ``Trainer`` signature and against the hardware
present, backbone x data compatibility, and an estimate of the network's size. It raises one
:class:`~scnet.errors.ConfigError` line that names the key, the value and what is allowed.

It imports neither torch nor Lightning (importing Lightning alone takes ~5 s on a 2-core box):
a bad value is answered in well under a second. Keys a config does not have are not checked,
so configs that add or drop keys stay valid; the model-level checks that need the built network
(tap indices, tap shapes) still run after the model is built.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from scnet.errors import ConfigError

__all__ = ["validate", "trainer_arguments", "cuda_device_count", "MAX_PARAMETERS"]

# numpy's (and so Lightning's seed_everything's) seed range.
SEED_MAX = 2**32 - 1
# Refuse networks estimated past this many parameters (4 GB of fp32 weights): the largest
# paper model (RoBERTa-large) has 3.6e8; a deeper one hangs in construction long before any
# useful error (depth=1000000004 is a valid 6n+2).
MAX_PARAMETERS = 1_000_000_000
# sc.weight scales a gradient that is added back into the network every step: past this,
# float32 gradients overflow within a few steps (the paper studies 0.1 to 0.5).
SC_WEIGHT_MAX = 100.0
TEXT_BACKBONES = ("scnet.models.transformer.",)
TEXT_DATA = ("scnet.data.mcqa.",)
TWO_D_DATA = ("scnet.data.mnist1d.",)  # inputs (1, L): no time x feature axes for an LSTM
ONE_D_BACKBONES = ("scnet.models.cnn1d.", "scnet.models.gru1d.")  # read (C, L) signals only


def validate(cfg: Any, hardware: bool = True) -> None:
    """Raise :class:`ConfigError` (one line) for the first bad value in ``cfg``; else None.

    ``hardware=False`` skips the checks against this machine's GPUs, for configs that will run
    elsewhere (a sweep submitted from a login node, exported, or dry-run).
    """
    from omegaconf import OmegaConf

    if not isinstance(cfg, Mapping):  # a plain dict is fine too (sweep engines, tests)
        raise ConfigError("the run config must be a mapping of keys")
    try:
        data = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
    except Exception as err:  # an interpolation that cannot resolve
        raise ConfigError(f"config cannot be resolved: {str(err).splitlines()[0]}") from None
    data = dict(data)
    data.pop("hydra", None)
    _finite_everywhere(data)
    for check in CHECKS:
        check(data)
    if hardware:
        _hardware(data)


# --------------------------------------------------------------------------- value helpers
def _get(cfg: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if value == "" or " " in value else value
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"{key}={_show(value)} is invalid: {allowed}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(key: str, lo: int | None = None, hi: int | None = None, null: bool = False):
    def check(cfg: Mapping[str, Any]) -> None:
        found, value = _get(cfg, key)
        if not found or (null and value is None):
            return
        rng = _range_words(lo, hi)
        words = f"an integer{rng}" + (" or null" if null else "")
        if not is_int(value):
            raise _bad(key, value, f"must be {words}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _bad(key, value, f"must be {words}")

    return check


def number(
    key: str,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    null: bool = False,
):
    def check(cfg: Mapping[str, Any]) -> None:
        found, value = _get(cfg, key)
        if not found or (null and value is None):
            return
        words = "a finite number" + _range_words(lo, hi, lo_open) + (" or null" if null else "")
        if not is_number(value) or not math.isfinite(value):
            raise _bad(key, value, f"must be {words}")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise _bad(key, value, f"must be {words}")
        if hi is not None and value > hi:
            raise _bad(key, value, f"must be {words}")

    return check


def _range_words(lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    if lo is not None and hi is not None:
        return f" {'>' if lo_open else '>='} {lo} and <= {hi}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def boolean(key: str):
    def check(cfg: Mapping[str, Any]) -> None:
        found, value = _get(cfg, key)
        if found and not isinstance(value, bool):
            raise _bad(key, value, "choose true or false")

    return check


def choice(key: str, options: tuple[Any, ...], null: bool = False):
    def check(cfg: Mapping[str, Any]) -> None:
        found, value = _get(cfg, key)
        if not found or (null and value is None):
            return
        if value not in options or isinstance(value, bool) != any(
            isinstance(o, bool) and o == value for o in options
        ):
            shown = ", ".join(dict.fromkeys(_show(o) for o in options)) + (", null" if null else "")
            raise _bad(key, value, f"choose one of {shown}")

    return check


def string(key: str, null: bool = False):
    def check(cfg: Mapping[str, Any]) -> None:
        found, value = _get(cfg, key)
        if not found or (null and value is None):
            return
        if not isinstance(value, str) or not value.strip():
            raise _bad(key, value, "must be a non-empty string" + (" or null" if null else ""))

    return check


def _finite_everywhere(cfg: Any, prefix: str = "") -> None:
    """No NaN or infinity anywhere: no scnet key means anything by them."""
    items: Iterator[tuple[Any, Any]]
    if isinstance(cfg, Mapping):
        items = iter(cfg.items())
    elif isinstance(cfg, list):
        items = iter(enumerate(cfg))
    else:
        return
    for key, value in items:
        path = f"{prefix}{key}" if isinstance(key, str) else f"{prefix.rstrip('.')}[{key}]"
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(path, value, "must be a finite number (no nan or inf)")
        _finite_everywhere(value, f"{path}.")


# --------------------------------------------------------------------------- run-level keys
def _seed_keys(cfg: Mapping[str, Any]) -> None:
    for key in ("seed", "data.seed", "data.data_seed", "data.perm_seed"):
        integer(key, 0, SEED_MAX)(cfg)


def _ckpt_path(cfg: Mapping[str, Any]) -> None:
    found, value = _get(cfg, "ckpt_path")
    if found and value is not None and (not isinstance(value, str) or not value.strip()):
        raise _bad(
            "ckpt_path", value,
            "pass a checkpoint file such as <run dir>/checkpoints/last.ckpt, or null to start afresh",
        )  # fmt: skip


# --------------------------------------------------------------------------- SC
def _sc(cfg: Mapping[str, Any]) -> None:
    boolean("sc.enabled")(cfg)
    number("sc.weight", 0, SC_WEIGHT_MAX)(cfg)
    integer("sc.k", 1)(cfg)
    integer("sc.rear", 1, null=True)(cfg)
    choice("sc.strategy", ("single", "multi"))(cfg)
    choice("sc.mode", ("propagate", "weight_only"))(cfg)
    found, conns = _get(cfg, "sc.connections")
    if not found or conns is None:
        return
    shape = "pass [[rear, front], ...] with integer tap indices, or null for the planner"
    if not isinstance(conns, list):
        raise _bad("sc.connections", conns, f"not a list: {shape}")
    if not conns:  # [] is ambiguous (none? the planner?): sc=off says "none" explicitly
        raise _bad("sc.connections", conns, f"empty: {shape}, or sc=off for no connection")
    for pair in conns:
        if not (isinstance(pair, list) and len(pair) == 2 and all(is_int(i) for i in pair)):
            raise _bad(
                "sc.connections", conns, f"{_show(pair)} is not a [rear, front] pair: {shape}"
            )
        rear, front = pair
        if front < 1 or rear < 1:
            raise _bad("sc.connections", conns, f"tap indices start at 1: {shape}")
        if front >= rear:
            raise _bad("sc.connections", conns, f"in {pair} the front must be < rear")


# --------------------------------------------------------------------------- optimizer
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("multistep", "cosine", "constant", "linear")


def _optim(cfg: Mapping[str, Any]) -> None:
    found, optim = _get(cfg, "optim")
    if not found or not isinstance(optim, Mapping):
        return
    if "_target_" not in optim:
        choice("optim.name", OPTIMIZERS)(cfg)
    for prefix in _optim_nodes(optim, "optim"):
        number(f"{prefix}.lr", 0, lo_open=True)(cfg)
        number(f"{prefix}.momentum", 0, 1)(cfg)
        number(f"{prefix}.weight_decay", 0)(cfg)
        number(f"{prefix}.eps", 0, lo_open=True)(cfg)
        boolean(f"{prefix}.nesterov")(cfg)
        boolean(f"{prefix}.decay_norm_and_bias")(cfg)
        number(f"{prefix}.gamma", 0, lo_open=True)(cfg)
        integer(f"{prefix}.warmup_epochs", 0)(cfg)
        integer(f"{prefix}.warmup_steps", 0)(cfg)
        number(f"{prefix}.warmup_ratio", 0, 1)(cfg)
        number(f"{prefix}.warmup_lr", 0, lo_open=True, null=True)(cfg)
        _betas(cfg, f"{prefix}.betas")
        _milestones(cfg, f"{prefix}.milestones")
    found, scheduler = _get(cfg, "optim.scheduler")
    if found and not isinstance(scheduler, Mapping):
        choice("optim.scheduler", SCHEDULERS)(cfg)
    found, momentum = _get(cfg, "optim.momentum")
    if found and is_number(momentum) and momentum >= 1:
        raise _bad("optim.momentum", momentum, "must be >= 0 and < 1 (1 never forgets a step)")


def _optim_nodes(node: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """``optim`` and any nested optimizer/scheduler node (``optim.optimizer`` etc.)."""
    yield prefix
    for key, value in node.items():
        if isinstance(value, Mapping):
            yield from _optim_nodes(value, f"{prefix}.{key}")


def _betas(cfg: Mapping[str, Any], key: str) -> None:
    found, betas = _get(cfg, key)
    if found and not (
        isinstance(betas, list) and len(betas) == 2
        and all(is_number(b) and 0 <= b < 1 for b in betas)
    ):  # fmt: skip
        raise _bad(key, betas, "must be [beta1, beta2], each >= 0 and < 1")


def _milestones(cfg: Mapping[str, Any], key: str) -> None:
    found, stones = _get(cfg, key)
    if not found or stones is None:
        return
    allowed = (
        "must be a list of fractions of trainer.max_epochs, each > 0 and <= 1 (e.g. [0.5, 0.75])"
    )
    if not isinstance(stones, list) or not all(is_number(s) and 0 < s <= 1 for s in stones):
        raise _bad(key, stones, allowed)
    if stones != sorted(stones):
        raise _bad(key, stones, "must be in increasing order")


# --------------------------------------------------------------------------- trainer
@functools.lru_cache(maxsize=1)
def trainer_arguments() -> frozenset[str]:
    """The keyword arguments of the installed Lightning's ``Trainer.__init__``.

    Read from its source with ``ast`` instead of ``inspect.signature``: importing Lightning
    takes ~5 s here, parsing the one file ~20 ms, and it is always the installed version.
    """
    source = _lightning_file("pytorch", "trainer", "trainer.py")
    if source is None:
        return frozenset()
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.ClassDef) and node.name == "Trainer":
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args
                    return frozenset(a.arg for a in [*args.args, *args.kwonlyargs][1:])
    return frozenset()


@functools.lru_cache(maxsize=1)
def precision_values() -> tuple[Any, ...]:
    """Lightning's accepted ``precision`` values, from the ``Literal``s in its source."""
    source = _lightning_file("fabric", "plugins", "precision", "precision.py")
    found: list[Any] = []
    if source is not None:
        for node in ast.parse(source.read_text()).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.startswith("_PRECISION_INPUT_")
                and isinstance(node.value, ast.Subscript)
            ):
                found += [
                    c.value for c in ast.walk(node.value.slice) if isinstance(c, ast.Constant)
                ]
    return tuple(dict.fromkeys(found)) or (
        "64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true",
        "64", "32", "16", "bf16", 64, 32, 16,
    )  # fmt: skip


def target_parameters(target: str) -> frozenset[str] | None:
    """Keyword arguments of an scnet ``_target_`` (class or function), read with ``ast``.

    None when unknown or open-ended (``**kwargs``; not an scnet target): the constructor then
    judges. scnet's packages import torch in their ``__init__``, hence the source, not import.
    """
    module, _, name = target.rpartition(".")
    if not module.startswith("scnet."):
        return None
    path = Path(__file__).parent.joinpath(*module.split(".")[1:]).with_suffix(".py")
    if not path.is_file():
        return None
    for node in ast.parse(path.read_text()).body:
        func = node
        if isinstance(node, ast.ClassDef) and node.name == name:
            func = next(
                (f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"),
                None,
            )
        elif not (isinstance(node, ast.FunctionDef) and node.name == name):
            continue
        if func is None or func.args.kwarg is not None:
            return None
        args = func.args
        names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
        return frozenset(n for n in names if n not in ("self", "cls"))
    return None


def _lightning_file(*parts: str) -> Path | None:
    spec = importlib.util.find_spec("lightning")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.is_file() else None


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
STRATEGIES = (
    "auto", "ddp", "ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_find_unused_parameters_true",
    "ddp_find_unused_parameters_false", "ddp_spawn_find_unused_parameters_true", "fsdp",
    "deepspeed", "single_device", "dp",
)  # fmt: skip
# Keys of the trainer node that configure the node itself, not Trainer arguments.
_TRAINER_META = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


def _trainer(cfg: Mapping[str, Any]) -> None:
    found, trainer = _get(cfg, "trainer")
    if not found or not isinstance(trainer, Mapping):
        return
    known = trainer_arguments()
    for key in trainer:
        if known and key not in known and key not in _TRAINER_META:
            from scnet.cli.common import closest_key

            guess = closest_key(key, sorted(known))
            hint = (
                f"did you mean trainer.{guess}?" if guess else "see lightning.Trainer's arguments"
            )
            raise _bad(
                f"trainer.{key}", trainer[key], f"not an argument of lightning.Trainer; {hint}"
            )
    integer("trainer.max_epochs", 1, null=True)(cfg)
    integer("trainer.min_epochs", 0, null=True)(cfg)
    _max_steps(cfg)
    integer("trainer.min_steps", 0, null=True)(cfg)
    integer("trainer.num_nodes", 1)(cfg)
    integer("trainer.accumulate_grad_batches", 1)(cfg)
    integer("trainer.log_every_n_steps", 1, null=True)(cfg)
    integer("trainer.check_val_every_n_epoch", 1, null=True)(cfg)
    integer("trainer.num_sanity_val_steps", -1, null=True)(cfg)
    integer("trainer.reload_dataloaders_every_n_epochs", 0)(cfg)
    number("trainer.gradient_clip_val", 0, null=True)(cfg)
    choice("trainer.gradient_clip_algorithm", ("norm", "value"), null=True)(cfg)
    for flag in (
        "enable_progress_bar", "enable_checkpointing", "enable_model_summary", "sync_batchnorm",
        "detect_anomaly", "inference_mode", "use_distributed_sampler", "barebones",
    ):  # fmt: skip
        boolean(f"trainer.{flag}")(cfg)
    choice("trainer.deterministic", (True, False, "warn"), null=True)(cfg)
    choice("trainer.benchmark", (True, False), null=True)(cfg)
    choice("trainer.precision", precision_values(), null=True)(cfg)
    choice("trainer.accelerator", ACCELERATORS)(cfg)
    _strategy(cfg)
    _limits(cfg)
    _devices(cfg)


def _max_steps(cfg: Mapping[str, Any]) -> None:
    found, value = _get(cfg, "trainer.max_steps")
    if found and value is not None and not (is_int(value) and (value == -1 or value >= 1)):
        raise _bad("trainer.max_steps", value, "must be an integer >= 1, or -1 (no limit)")


def _strategy(cfg: Mapping[str, Any]) -> None:
    found, value = _get(cfg, "trainer.strategy")
    if found and value is not None and not isinstance(value, Mapping):
        choice("trainer.strategy", STRATEGIES)(cfg)


def _limits(cfg: Mapping[str, Any]) -> None:
    for name in ("limit_train_batches", "limit_val_batches", "limit_test_batches",
                 "limit_predict_batches", "overfit_batches", "val_check_interval"):  # fmt: skip
        key = f"trainer.{name}"
        found, value = _get(cfg, key)
        if not found or value is None:
            continue
        lowest = 1 if name in ("limit_train_batches", "val_check_interval") else 0
        ok = (is_int(value) and value >= lowest) or (
            isinstance(value, float) and (0 < value <= 1 or (value == 0 and lowest == 0))
        )
        if not ok:
            what = "train" if lowest else "run"
            raise _bad(
                key, value,
                f"must be a batch count >= {lowest} or a fraction in (0, 1] of the batches to "
                f"{what}" + (" (0 would train nothing)" if name == "limit_train_batches" else ""),
            )  # fmt: skip
    found, fdr = _get(cfg, "trainer.fast_dev_run")
    if found and not (isinstance(fdr, bool) or (is_int(fdr) and fdr >= 0)):
        raise _bad("trainer.fast_dev_run", fdr, "choose true, false or a batch count >= 0")


def _devices(cfg: Mapping[str, Any]) -> None:
    found, value = _get(cfg, "trainer.devices")
    if not found or value is None:
        return
    allowed = "an integer >= 1, -1 (all), auto, or a list of device ids such as [0, 1]"
    if isinstance(value, str):
        if (
            value == "auto"
            or value.strip("-").isdigit()
            and int(value) not in (0,)
            and int(value) >= -1
        ):
            return
        if all(p.strip().isdigit() for p in value.split(",") if p.strip()) and "," in value:
            return
        raise _bad("trainer.devices", value, f"must be {allowed}")
    if is_int(value):
        if value == -1 or value >= 1:
            return
        raise _bad("trainer.devices", value, f"must be {allowed} (0 devices cannot train)")
    if isinstance(value, list) and value and all(is_int(v) and v >= 0 for v in value):
        return
    raise _bad("trainer.devices", value, f"must be {allowed}")


def cuda_device_count() -> int:
    """NVIDIA GPUs this process may use, without importing torch (which costs ~2 s).

    The driver lists one folder per GPU under /proc/driver/nvidia/gpus; CUDA_VISIBLE_DEVICES
    narrows that down as CUDA itself would.
    """
    gpus = Path("/proc/driver/nvidia/gpus")
    count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    if count == 0:
        count = len([p for p in Path("/dev").glob("nvidia[0-9]*")])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        if not ids or ids[0].strip() == "-1":
            return 0
        count = min(count, len(ids))
    return count


def _hardware(cfg: Mapping[str, Any]) -> None:
    _, trainer = _get(cfg, "trainer")
    accelerator = trainer.get("accelerator", "auto")
    devices = trainer.get("devices", "auto")
    gpus = cuda_device_count()
    if accelerator in ("gpu", "cuda") and gpus == 0:
        raise _bad(
            "trainer.accelerator", accelerator,
            "no CUDA GPU on this machine (no NVIDIA driver found): use trainer.accelerator=cpu "
            "or auto, or run on a GPU node",
        )  # fmt: skip
    if accelerator == "mps" and sys.platform != "darwin":
        raise _bad("trainer.accelerator", accelerator, "MPS exists only on Apple silicon: use cpu")
    if accelerator == "tpu":
        raise _bad(
            "trainer.accelerator", accelerator, "scnet does not support TPUs: use cpu or gpu"
        )
    if accelerator in ("gpu", "cuda") and is_int(devices) and devices > gpus:
        raise _bad("trainer.devices", devices, f"this machine has {gpus} GPU(s)")
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and gpus == 0)
    precision = trainer.get("precision")
    if on_cpu and str(precision) in ("16", "16-mixed", "16-true"):
        raise _bad(
            "trainer.precision", precision,
            "float16 needs a GPU; on the CPU choose 32-true, bf16-mixed or 64-true",
        )  # fmt: skip


# --------------------------------------------------------------------------- data
def _data(cfg: Mapping[str, Any]) -> None:
    for key in (
        "batch_size",
        "eval_batch_size",
        "max_length",
        "n_train",
        "n_test",
        "dim",
        "length",
    ):
        integer(f"data.{key}", 1)(cfg)
    integer("data.max_questions", 1, null=True)(cfg)
    integer("data.num_classes", 2)(cfg)
    for key in ("num_workers", "workers"):
        integer(f"data.{key}", 0)(cfg)
    for key in ("download", "augment", "permute"):
        boolean(f"data.{key}")(cfg)
    choice("data.pipeline", ("fast", "classic"))(cfg)
    choice("data.task", ("classification", "regression"))(cfg)
    string("data.root")(cfg)
    found, value = _get(cfg, "data.val_size")
    if (
        found
        and value is not None
        and not ((is_int(value) and value >= 0) or (isinstance(value, float) and 0 <= value < 1))
    ):
        raise _bad(
            "data.val_size", value,
            "must be a count >= 0 or a fraction >= 0 and < 1 of the training set (0: validate on the test set)",
        )  # fmt: skip


# --------------------------------------------------------------------------- backbone
def _backbone(cfg: Mapping[str, Any]) -> None:
    found, backbone = _get(cfg, "backbone")
    if not found or not isinstance(backbone, Mapping):
        return
    for key in ("width", "hidden", "layers", "max_iter"):
        integer(f"backbone.{key}", 1)(cfg)
    found, depth = _get(cfg, "backbone.depth")
    if found and depth not in ("", None):
        integer("backbone.depth", 1)(cfg)
    found, top = _get(cfg, "depth")
    if found and top not in ("", None):
        integer("depth", 1)(cfg)
    found, widths = _get(cfg, "backbone.widths")
    if found and not (
        isinstance(widths, list) and widths and all(is_int(w) and w >= 1 for w in widths)
    ):
        raise _bad("backbone.widths", widths, "must be a non-empty list of integers >= 1")
    number("backbone.tol", 0, lo_open=True)(cfg)
    number("backbone.beta", 0)(cfg)
    number("backbone.max_norm", 0, lo_open=True, null=True)(cfg)
    number("backbone.dropout", 0, 1, null=True)(cfg)
    choice("backbone.on_nonconvergence", ("warn", "error"))(cfg)
    choice("backbone.init", ("uniform", "default"))(cfg)
    _size(cfg, backbone)


def _size(cfg: Mapping[str, Any], backbone: Mapping[str, Any]) -> None:
    """Refuse a network estimated past MAX_PARAMETERS before anything tries to build it."""
    target = str(backbone.get("_target_", ""))
    depth = backbone.get("depth", backbone.get("layers"))
    if not is_int(depth):
        return
    name = target.rsplit(".", 1)[-1]
    if name == "CifarResNet":
        if (depth - 2) % 6:
            raise ConfigError(  # the same words as the model's own check (tests/test_run.py)
                f"depth={depth} is invalid for backbone=resnet: CIFAR ResNets have depth 6n+2 "
                "(8, 14, 20, 32, 44, 56, 110, ...)"
            )
        widths = [w for w in backbone.get("widths", [16, 32, 64]) if is_int(w)]
        params = 18 * (depth - 2) // 6 * sum(w * w for w in widths)
    else:
        width = backbone.get("width", backbone.get("hidden", 64))
        width = width if is_int(width) else 64
        per_layer = 9 * width * width if backbone.get("kind") in ("conv", "cnn") else width * width
        params = depth * per_layer * (2 if name == "Highway" else 1)
    if params > MAX_PARAMETERS:
        key = "depth" if "depth" in cfg else "backbone.depth"
        raise _bad(
            key, depth,
            f"this {name or 'backbone'} would have ~{params:.1e} parameters, more than scnet's "
            f"bound of {MAX_PARAMETERS:.0e} (4 GB of float32 weights): choose a smaller depth/width",
        )  # fmt: skip


def _pair(cfg: Mapping[str, Any]) -> None:
    """Backbone x data: name the incompatible pair, not a shape deep inside the model."""
    _, backbone = _get(cfg, "backbone")
    _, data = _get(cfg, "data")
    if not isinstance(backbone, Mapping) or not isinstance(data, Mapping):
        return
    b_target, d_target = str(backbone.get("_target_", "")), str(data.get("_target_", ""))
    if not b_target or not d_target:
        return
    b_name, d_name = backbone.get("name", b_target), data.get("name", d_target)
    text_b, text_d = b_target.startswith(TEXT_BACKBONES), d_target.startswith(TEXT_DATA)
    if text_b != text_d:
        what = (
            "a multiple-choice text backbone needs a text dataset (data=dream or semeval2018)"
            if text_b
            else "text datasets need a transformer backbone (backbone=bert, roberta or minilm)"
        )
        raise ConfigError(f"backbone={b_name} cannot train on data={d_name}: {what}")
    if b_target.endswith(".LSTMNet") and d_target.startswith(TWO_D_DATA):
        raise ConfigError(
            f"backbone={b_name} cannot train on data={d_name}: the LSTM reads (1, time, features) "
            "inputs; use data=seq_digits, seq_mnist or adding, or backbone=fcn"
        )
    if b_target.startswith(ONE_D_BACKBONES) and not d_target.startswith(TWO_D_DATA):
        raise ConfigError(
            f"backbone={b_name} cannot train on data={d_name}: it reads 1-D signals (C, L); "
            "use data=mnist1d, or backbone=resnet (2-D or 1-D by the data) or fcn"
        )


# --------------------------------------------------------------------------- diagnostics
def _diagnostics(cfg: Mapping[str, Any]) -> None:
    boolean("grad_stats.enabled")(cfg)
    integer("grad_stats.every_n_steps", 0)(cfg)
    integer("grad_stats.batches_per_epoch", 0)(cfg)
    boolean("grad_stats.per_node")(cfg)
    boolean("grad_stats.log_wandb")(cfg)
    found, epochs = _get(cfg, "grad_stats.epochs")
    if (
        found
        and epochs is not None
        and not (isinstance(epochs, list) and all(is_int(e) and e >= 0 for e in epochs))
    ):
        raise _bad(
            "grad_stats.epochs",
            epochs,
            "must be a list of epoch numbers >= 0, or null (every epoch)",
        )
    boolean("condition.enabled")(cfg)
    integer("condition.samples", 2)(cfg)
    integer("condition.every_n_epochs", 1)(cfg)


def _misc(cfg: Mapping[str, Any]) -> None:
    found, value = _get(cfg, "test_ckpt")
    if found and value not in ("last", "best"):
        raise _bad("test_ckpt", value, "choose last or best")
    boolean("channels_last")(cfg)
    boolean("compile")(cfg)
    choice("logger.wandb.mode", ("auto", "online", "offline", "disabled"))(cfg)


CHECKS: tuple[Callable[[Mapping[str, Any]], None], ...] = (
    _seed_keys, _ckpt_path, _sc, _optim, _trainer, _data, _backbone, _pair, _diagnostics, _misc,
)  # fmt: skip
