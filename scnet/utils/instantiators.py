"""Build objects from config nodes (``_target_``) with Hydra, errors as one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from scnet.errors import ConfigError


def build(
    node: DictConfig | Mapping[str, Any], what: str, labels: tuple[str, ...] = (), **kwargs: Any
) -> Any:
    """``instantiate(node, **kwargs)``; a failure becomes one :class:`ConfigError` naming ``what``.

    ``labels``: keys of the node that are not constructor arguments (``name``: a label for run
    names and reports in the backbone and data groups).
    """
    node = {k: v for k, v in _plain(node).items() if k not in labels}
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"{what}: {_first_line(cause)}") from None
    except ModuleNotFoundError as err:  # e.g. logger=tensorboard without the package
        raise ConfigError(
            f"{what}: needs the {err.name} package (pip install {err.name})"
        ) from None


def build_all(group: DictConfig | Mapping[str, Any] | None, what: str, **kwargs: Any) -> list[Any]:
    """Every ``_target_`` node of a group (``callbacks``, ``logger``), in config order.

    A node set to null, or whose factory returns None (``logger.wandb.mode=disabled``), is
    left out.
    """
    built = []
    for key, node in _plain(group or {}).items():
        if node is None:
            continue
        if not isinstance(node, Mapping) or "_target_" not in node:
            raise ConfigError(f"{what}.{key} has no _target_: every {what} entry builds an object")
        obj = build(node, f"{what}.{key}", **kwargs)
        if obj is not None:
            built.append(obj)
    return built


def _plain(node: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]
    return dict(node)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
