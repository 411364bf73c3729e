"""Per-channel state kept from the frames: messages in position order, positions, read state, presence.

Channels are keyed by their name lowered ("" is the lobby): the server looks
names up ignoring case, and frames show the stored spelling.
"""

from __future__ import annotations

import bisect
import time
from typing import Any, Literal

from chatclient.types import Message, ReadState, User

TYPING_SECONDS = 5.0  # how long a typing event keeps a user "typing"

Applied = Literal["new", "updated"] | None


def channel_key(channel: str | None) -> str:
    """The state's key for a channel name (None, the lobby, is "")."""
    return "" if channel is None else channel.lower()


class ChatState:
    """What the client knows; every method is called from the reader, in frame order."""

    def __init__(self) -> None:
        self.user: User | None = None
        self.names: dict[str, str] = {}  # key -> channel name as stored (subscribed channels)
        self.positions: dict[str, int] = {}  # key -> highest seq or rev seen
        self.joined: set[str] = set()  # keys subscribed while connected, with no position yet
        self.reads: dict[str, ReadState] = {}
        self.older: dict[str, bool] = {}  # key -> older messages exist than those held
        self.online: set[str] = set()
        self.typing: dict[str, dict[str, float]] = {}
        self._messages: dict[str, dict[str, Message]] = {}
        self._order: dict[str, list[tuple[int, str]]] = {}  # key -> sorted (seq, id)

    # --- messages -------------------------------------------------------------

    def apply(self, message: Message) -> Applied:
        """Keep ``message`` unless it is already held in this or a later state.

        Returns "new" for a message not held before, "updated" for a later
        state (higher ``rev``) of one held, None for a duplicate to drop.
        """
        key = channel_key(message["channel"])
        self.note_position(key, max(message["seq"], message["rev"]))
        held = self._messages.setdefault(key, {})
        known = held.get(message["id"])
        if known is None:
            held[message["id"]] = message
            bisect.insort(self._order.setdefault(key, []), (message["seq"], message["id"]))
            return "new"
        if message["rev"] > known["rev"]:
            held[message["id"]] = message
            return "updated"
        return None

    def note_position(self, key: str, position: int) -> None:
        """Record a position seen (0 too: syncing an empty channel from 0 misses nothing)."""
        if position > self.positions.get(key, -1):
            self.positions[key] = position

    def messages(self, key: str) -> list[Message]:
        held = self._messages.get(key, {})
        return [held[message_id] for _, message_id in self._order.get(key, [])]

    def message(self, key: str, message_id: str) -> Message | None:
        return self._messages.get(key, {}).get(message_id)

    def oldest_id(self, key: str) -> str | None:
        order = self._order.get(key)
        return order[0][1] if order else None

    def forget(self, key: str) -> None:
        """Drop a channel the user is no longer in: nothing of it is synced or shown."""
        for table in (
            self.names,
            self.positions,
            self.reads,
            self.older,
            self.typing,
            self._messages,
            self._order,
        ):
            table.pop(key, None)
        self.joined.discard(key)

    # --- channels, reads, presence --------------------------------------------

    def apply_ready(self, frame: dict[str, Any]) -> None:
        self.user = frame["user"]
        self.names = {channel_key(name): name for name in frame.get("channels", [])}
        for key in set(self.positions) - set(self.names) - {""}:
            self.forget(key)  # left or deleted while disconnected
        self.online = set(frame.get("online", []))
        for name, read in frame.get("unread", {}).items():
            self.reads[channel_key(name or None)] = dict(read)  # type: ignore[assignment]

    def subscribed(self, name: str) -> bool:
        """Whether a ``sync`` may name this channel ("" is always subscribed)."""
        return name == "" or channel_key(name) in self.names

    def apply_read(self, frame: dict[str, Any]) -> None:
        key = channel_key(frame.get("channel"))
        known = self.reads.get(key)
        last_seq = max(known["last_seq"] if known else 0, frame["last_read_seq"])
        self.reads[key] = {
            "last_read_seq": frame["last_read_seq"],
            "last_seq": last_seq,
            "unread": frame["unread"],
            "mentions": frame["mentions"],
        }

    def count_unread(self, message: Message, applied: Applied, before: Message | None) -> None:
        """Keep the unread badge current between ``read`` frames, as docs/read-state.md describes:
        one more for each new message of another user above the read position, one fewer when
        such a message is deleted. Changes at or below ``last_seq`` are already in the counts the
        server sent (``ready`` takes them when the connection opens), whichever frame brings them."""
        read = self.reads.get(channel_key(message["channel"]))
        me = self.user["username"] if self.user else None
        position = max(message["seq"], message["rev"])
        if read is None or position <= read["last_seq"]:
            return
        read["last_seq"] = position
        if message["username"] == me or message["seq"] <= read["last_read_seq"]:
            return
        mentioned = me in message["mentions"] or (before is not None and me in before["mentions"])
        if applied == "new" and not message["deleted"]:
            read["unread"] += 1
            read["mentions"] += int(mentioned)
        elif applied == "updated" and message["deleted"] and before is not None and not before["deleted"]:
            read["unread"] = max(read["unread"] - 1, 0)
            read["mentions"] = max(read["mentions"] - int(mentioned), 0)

    def apply_presence(self, frame: dict[str, Any]) -> None:
        if frame.get("is_online"):
            self.online.add(frame["username"])
        else:
            self.online.discard(frame["username"])

    def note_typing(self, frame: dict[str, Any]) -> None:
        self.typing.setdefault(channel_key(frame.get("channel")), {})[frame["username"]] = time.monotonic()

    def typing_in(self, key: str) -> list[str]:
        since = time.monotonic() - TYPING_SECONDS
        return sorted(name for name, when in self.typing.get(key, {}).items() if when >= since)
