"""The contract's one timestamp format: ISO 8601, UTC, milliseconds, ``Z``."""

from __future__ import annotations

from datetime import UTC, datetime

from rest_framework import serializers


def format_timestamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


class TimestampField(serializers.DateTimeField):
    """A read-only timestamp rendered as ``2026-11-24T10:00:00.123Z``."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: datetime | None) -> str | None:
        return format_timestamp(value)
