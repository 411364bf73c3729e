"""Pieces of the raw SQL that batch writes share: a ``VALUES`` list, and a UUID as each database
stores it (PostgreSQL natively, SQLite as its 32-digit hex)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.db import connection


def uuid_param() -> Callable[[UUID | None], Any]:
    """How the current database takes (and returns) a UUID: as is, or its hex; None stays None."""
    if connection.features.has_native_uuid_field:
        return _same
    return _hex


def _same(value: UUID | None) -> Any:
    return value


def _hex(value: UUID | None) -> str | None:
    return None if value is None else value.hex


def values_list(rows: int, width: int) -> str:
    """``(%s, %s), (%s, %s)``: the placeholders of ``rows`` rows of ``width`` values.

    Its columns are named ``column1``, ``column2``... on SQLite and PostgreSQL alike.
    """
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * rows)
