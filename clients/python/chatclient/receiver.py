"""Frames in: catching up after each connect, then applying live frames to the state.

On a reconnect, everything after the positions held comes from ``sync``,
not from the ``connect`` history (which may skip what was missed): the
positions are taken when ``ready`` arrives, ``sync`` is sent after the
history, and followed again for every channel whose last frame said
``has_more``. Live ``message`` and ``message_updated`` frames that arrive
before ``synced`` wait, so handlers see every channel's messages in position
order; once caught up they are applied, and those ``sync`` already brought
are dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from chatclient.events import Emitter
from chatclient.outbox import Outbox
from chatclient.state import Applied, ChatState, channel_key
from chatclient.types import Message

logger = logging.getLogger(__name__)

LIVE_CHANGES = frozenset({"message", "message_updated"})


@dataclass
class Catchup:
    """One connection's progress towards being caught up."""

    resume: dict[str, int] = field(default_factory=dict)  # sync positions by channel name ("" lobby)
    more: set[str] = field(default_factory=set)  # channels whose last sync frame had has_more
    waiting: list[dict[str, Any]] = field(default_factory=list)  # live frames held until caught up
    sync_id: str | None = None  # the client_id of the sync in flight (its error frame echoes it)
    done: bool = False


class Receiver:
    def __init__(
        self,
        *,
        state: ChatState,
        outbox: Outbox,
        emitter: Emitter,
        send: Callable[[dict[str, Any]], Awaitable[bool]],
        caught_up: Callable[[], None],
        retry_later: Callable[[float], None],
    ) -> None:
        self.state = state
        self.outbox = outbox
        self.emitter = emitter
        self._send = send
        self._caught_up = caught_up
        self._retry_later = retry_later
        self.catchup = Catchup()

    def begin(self) -> None:
        """A new connection is open: nothing of it is applied yet."""
        self.catchup = Catchup()

    async def handle(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind in LIVE_CHANGES:
            if self.catchup.done:
                self._live_change(frame)
            else:
                self.catchup.waiting.append(frame)
            return
        handler = self._handlers.get(kind)
        if handler is not None:
            await handler(self, frame)
        self.emitter.emit(frame)

    # --- catching up ------------------------------------------------------------

    async def _ready(self, frame: dict[str, Any]) -> None:
        """Take the positions to resume from: those held, and for a channel joined while connected
        and silent since, the read position ``ready`` gives (a new member's starts at the join)."""
        state = self.state
        state.apply_ready(frame)
        for key in state.joined & set(state.names):
            read = state.reads.get(key)
            state.note_position(key, read["last_read_seq"] if read else 0)
        state.joined.clear()
        self.catchup.resume = {
            state.names.get(key, key): position
            for key, position in state.positions.items()
            if state.subscribed(key)
        }

    async def _history(self, frame: dict[str, Any]) -> None:
        reason = frame.get("reason")
        if reason == "connect":
            self._apply_connect_history(frame)
            await self._sync(self.catchup.resume)
        elif reason == "sync":
            for message in frame["messages"]:
                self._apply(message, emit=True)
            if frame.get("has_more"):
                name = frame.get("channel")
                self.catchup.more.add("" if name is None else name)
        else:  # "request": older messages, into the state; the caller gets the frame
            for message in frame["messages"]:
                self._apply(message, emit=False)
            self.state.older[channel_key(frame.get("channel"))] = bool(frame.get("has_more"))
            if self.outbox.answered(frame) and self.outbox.paced:
                self._retry_later(0)

    def _apply_connect_history(self, frame: dict[str, Any]) -> None:
        """Apply the messages of channels not resumed by sync; take every other subscribed channel's
        position from ``ready`` (what came before it is reached with ``history()``)."""
        resumed = {channel_key(name or None) for name in self.catchup.resume}
        for message in frame["messages"]:
            key = channel_key(message["channel"])
            if key not in resumed:
                self._apply(message, emit=False)
                self.state.older[key] = bool(frame.get("has_more"))
        for key, read in self.state.reads.items():
            if key not in resumed and self.state.subscribed(key):
                self.state.note_position(key, read.get("last_seq", 0))

    async def _sync(self, after: dict[str, int]) -> None:
        """Ask for what was missed after ``after``, or be caught up when there is nothing to ask."""
        if not after:
            self._finish_catchup()
            return
        self.catchup.sync_id = f"sync-{uuid.uuid4()}"
        await self._send({"type": "sync", "after": after, "client_id": self.catchup.sync_id})

    async def _synced(self, frame: dict[str, Any]) -> None:
        more, self.catchup.more = self.catchup.more, set()
        self.catchup.sync_id = None
        positions = self.state.positions
        await self._sync({name: positions.get(channel_key(name or None), 0) for name in more})

    async def sync_again(self) -> None:
        """Resend the sync of this connection after a rate limit."""
        if not self.catchup.done and self.catchup.sync_id is None:
            positions = self.state.positions
            after = {name: positions.get(channel_key(name or None), 0) for name in self.catchup.resume}
            await self._sync(after)

    def _finish_catchup(self) -> None:
        self.catchup.done = True
        waiting, self.catchup.waiting = self.catchup.waiting, []
        for frame in waiting:
            self._live_change(frame)
        self._caught_up()

    # --- live frames ------------------------------------------------------------

    def _live_change(self, frame: dict[str, Any]) -> None:
        """A ``message`` or ``message_updated`` frame: handlers see it unless it is already applied."""
        if self._apply(frame["message"], emit=False) is not None:
            self.emitter.emit(frame)

    def _apply(self, message: Message, *, emit: bool) -> Applied:
        """Into the state; with ``emit``, a new or changed message is announced as if it came live."""
        before = self.state.message(channel_key(message["channel"]), message["id"])
        applied = self.state.apply(message)
        if applied is not None:
            self.state.count_unread(message, applied, before)
        if emit and applied == "new":
            self.emitter.emit({"type": "message", "message": message})
        elif emit and applied == "updated":
            self.emitter.emit(
                {"type": "message_updated", "change": _change(before, message), "message": message}
            )
        return applied

    async def _ack(self, frame: dict[str, Any]) -> None:
        if self.outbox.acknowledged(frame) and self.outbox.paced:
            self._retry_later(0)  # the next write may go now

    async def _error(self, frame: dict[str, Any]) -> None:
        if frame.get("client_id") and frame.get("client_id") == self.catchup.sync_id:
            self.catchup.sync_id = None
            if frame.get("code") in ("rate_limited", "unavailable"):
                self._retry_later(float(frame.get("retry_after") or 1.0))
            else:
                logger.warning("sync refused (%s): going on without it", frame.get("detail"))
                self._finish_catchup()
            return
        wait = self.outbox.refused(frame)
        if wait is not None or self.outbox.paced:
            self._retry_later(wait or 0)

    async def _read(self, frame: dict[str, Any]) -> None:
        self.state.apply_read(frame)

    async def _presence(self, frame: dict[str, Any]) -> None:
        self.state.apply_presence(frame)

    async def _typing(self, frame: dict[str, Any]) -> None:
        self.state.note_typing(frame)

    async def _subscribed(self, frame: dict[str, Any]) -> None:
        key = channel_key(frame["channel"])
        self.state.names[key] = frame["channel"]
        if key not in self.state.positions:
            self.state.joined.add(key)

    async def _unsubscribed(self, frame: dict[str, Any]) -> None:
        self.state.forget(channel_key(frame["channel"]))

    _handlers: dict[str, Callable[[Receiver, dict[str, Any]], Awaitable[None]]] = {
        "ready": _ready,
        "history": _history,
        "synced": _synced,
        "ack": _ack,
        "error": _error,
        "read": _read,
        "presence": _presence,
        "typing": _typing,
        "subscribed": _subscribed,
        "unsubscribed": _unsubscribed,
        "channel_deleted": _unsubscribed,
    }


def _change(before: Message | None, after: Message) -> str:
    """What a change brought by ``sync`` was, as a ``message_updated`` frame would say."""
    if after["deleted"]:
        return "deleted"
    if before is None or after["edited_at"] != before["edited_at"]:
        return "edited"
    return "reactions"
