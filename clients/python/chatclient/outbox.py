"""Writes waiting for the server's answer, kept in order until it comes.

Each write carries a ``client_id``. It is written on the current connection
once, and again on every later connection until an ``ack`` (or, for a
``history`` request, the answer) settles it: the server stores a message
once per ``client_id``, so a resend after a lost ``ack`` costs nothing.
Writes go out in the order they were made; one refused for a rate limit
holds back those after it until its ``retry_after`` has passed, and from
then until the queue is empty writes go one at a time, each once the one
before is answered, so that a retried write is never overtaken.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from chatclient.errors import ChatError
from chatclient.state import channel_key

RETRIED_CODES = frozenset({"rate_limited", "unavailable"})
DEFAULT_RETRY_SECONDS = 1.0

Answer = Literal["ack", "history"]


@dataclass(eq=False)
class Pending:
    client_id: str
    frame: dict[str, Any]
    future: asyncio.Future[Any]
    answer: Answer
    sent_on: int | None = None  # the connection it was last written on
    not_before: float = 0.0  # time.monotonic() before which it is not written again
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = channel_key(self.frame.get("channel"))


class Outbox:
    def __init__(self) -> None:
        self._entries: dict[str, Pending] = {}  # by client_id, in the order written
        self.paced = False  # since a rate limit: one write in flight at a time, until the queue drains

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, frame: dict[str, Any], answer: Answer = "ack") -> Pending:
        entry = Pending(frame["client_id"], frame, asyncio.get_running_loop().create_future(), answer)
        self._entries[entry.client_id] = entry
        return entry

    def due(self, connection: int) -> Iterator[Pending]:
        """Entries not yet written on ``connection``, in order, up to the first that must wait.

        A caller that stopped waiting (its task was cancelled) before the
        entry was ever written takes it back.
        """
        now = time.monotonic()
        for entry in list(self._entries.values()):
            if entry.future.done():
                if entry.sent_on is None:
                    self._entries.pop(entry.client_id, None)
                continue
            if entry.sent_on == connection:
                if self.paced:
                    return  # wait for its answer
                continue
            if entry.not_before > now:
                return
            yield entry
            if self.paced:
                return

    def next_retry(self) -> float | None:
        """Seconds until the earliest held-back entry may be written."""
        waits = [e.not_before for e in self._entries.values() if e.not_before > 0 and e.sent_on is None]
        return max(min(waits) - time.monotonic(), 0) if waits else None

    def acknowledged(self, frame: dict[str, Any]) -> bool:
        """Settle the write an ``ack`` answers; False for an ack of nothing held (a resend's second)."""
        entry = self._entries.pop(frame.get("client_id") or "", None)
        if entry is None:
            return False
        if not entry.future.done():
            entry.future.set_result(frame)
        self._settled()
        return True

    def _settled(self) -> None:
        if not self._entries:
            self.paced = False

    def answered(self, frame: dict[str, Any]) -> bool:
        """Settle the oldest written ``history`` request for the channel of this ``history`` frame."""
        key = channel_key(frame.get("channel"))
        for entry in self._entries.values():
            if entry.answer == "history" and entry.key == key and entry.sent_on is not None:
                del self._entries[entry.client_id]
                if not entry.future.done():
                    entry.future.set_result(frame)
                self._settled()
                return True
        return False

    def refused(self, frame: dict[str, Any]) -> float | None:
        """Settle or hold back the write an ``error`` frame names.

        A rate limit or an outage holds it back; returns the seconds to wait.
        Any other refusal is final: its caller gets ``ChatError``.
        """
        entry = self._entries.get(frame.get("client_id") or "")
        if entry is None:
            return None
        if frame.get("code") in RETRIED_CODES:
            wait = float(frame.get("retry_after") or DEFAULT_RETRY_SECONDS)
            entry.sent_on, entry.not_before = None, time.monotonic() + wait
            self.paced = True
            return wait
        del self._entries[entry.client_id]
        if not entry.future.done():
            entry.future.set_exception(ChatError.from_frame(frame))
        self._settled()
        return None

    def fail_all(self, error: ChatError) -> None:
        """The session ended for good: every caller still waiting gets ``error``."""
        entries, self._entries = list(self._entries.values()), {}
        self.paced = False
        for entry in entries:
            if not entry.future.done():
                entry.future.set_exception(error)
