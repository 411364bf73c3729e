"""Log records without credentials, as text or one JSON object per line.

``RedactTokens`` is installed (``chatsite.settings``' ``LOGGING``) on the one
handler every logger writes through, Django's and uvicorn's alike, and on the
root and uvicorn loggers. It rewrites a record's message, arguments and
exception text before any formatter sees them, so no format can write:

- a ``token=`` query-string value (uvicorn logs every WebSocket handshake as
  ``"WebSocket /api/ws/<user>?token=..." [accepted]`` at ``info``, and its
  access log records each request's path with its query string);
- a ``Bearer`` credential from an ``Authorization`` header;
- anything shaped like a JWT (access and refresh tokens alike), wherever it
  appears, e.g. in an exception that quotes a URL or a request body.

``JsonFormatter`` writes ``{"timestamp", "level", "logger", "message"}`` plus
``"exception"`` when there is one (``CHAT_LOG_FORMAT=json``).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

REDACTED = "[redacted]"

_SECRETS = re.compile(
    r"(?P<query>(?:access_|refresh_)?token=)(?!\[redacted\])[^&\s\"'<>]+"
    r"|(?P<bearer>\bBearer\s+)(?!\[redacted\])[^\s\"',]+"
    r"|eyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]+",
    re.IGNORECASE,
)


def _replace(match: re.Match) -> str:
    return (match.group("query") or match.group("bearer") or "") + REDACTED


def redact(text: str) -> str:
    """``text`` with every token value it contains replaced by ``[redacted]``."""
    return _SECRETS.sub(_replace, text)


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact(arg)
    if arg is None or isinstance(arg, (int, float)):
        return arg  # keeps %d and %f formats working
    text = str(arg)
    cleaned = redact(text)
    return arg if cleaned == text else cleaned


class RedactTokens(logging.Filter):
    """Scrub tokens from a record in place (message, arguments, exception and stack text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        elif record.msg is not None and not record.args:
            record.msg = _redact_arg(record.msg)
        if isinstance(record.args, tuple):
            # Kept a tuple: uvicorn's access formatter unpacks it.
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: _redact_arg(value) for key, value in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
