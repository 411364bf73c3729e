"""Who has an open WebSocket: per-user connection sets.

The embedded store lives in this process; the scaled-out store (Redis, with
per-connection TTLs) implements the same three calls. Everything that asks
"is this user online?" goes through ``get_presence_store()``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Protocol
from uuid import UUID


class PresenceStore(Protocol):
    def open(self, user_id: UUID, connection_id: str, *, limit: int) -> int | None:
        """Register a connection; return the user's new count, or None past ``limit``."""

    def close(self, user_id: UUID, connection_id: str) -> int:
        """Forget a connection; return how many the user still has."""

    def connected(self, user_ids: Iterable[UUID]) -> set[UUID]:
        """The subset of ``user_ids`` with at least one open connection."""

    def all_connected(self) -> set[UUID]:
        """Every user with at least one open connection."""

    def heartbeat(self, connections: Iterable[tuple[UUID, str]]) -> None:
        """Keep this process's live connections alive (a store with TTLs renews them)."""

    def sweep(self) -> list[UUID]:
        """Forget connections whose process stopped renewing them; return users now offline."""


class LocalPresenceStore:
    """One process's connections; correct only while there is one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[UUID, set[str]] = {}

    def open(self, user_id: UUID, connection_id: str, *, limit: int) -> int | None:
        with self._lock:
            current = self._connections.setdefault(user_id, set())
            if len(current) >= limit:
                if not current:
                    del self._connections[user_id]
                return None
            current.add(connection_id)
            return len(current)

    def close(self, user_id: UUID, connection_id: str) -> int:
        with self._lock:
            current = self._connections.get(user_id)
            if current is None:
                return 0
            current.discard(connection_id)
            if not current:
                del self._connections[user_id]
                return 0
            return len(current)

    def connected(self, user_ids: Iterable[UUID]) -> set[UUID]:
        with self._lock:
            return {user_id for user_id in user_ids if user_id in self._connections}

    def all_connected(self) -> set[UUID]:
        with self._lock:
            return set(self._connections)

    def heartbeat(self, connections: Iterable[tuple[UUID, str]]) -> None:
        """Nothing expires within one process."""

    def sweep(self) -> list[UUID]:
        return []


_store: PresenceStore | None = None
_store_lock = threading.Lock()


def get_presence_store() -> PresenceStore:
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                _store = LocalPresenceStore()
    return _store


def is_connected(user_id: UUID) -> bool:
    return bool(get_presence_store().connected([user_id]))
