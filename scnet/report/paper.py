"""The paper's published numbers (DESIGN.md "The paper's numbers"), printed beside ours.

Only numbers the paper states are here; a configuration the paper has no number for gets
``None`` and the report prints "–" (never an invented value).
"""

from __future__ import annotations

from typing import Any

# Table 2: CIFAR-10 test accuracy (%), by depth: (ResNet, SCResNet).
# The ResNet column is He et al. (2016)'s published numbers, not a same-code run.
TABLE2: dict[int, tuple[float, float]] = {
    20: (91.25, 91.81),
    32: (92.49, 92.94),
    44: (92.83, 93.29),
    56: (93.03, 93.81),
    110: (93.39, 94.13),
    1202: (92.07, 94.46),
}

# Table 3 (DREAM) and Table 4 (MCScript): model -> (dev, test) accuracy (%); None = not given.
TABLE3_DREAM: dict[str, tuple[float | None, float | None]] = {
    "BERT-base": (63.2, 63.2), "SCBERT-base": (63.3, 63.3),
    "BERT-large": (66.0, 66.8), "SCBERT-large": (66.6, 67.6),
    "RoBERTa-large": (85.4, 85.0), "SCRoBERTa-large": (87.5, 86.3),
}  # fmt: skip
TABLE4_MCSCRIPT: dict[str, tuple[float | None, float | None]] = {
    "BERT-base": (None, 87.53), "SCBERT-base": (88.0, 88.1),
    "BERT-large": (None, 88.7), "SCBERT-large": (88.9, 89.2),
    "RoBERTa-large": (93.76, 94.0), "SCRoBERTa-large": (94.8, 94.7),
}  # fmt: skip
# Seed 003 (Oyedotun et al.), Table 1: 100-layer PlainNet on USPS, (train, test) error (%) by
# the recipe's components present. They report no row without any component.
SEED003_TABLE1: dict[str, tuple[float, float]] = {
    "BN": (84.56, 83.21), "LReLU": (92.37, 92.03), "max-norm": (86.22, 86.85),
    "BN + LReLU": (78.38, 79.52), "BN + max-norm": (82.90, 81.86),
    "LReLU + max-norm": (83.62, 82.11), "BN + LReLU + max-norm": (0.11, 5.48),
}  # fmt: skip


def sc_enabled(config: dict[str, Any]) -> bool | None:
    """Whether a result row's configuration has SC on (None when the sweep does not say)."""
    if "sc" in config:  # the Hydra group: off, on, or a named placement (conf/sc/*.yaml)
        value = str(config["sc"]).strip().lower()
        return value not in ("off", "false", "0", "", "nan", "none", "missing", "–")
    if "sc.enabled" in config:
        return str(config["sc.enabled"]).lower() in ("true", "1", "on")
    return None


def table2(config: dict[str, Any]) -> float | None:
    """The paper's Table 2 accuracy (%) for a (depth, sc) configuration, if it has one."""
    depth, on = config.get("depth"), sc_enabled(config)
    try:
        pair = TABLE2.get(int(depth)) if depth is not None else None
    except (TypeError, ValueError):
        pair = None
    if pair is None or on is None:
        return None
    return pair[1] if on else pair[0]
