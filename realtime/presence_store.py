"""Who has an open WebSocket: per-user connection sets, and how others see each connected user.

The embedded store lives in this process; the scaled-out store keeps every
connection in Redis with an expiry that its process renews by heartbeat, so
the users of a process that dies go offline once its entries expire and are
swept. Everything that asks "is this user online?" goes through
``get_presence_store()``.

Each store also keeps, per connected user, the name others see them under,
or nothing while they are invisible, so ``online_names()`` answers ``ready``'s
``online`` without reading every connected user from the database. Two
writers set that visibility: a connection opening (from the status it just
read) and a status change. The status epoch keeps them in order: a status
change bumps it before its row changes and again when it records the new
visibility after commit, and an opening records what it read only if the
epoch is still the one it read *before* reading the status (``open_as``,
``show``); otherwise it reads the status again. A status read that an
unfinished change could have made stale is therefore never recorded after
that change's own record (``accounts.presence`` holds the rule).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

from django.conf import settings

from core.redis import redis_client
from realtime.presence_redis import DEFAULT_TTL_SECONDS, RedisPresenceStore
from realtime.presence_types import Opened, online_order


class PresenceStore(Protocol):
    def open(self, user_id: UUID, connection_id: str, *, limit: int) -> int | None:
        """Register a connection; return the user's new count, or None past ``limit``."""

    def open_as(
        self, user_id: UUID, connection_id: str, *, limit: int, name: str | None, epoch: int
    ) -> Opened | None:
        """``open``, and record how others see the user (``name``, or None: invisible) if the status
        epoch is still ``epoch``; None past ``limit``."""

    def show(self, user_id: UUID, name: str | None, *, epoch: int) -> bool:
        """Record how others see a connected user if the status epoch is still ``epoch``."""

    def status_epoch(self) -> int:
        """The status epoch: read it before reading a status that ``open_as`` or ``show`` records."""

    def status_changing(self) -> None:
        """A status is about to change: bump the epoch (before the row changes)."""

    def status_changed(self, user_id: UUID, name: str | None) -> None:
        """A status changed: bump the epoch and record how others now see the user, if connected."""

    def online_names(self) -> Sequence[str]:
        """The names of connected users others see, in ``online_order``."""

    in_process: bool  # True: no call does I/O (the event loop may call it); False: Redis

    def close(self, user_id: UUID, connection_id: str) -> int:
        """Forget a connection; return how many the user still has."""

    def close_shown(self, user_id: UUID, connection_id: str) -> tuple[int, bool]:
        """``close``, and whether others saw the user (shown) until then."""

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

    in_process = True  # memory and a lock: quick enough for the event loop itself

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # A user's connection ids: the one id itself while they have one (most users, and an
        # empty set costs more than the id), a set from the second on.
        self._connections: dict[UUID, str | set[str]] = {}
        self._shown: dict[UUID, str] = {}  # connected users others see, by the name they see
        self._names: tuple[str, ...] | None = ()  # ``online_names``, kept until ``_shown`` changes
        self._epoch = 0

    def open(self, user_id: UUID, connection_id: str, *, limit: int) -> int | None:
        with self._lock:
            return self._open(user_id, connection_id, limit)

    def _open(self, user_id: UUID, connection_id: str, limit: int) -> int | None:
        current = self._connections.get(user_id)
        if current is None:
            if limit < 1:
                return None
            self._connections[user_id] = connection_id
            return 1
        if isinstance(current, str):
            if current == connection_id:
                return 1
            current = self._connections[user_id] = {current}
        if connection_id not in current and len(current) >= limit:
            return None
        current.add(connection_id)
        return len(current)

    def open_as(
        self, user_id: UUID, connection_id: str, *, limit: int, name: str | None, epoch: int
    ) -> Opened | None:
        with self._lock:
            count = self._open(user_id, connection_id, limit)
            if count is None:
                return None
            shown = epoch == self._epoch
            if shown:
                self._set_shown(user_id, name)
            return Opened(count=count, shown=shown)

    def show(self, user_id: UUID, name: str | None, *, epoch: int) -> bool:
        with self._lock:
            if epoch != self._epoch:
                return False
            if user_id in self._connections:
                self._set_shown(user_id, name)
            return True

    def _set_shown(self, user_id: UUID, name: str | None) -> None:
        if name is None:
            if self._shown.pop(user_id, None) is not None:
                self._names = None
        elif self._shown.get(user_id) != name:
            self._shown[user_id] = name
            self._names = None

    def status_epoch(self) -> int:
        return self._epoch

    def status_changing(self) -> None:
        with self._lock:
            self._epoch += 1

    def status_changed(self, user_id: UUID, name: str | None) -> None:
        with self._lock:
            self._epoch += 1
            if user_id in self._connections:
                self._set_shown(user_id, name)

    def online_names(self) -> Sequence[str]:
        with self._lock:
            if self._names is None:
                self._names = tuple(online_order(self._shown.values()))
            return self._names

    def close(self, user_id: UUID, connection_id: str) -> int:
        return self.close_shown(user_id, connection_id)[0]

    def close_shown(self, user_id: UUID, connection_id: str) -> tuple[int, bool]:
        with self._lock:
            shown = user_id in self._shown
            current = self._connections.get(user_id)
            if current is None:
                return 0, shown
            if isinstance(current, str):
                if current != connection_id:
                    return 1, shown
                current = set()
            else:
                current.discard(connection_id)
            if not current:
                del self._connections[user_id]
                self._set_shown(user_id, None)
                return 0, shown
            if len(current) == 1:
                self._connections[user_id] = next(iter(current))
            return len(current), shown

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


def presence_renew(live: Mapping[tuple[UUID, str], Any], *, still_open: Callable[[Any], bool]) -> set[UUID]:
    """Renew one process's connections (``(user id, connection id)`` -> its socket).

    Connections the store no longer has are re-opened when ``still_open(socket)``
    says so (read in this thread, after the store answered): after a Redis
    restart emptied the store, counts and presence come back with the next
    heartbeat instead of leaking or going negative. One that closed meanwhile
    stays closed, since its close is recorded after this step. Returns the
    users re-opened: how others see them is not recorded yet (they count as
    invisible until it is).
    """
    store = get_presence_store()
    reopened: set[UUID] = set()
    for key in store.heartbeat(list(live)):
        if still_open(live[key]):
            store.open(*key, limit=sys.maxsize)
            reopened.add(key[0])
    return reopened
