"""Small helpers shared by the accounts tests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

PUBLIC_USER_KEYS = {"id", "username", "status", "is_online", "last_seen", "date_joined"}
OWN_USER_KEYS = PUBLIC_USER_KEYS | {"email"}


def all_keys(data: Any) -> Iterator[str]:
    """Every dict key anywhere inside ``data``."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from all_keys(value)
    elif isinstance(data, list):
        for item in data:
            yield from all_keys(item)


def assert_public_user(data: dict, user) -> None:
    assert set(data) == PUBLIC_USER_KEYS
    assert data["id"] == str(user.id)
    assert data["username"] == user.username
    assert TIMESTAMP.match(data["date_joined"])
    assert data["last_seen"] is None or TIMESTAMP.match(data["last_seen"])


def assert_own_user(data: dict, user) -> None:
    assert set(data) == OWN_USER_KEYS
    assert data["id"] == str(user.id)
    assert data["username"] == user.username
    assert data["email"] == user.email
    assert TIMESTAMP.match(data["date_joined"])


def bearer(access: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {access}"}
