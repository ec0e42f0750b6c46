"""Shared CLI behaviour: one-line errors, exit codes, where the configs live, composing them."""

from __future__ import annotations

import difflib
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from scnet.errors import ConfigError
from scnet.secrets import _SECRET_KEY
from scnet.shipped import REPO_ROOT, shipped_dir

__all__ = ["CONF_DIR", "REPO_ROOT", "compose_config", "check_group_overrides", "group_options"]

CONF_DIR = shipped_dir("conf", "SCNET_CONF_DIR")
# Hydra's own groups (hydra/help, hydra/launcher, ...) are not scnet options.
_HYDRA_DIRS = {"hydra"}


def path_override(key: str, path: str | Path) -> str:
    """``key='path'``: a path as a Hydra override value, quoted so that characters of the
    override grammar in it (``=``, ``,``, spaces, brackets) stay part of the path."""
    return f"{key}='" + str(path).replace("'", "\\'") + "'"


def override_value(overrides: Sequence[str], key: str) -> str | None:
    """The value ``key=…`` sets among ``overrides`` as Hydra parses it (quotes removed)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = [o for o in overrides if o.startswith(f"{key}=")]
    if not given:
        return None
    value = OverridesParser.create().parse_override(given[-1]).value()
    return None if value is None else str(value)


def debug_enabled() -> bool:
    return bool(os.environ.get("HYDRA_FULL_ERROR") or os.environ.get("SCNET_DEBUG"))


def fail(prog: str, message: str, code: int) -> None:
    """Print one line (no traceback) and exit with ``code``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(code)


def _conf_dirs(config_dir: str | Path | None) -> list[Path]:
    """The user's ``--config-dir`` first (it shadows scnet's, as in Hydra), then scnet's."""
    return [*([Path(config_dir)] if config_dir else []), CONF_DIR]


def group_options(group: str, config_dir: str | Path | None = None) -> list[str]:
    found = {p.stem for d in _conf_dirs(config_dir) for p in (d / group).glob("*.yaml")}
    return sorted(found)


def config_groups(config_dir: str | Path | None = None) -> set[str]:
    return {
        p.name
        for d in _conf_dirs(config_dir)
        if d.is_dir()
        for p in d.iterdir()
        if p.is_dir() and p.name not in _HYDRA_DIRS and not p.name.startswith(("_", "."))
    }


def check_group_overrides(argv: Sequence[str], config_dir: str | Path | None = None) -> None:
    """Reject ``group=unknown`` before Hydra does (Hydra's message spans many lines)."""
    groups = config_groups(config_dir)
    for arg in argv:
        if "=" not in arg or arg.startswith(("-", "hydra")):
            continue
        key, value = arg.lstrip("+~").split("=", 1)
        if key in groups and value not in ("null", ""):
            options = group_options(key, config_dir)
            for one in value.split(","):  # a multirun sweep over options: a,b
                if one.strip().strip("'\"") not in options:
                    raise ConfigError(f"{key}={one} is unknown: choose one of {', '.join(options)}")


@contextmanager
def _hydra(config_dir: str | Path | None) -> Iterator[Any]:
    """A Hydra instance on scnet's search path (plus ``--config-dir``), as ``hydra.main`` builds.

    Hydra's own ``_run_hydra`` prepends ``--config-dir`` to the search path the same way; the
    compose API has no such argument, hence the internal classes.
    """
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins

    Plugins.instance()  # registers the search-path plugins Hydra's main would
    search_path = create_automatic_config_search_path(None, None, str(CONF_DIR))
    if config_dir:
        abs_dir = os.path.abspath(config_dir)
        if not os.path.isdir(abs_dir):
            raise ConfigError(
                f"--config-dir {config_dir} is not a folder: pass a folder of YAML configs"
            )
        search_path.prepend("command-line", f"file://{abs_dir}", SearchPathQuery(provider="schema"))
    global_hydra = GlobalHydra.instance()
    saved = global_hydra.hydra if global_hydra.is_initialized() else None
    global_hydra.clear()
    try:
        yield Hydra.create_main_hydra2(task_name="run", config_search_path=search_path)
    finally:
        global_hydra.clear()
        if saved is not None:
            global_hydra.initialize(saved)


def compose_config(
    overrides: Sequence[str],
    config_name: str = "config",
    config_dir: str | Path | None = None,
    with_hydra: bool = False,
):
    """Compose the run config as ``scnet-run`` would; every problem is one ConfigError line.

    ``hydra.*`` overrides are dropped unless ``with_hydra`` (then the ``hydra`` node is kept).
    Unknown keys are refused with the closest existing key, with or without ``+``.
    """
    from hydra.errors import HydraException
    from hydra.types import RunMode
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    _check_syntax(overrides)
    user = [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]
    with _hydra(config_dir) as hydra:
        try:
            cfg = hydra.compose_config(
                config_name, user if not with_hydra else overrides, run_mode=RunMode.RUN,
                with_log_configuration=False,
            )  # fmt: skip
        except (HydraException, OmegaConfBaseException, ValueError) as err:
            raise ConfigError(_hydra_message(err, overrides, hydra, config_name)) from None
        if any(o.startswith("+") for o in user):
            base = _base_config(hydra, config_name, user)
            _check_added_keys(user, base, config_dir)
    if not with_hydra:
        with _open(cfg):
            cfg.pop("hydra", None)
        OmegaConf.set_struct(cfg, True)
    return cfg


@contextmanager
def _open(cfg: Any) -> Iterator[None]:
    from omegaconf import open_dict

    with open_dict(cfg):
        yield


def _check_syntax(overrides: list[str]) -> None:
    """Hydra's lexer errors, in words: the usual cause is an unquoted value with spaces."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    for i, arg in enumerate(overrides):
        try:
            parser.parse_overrides([arg])
        except OverrideParseException as err:
            if "=" not in arg and i > 0 and "=" in overrides[i - 1]:
                prev = overrides[i - 1]
                key = prev.split("=", 1)[0].lstrip("+~")
                raise ConfigError(
                    f"{arg!r} is not a key=value override: a value with spaces must be quoted, "
                    f"e.g. \"{key}='{prev.split('=', 1)[1]} {arg}'\""
                ) from None
            first = str(err).splitlines()[0] if str(err) else ""
            reason = "a character Hydra's grammar refuses" if "Lexer" in first else first
            if "=" in arg and not arg.split("=", 1)[1].startswith(("'", '"', "[", "{")):
                key, value = arg.split("=", 1)
                fix = f"quote the value, e.g. \"{key}='{value}'\""
            else:
                fix = "write key=value and quote values with spaces or special characters"
            raise ConfigError(
                f"{arg!r} is not a valid override ({reason.strip()}): {fix}; see "
                "https://hydra.cc/docs/advanced/override_grammar/basic/"
            ) from None


def _base_config(hydra: Any, config_name: str, overrides: list[str]) -> Any:
    """The config the overrides' group choices select, without any other override."""
    from hydra.types import RunMode

    groups = config_groups(_search_dir(hydra))
    chosen = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in groups]
    return hydra.compose_config(
        config_name, chosen, run_mode=RunMode.RUN, with_log_configuration=False
    )


def _search_dir(hydra: Any) -> str | None:
    """The ``--config-dir`` a Hydra instance from :func:`_hydra` was given, if any."""
    for entry in hydra.config_loader.get_search_path().get_path():
        if entry.provider == "command-line" and entry.path.startswith("file://"):
            return entry.path[len("file://") :]
    return None


def config_keys(cfg: Any, prefix: str = "") -> Iterator[str]:
    """Every dotted key of ``cfg`` (the ``hydra`` node excluded)."""
    from omegaconf import DictConfig

    for key in cfg.keys() if isinstance(cfg, DictConfig) else ():
        if not prefix and key == "hydra":
            continue
        path = f"{prefix}{key}"
        yield path
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            yield from config_keys(node, f"{path}.")


def closest_key(key: str, keys: Sequence[str]) -> str | None:
    """The existing key ``key`` most likely misspells, or None.

    Siblings are compared by their last part (``data.foo`` is not ``data.root`` just because
    both start with ``data.``); then keys at the same depth, whole, for a misspelt parent.
    """
    parent, _, leaf = key.rpartition(".")
    siblings = {k.rpartition(".")[2]: k for k in keys if k.rpartition(".")[0] == parent}
    match = difflib.get_close_matches(leaf, list(siblings), n=1, cutoff=0.7)
    if match:
        return siblings[match[0]]
    same_depth = [
        k for k in keys if k.count(".") == key.count(".") and k.rpartition(".")[0] != parent
    ]
    match = difflib.get_close_matches(key, same_depth, n=1, cutoff=0.85)
    return match[0] if match else None


def unknown_key_message(key: str, keys: Sequence[str], value: str | None = None) -> str:
    shown = f"{key}={value}" if value is not None else key
    if key.startswith("trainer.") and key.count(".") == 1:
        from scnet.preflight import trainer_arguments

        name = key.split(".", 1)[1]
        if name in trainer_arguments():  # valid, just not in scnet's trainer config
            return (
                f"{shown}: trainer.{name} is not in the config, but lightning.Trainer takes it: "
                f"add it with +{shown}"
            )
        keys = [*keys, *(f"trainer.{a}" for a in sorted(trainer_arguments()))]
    guess = closest_key(key, keys)
    hint = f"did you mean {guess}?" if guess else "`scnet-run --cfg job` lists every key"
    return f"{shown}: {key} is not a config key; {hint}"


def _check_added_keys(overrides: list[str], base: Any, config_dir: str | Path | None) -> None:
    """``+key=value`` may add a key only where scnet reads added keys; never a misspelt one.

    Open places: ``trainer.*`` (keyword arguments of Lightning's Trainer, checked against its
    signature by scnet.preflight), a node with ``_target_`` (its constructor's keyword
    arguments), a new node of ``callbacks``/``logger`` given its ``_target_`` on the same
    command line (every such node is built: ``+callbacks.swa._target_=…``), and credentials
    under ``logger.`` (masked everywhere, see scnet.secrets).
    """
    from omegaconf import OmegaConf

    keys = list(config_keys(base))
    groups = config_groups(config_dir)
    added = {  # new callbacks/logger nodes -> their _target_
        k.removesuffix("._target_"): v
        for k, _, v in (a.lstrip("+").partition("=") for a in overrides if a.startswith("+"))
        if k.endswith("._target_") and k.split(".")[0] in BUILT_COLLECTIONS and k.count(".") == 2
    }
    for arg in overrides:
        if not arg.startswith("+") or "=" not in arg:
            continue
        key, value = arg.lstrip("+").split("=", 1)
        if key in groups or "." not in key and key in keys:
            continue
        parent, _, name = key.rpartition(".")
        if parent == "trainer":  # scnet.preflight checks it against Lightning's Trainer
            continue
        if parent in added:
            _check_argument(arg, parent, added[parent], name)
            continue
        secret = parent.startswith("logger.") and _SECRET_KEY.search(name)
        guess = None if secret else closest_key(key, keys)
        if guess and guess != key:
            raise ConfigError(f"{arg}: {key} is not a config key; did you mean {guess}?")
        node = OmegaConf.select(base, parent) if parent else None
        if OmegaConf.is_dict(node) and secret:
            continue
        if OmegaConf.is_dict(node) and "_target_" in node:
            _check_argument(arg, parent, str(node["_target_"]), name)
            continue
        raise ConfigError(unknown_key_message(key, keys, value).replace(f"{key}={value}", arg, 1))


#: Config nodes whose every child with a ``_target_`` is built (scnet.utils.instantiators).
BUILT_COLLECTIONS = ("callbacks", "logger")


def _check_argument(arg: str, parent: str, target: str, name: str) -> None:
    """``+parent.name=…`` for a node built from ``target``: a keyword it takes, or open."""
    from scnet.preflight import target_parameters

    if name == "_target_":
        return
    known = target_parameters(target)
    if known is None or name in known:  # an open signature judges at construction
        return
    guess = closest_key(name, sorted(known))
    hint = f"did you mean {parent}.{guess}?" if guess else f"it takes {', '.join(sorted(known))}"
    raise ConfigError(f"{arg}: {target} takes no argument {name!r}; {hint}")


_NOT_IN_STRUCT = re.compile(r"Could not override '([^']+)'")
_DEFAULTS_TWICE = re.compile(
    r"Multiple values for (\S+)\. To override a value use 'override \S+: (\S+)'"
)
_APPEND_EXISTING = re.compile(r"Could not append to config\. An item is already at '([^']+)'")


def _hydra_message(err: Exception, overrides: list[str], hydra: Any, config_name: str) -> str:
    """Hydra's multi-line errors as one line that names the key and the fix."""
    text = str(err)
    missing = _NOT_IN_STRUCT.search(text)
    if missing and "To append to your config" in text:
        key = missing.group(1)
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=")[0] == key), None)
        try:
            keys = list(config_keys(_base_config(hydra, config_name, overrides)))
        except Exception:  # the groups themselves fail: fall back to Hydra's words
            keys = []
        return unknown_key_message(key, keys, value)
    twice = _DEFAULTS_TWICE.search(text)
    if twice:
        group, option = twice.group(1), twice.group(2)
        return f"+{group}={option}: {group} is already in the defaults list: write {group}={option}"
    existing = _APPEND_EXISTING.search(text)
    if existing:
        key = existing.group(1)
        return f"+{key}: {key} already exists: override it without the + ({key}=...)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("full_key", "object_type", "reference_type"))]
    return " ".join(lines)
