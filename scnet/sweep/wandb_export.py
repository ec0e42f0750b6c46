"""A named sweep as a W&B Sweeps config (``scnet-sweep NAME --export wandb FILE``).

Then ``wandb sweep FILE`` registers it and ``wandb agent ID`` (one per GPU) runs the trials:
W&B's controller replaces Optuna and scnet-sweep here; each trial is the same ``scnet-run``
command, with the sweep's base overrides and the agent's Hydra overrides (``${args_no_hyphens}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scnet.sweep.spec import Scalar, SweepSpec, format_value


def _value(v: Scalar) -> Any:
    """Numbers stay numbers (bayes models them); everything else as Hydra override text,
    because the agent writes ``key=str(value)`` (``None``/``True`` would not parse as Hydra's
    ``null``/``true``)."""
    return v if isinstance(v, int | float) and not isinstance(v, bool) else format_value(v)


def _distribution(d: dict[str, Any]) -> dict[str, Any]:
    if d["type"] == "categorical":
        return {"values": [_value(c) for c in d["choices"]]}
    log, step = bool(d.get("log")), d.get("step")
    if d["type"] == "int":
        if log:
            return {
                "distribution": "q_log_uniform_values",
                "min": d["low"],
                "max": d["high"],
                "q": step or 1,
            }
        return {"distribution": "int_uniform", "min": int(d["low"]), "max": int(d["high"])}
    kind = (
        ("q_log_uniform_values" if log else "q_uniform")
        if step
        else ("log_uniform_values" if log else "uniform")
    )
    out = {"distribution": kind, "min": float(d["low"]), "max": float(d["high"])}
    return {**out, "q": step} if step else out


def to_wandb(spec: SweepSpec, overrides: Sequence[str]) -> dict[str, Any]:
    """The W&B sweep config: grid -> ``method: grid``, TPE -> ``method: bayes`` over the same
    distributions; the metric and its goal; W&B group = the sweep's name."""
    params: dict[str, Any] = {"seed": {"values": list(spec.seeds)}}
    if spec.sampler == "grid":
        params.update({k: {"values": [_value(v) for v in vs]} for k, vs in spec.grid.items()})
    else:
        params.update({k: _distribution(d) for k, d in spec.space.items()})
    varied = set(params)
    base = [o for o in spec.base if o.split("=", 1)[0].lstrip("+~") not in varied]
    config: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description or spec.reproduces,
        "method": "grid" if spec.sampler == "grid" else "bayes",
        "metric": {"name": spec.metric, "goal": spec.direction},
        "parameters": params,
        "command": [
            "${env}",
            "${interpreter}",
            "-m",
            "scnet.cli.run",
            *base,
            *overrides,
            f"logger.wandb.group={spec.name}",
            "${args_no_hyphens}",
        ],  # fmt: skip
    }
    if spec.sampler == "tpe":
        config["run_cap"] = spec.n_trials
    return config
