"""Who has an open WebSocket: per-user connection sets.

The embedded store lives in this process; the scaled-out store keeps every
connection in Redis with an expiry that its process renews by heartbeat, so
the users of a process that dies go offline once its entries expire and are
swept. Everything that asks "is this user online?" goes through
``get_presence_store()``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from uuid import UUID

from django.conf import settings

from core.redis import redis_client
from realtime.presence_redis import DEFAULT_TTL_SECONDS, RedisPresenceStore


class PresenceStore(Protocol):
    def open(self, user_id: UUID, connection_id: str, *, limit: int) -> int | None:
        """Register a connection; return the user's new count, or None past ``limit``."""

    def close(self, user_id: UUID, connection_id: str) -> int:
        """Forget a connection; return how many the user still has."""

    def connected(self, user_ids: Iterable[UUID]) -> set[UUID]:
        """The subset of ``user_ids`` with at least one open connection."""

    def all_connected(self) -> set[UUID]:
        """Every user with at least one open connection."""

    def heartbeat(self, connections: Iterable[tuple[UUID, str]]) -> list[tuple[UUID, str]]:
        """Keep this process's live connections alive (a store with TTLs renews them).

        Returns those the store no longer had (closed meanwhile, or swept
        after this process stalled past the TTL); they are not renewed.
        """

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

    def heartbeat(self, connections: Iterable[tuple[UUID, str]]) -> list[tuple[UUID, str]]:
        """Nothing expires within one process."""
        return []

    def sweep(self) -> list[UUID]:
        return []


_store: PresenceStore | None = None
_store_lock = threading.Lock()


def get_presence_store() -> PresenceStore:
    """The process's store: Redis when ``REDIS_URL`` is set, else this process's memory."""
    global _store
    if _store is None:
        with _store_lock:
            if _store is None:
                if settings.REDIS_URL:
                    _store = RedisPresenceStore(
                        redis_client(settings.REDIS_URL),
                        prefix=getattr(settings, "CHAT_PRESENCE_KEY_PREFIX", "chat:presence:"),
                        ttl=getattr(settings, "CHAT_PRESENCE_TTL_SECONDS", DEFAULT_TTL_SECONDS),
                    )
                else:
                    _store = LocalPresenceStore()
    return _store


def reset_presence_store() -> None:
    """Forget the store, so the next call reads the settings again (tests)."""
    global _store
    with _store_lock:
        _store = None


def presence_renew(live: Mapping[tuple[UUID, str], Any], *, still_open: Callable[[Any], bool]) -> None:
    """Renew one process's connections (``(user id, connection id)`` -> its socket).

    Connections the store no longer has are re-opened when ``still_open(socket)``
    says so (read in this thread, after the store answered): after a Redis
    restart emptied the store, counts and presence come back with the next
    heartbeat instead of leaking or going negative. One that closed meanwhile
    stays closed, since its close is recorded after this step.
    """
    store = get_presence_store()
    for key in store.heartbeat(list(live)):
        if still_open(live[key]):
            store.open(*key, limit=sys.maxsize)
