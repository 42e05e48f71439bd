"""Uvicorn's logging, with bearer tokens kept out of it.

Browsers cannot set headers on a WebSocket, so the live socket takes its token as `?token=`, and
uvicorn writes the path with its query string to the log (`"WebSocket /ws/live?token=..."`,
and the access line of any request). A log is read by more people than may act as the user it
names, so every record that reaches uvicorn's handlers has its `token=` value redacted.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

_TOKEN = re.compile(r"((?:^|[?&;\s])token=)[^&\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _TOKEN.sub(rf"\g<1>{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Rewrites `token=...` in a record's message and its arguments; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config() -> dict[str, Any]:
    """Uvicorn's own logging configuration, with `RedactTokens` on each of its handlers."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_tokens": {"()": f"{__name__}.RedactTokens"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_tokens"]
    return config
