"""Where the configs (``conf/``) and named sweeps (``sweeps/``) are, installed or not.

The top-level ``conf/`` and ``sweeps/`` folders are the one source of truth. A wheel ships them
as ``scnet/conf`` and ``scnet/sweeps`` (pyproject's ``package-dir`` maps the packages
``scnet.conf`` and ``scnet.sweeps`` onto the top-level folders), so an installed scnet finds
its copy inside the package; a source checkout (tests, editable installs) finds the folders
next to ``scnet/``. An environment variable wins over both.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shipped_dir(name: str, env: str) -> Path:
    """``$env`` if set, else the wheel's ``scnet/<name>``, else the checkout's ``<name>/``."""
    if os.environ.get(env):
        return Path(os.environ[env])
    packaged = Path(str(files("scnet"))) / name
    if packaged.is_dir():
        return packaged
    return REPO_ROOT / name
