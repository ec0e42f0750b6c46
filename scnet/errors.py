"""User-facing errors: one clear line, a non-zero exit, no traceback (unless debugging)."""

from __future__ import annotations


class ScnetError(Exception):
    """An error caused by the user's input or environment, not by a bug in scnet.

    The CLIs print ``str(err)`` as a single line and exit with ``exit_code``.
    """

    exit_code = 2


class ConfigError(ScnetError, ValueError):
    """A configuration key has a value scnet cannot use."""


class DataError(ScnetError):
    """A dataset is missing, corrupt or malformed."""

    exit_code = 3
