"""Checkpoint SQLite's write-ahead log from a thread of its own, off the request path.

By default SQLite checkpoints inside the COMMIT that takes the log past 1,000
pages: that one commit copies every logged page back into the database file
and syncs it (6 to 22 ms measured here) while every socket waits for the
message it stores. It was the whole tail of fan-out latency at 5 msg/s.

A serving process instead turns the automatic checkpoint off on each of its
connections and runs a PASSIVE checkpoint every
``CHAT_SQLITE_CHECKPOINT_SECONDS`` on a connection of its own. A passive
checkpoint waits for no reader or writer and stops short of frames a reader
still needs; the next one picks them up. Python's sqlite3 releases the GIL
while SQLite copies and syncs, so the event loop goes on meanwhile.

Connections opened before the checkpointer started keep SQLite's automatic
checkpoint, which is safe, only slower. Several processes on one file each
run one; a checkpoint that finds another under way returns at once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.signals import connection_created
from django.db.backends.sqlite3.creation import DatabaseCreation

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """One ``PRAGMA wal_checkpoint(PASSIVE)``: whether another checkpoint held the file,
    the frames in the log, and how many of them are now in the database file."""

    busy: bool
    logged: int
    copied: int


class WalCheckpointer:
    """A daemon thread checkpointing one SQLite file every ``interval`` seconds."""

    def __init__(self, path: str, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        self.last: Checkpoint | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-wal-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop after a last checkpoint (tests and an orderly shutdown)."""
        self._stopping.set()
        self._thread.join()

    def checkpoint(self, connection: sqlite3.Connection) -> Checkpoint:
        busy, logged, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.last = Checkpoint(busy=bool(busy), logged=logged, copied=copied)
        self.checkpoints += 1
        return self.last

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while True:
                stopping = self._stopping.wait(self.interval)
                try:
                    if connection is None:
                        connection = sqlite3.connect(  # never creates the file (mode=rw)
                            f"file:{quote(self.path)}?mode=rw", uri=True, timeout=0, isolation_level=None
                        )
                    self.checkpoint(connection)
                except sqlite3.Error as exc:  # a locked or vanished file: try again next time
                    logger.warning("WAL checkpoint of %s failed: %s", self.path, exc)
                    if connection is not None:
                        connection.close()
                        connection = None
                if stopping:
                    return
        finally:
            if connection is not None:
                connection.close()


_running: dict[str, WalCheckpointer] = {}
_lock = threading.Lock()


def start_wal_checkpointer(interval: float, alias: str = DEFAULT_DB_ALIAS) -> WalCheckpointer | None:
    """The process's checkpointer for database ``alias``, started on the first call.

    None, and SQLite's automatic checkpoint kept, when ``interval`` is 0 or the
    database is not a SQLite file.
    """
    running = _running.get(alias)
    if running is not None:
        return running
    # The settings, not ``connections[alias]``: on the event loop that would make a connection
    # object for the caller's context, which a socket's context would keep (3.8 KiB each).
    database = connections.settings[alias]
    if interval <= 0 or not _is_sqlite_file(database):
        return None
    with _lock:
        checkpointer = _running.get(alias)
        if checkpointer is None:
            checkpointer = _running[alias] = WalCheckpointer(str(database["NAME"]), interval)
            connection_created.connect(_no_automatic_checkpoint, dispatch_uid=f"sqlite-wal-{alias}")
            checkpointer.start()
        return checkpointer


def _is_sqlite_file(database: dict[str, Any]) -> bool:
    return database["ENGINE"] == "django.db.backends.sqlite3" and not DatabaseCreation.is_in_memory_db(
        database["NAME"]
    )


def stop_wal_checkpointer(alias: str = DEFAULT_DB_ALIAS) -> None:
    """Stop the checkpointer; connections opened from now on checkpoint automatically again."""
    with _lock:
        checkpointer = _running.pop(alias, None)
        if checkpointer is None:
            return
        connection_created.disconnect(dispatch_uid=f"sqlite-wal-{alias}")
    checkpointer.stop()


def _no_automatic_checkpoint(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.alias in _running:
        connection.connection.execute("PRAGMA wal_autocheckpoint=0")
