"""Token scrubbing and the JSON format (core/logs.py), record by record."""

from __future__ import annotations

import json
import logging

from core.logs import JsonFormatter, RedactTokens, redact

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiMSJ9.c2lnbmF0dXJlLXBhcnQ"


def record(msg, args=(), exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, exc_info)


def test_query_tokens_bearer_credentials_and_bare_jwts_are_redacted_idempotently():
    for text, expected in [
        (f"/api/ws/u?token={JWT}", "/api/ws/u?token=[redacted]"),
        ("/api/ws/u?token=short&x=1", "/api/ws/u?token=[redacted]&x=1"),
        ("/x?refresh_token=abc def", "/x?refresh_token=[redacted] def"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]"),
        (f'{{"refresh": "{JWT}"}}', '{"refresh": "[redacted]"}'),
        ("nothing to hide", "nothing to hide"),
    ]:
        assert redact(text) == expected
        assert redact(redact(text)) == expected


def test_the_filter_keeps_argument_types_for_formatters_that_unpack_them():
    entry = record('%s - "%s %s HTTP/%s" %d', ("127.0.0.1:1", "GET", f"/a?token={JWT}", "1.1", 404))
    assert RedactTokens().filter(entry)
    assert entry.args == ("127.0.0.1:1", "GET", "/a?token=[redacted]", "1.1", 404)
    assert entry.getMessage() == '127.0.0.1:1 - "GET /a?token=[redacted] HTTP/1.1" 404'


def test_exception_text_and_objects_that_quote_a_url_are_scrubbed():
    try:
        raise ValueError(f"bad request /api/ws/u?token={JWT}")
    except ValueError as exc:
        entry = record("failed: %s", (exc,), exc_info=(type(exc), exc, exc.__traceback__))
    RedactTokens().filter(entry)
    line = JsonFormatter().format(entry)
    assert JWT not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed: bad request /api/ws/u?token=[redacted]"
    assert "ValueError: bad request /api/ws/u?token=[redacted]" in parsed["exception"]
    assert set(parsed) == {"timestamp", "level", "logger", "message", "exception"}
