"""Keep credentials out of everything scnet writes (configs, logs, results, reports)."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
_SECRET_KEY = re.compile(r"(api[_-]?key|token|password|passwd|secret)", re.IGNORECASE)
# scheme://user:password@host → scheme://user:***@host
_URL_PASSWORD = re.compile(
    r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?P<tail>@)"
)


def redact_text(text: str) -> str:
    """Mask passwords embedded in URLs."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['tail']}", text)


_SECRET_ASSIGNMENT = re.compile(
    r"(?P<key>[\w.+~-]*(?:api[_-]?key|token|password|passwd|secret)[\w-]*=)(?P<value>[^\s,;)]+)",
    re.IGNORECASE,
)


def redact_message(text: str) -> str:
    """A one-line error with ``secret_key=value`` assignments and URL passwords masked."""
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m['key']}{REDACTED}", redact_text(text))


def redact(value: Any) -> Any:
    """A copy of ``value`` with secret-looking keys masked and URL passwords removed."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) and v else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value
