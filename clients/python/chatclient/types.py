"""The shapes the server sends (docs/websocket.md, the API contract), typed for callers.

Frames stay the JSON objects the server sent: TypedDicts describe them
without copying, so a field the server adds later is still there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

ConnectionState = Literal["idle", "connecting", "open", "reconnecting", "logged_out", "forbidden"]
"""- ``idle``: not connected yet, or after ``close()``;
- ``connecting``: the first connection is being opened;
- ``open``: connected and caught up (``ready``, ``history`` and any ``sync`` applied);
- ``reconnecting``: the connection was lost; a new one is opened after ``delay`` seconds;
- ``logged_out``: the session ended (logout, or the refresh token was refused);
- ``forbidden``: the server refused this user (4403); the client does not retry."""

TERMINAL_STATES: frozenset[str] = frozenset({"logged_out", "forbidden"})


class User(TypedDict):
    """A user as others see them; the own profile adds ``email``."""

    id: str
    username: str
    status: Literal["online", "away", "offline"]
    is_online: bool
    last_seen: str | None
    date_joined: str
    email: NotRequired[str]


class Reaction(TypedDict):
    emoji: str
    usernames: list[str]


class Message(TypedDict):
    """A message in its latest known state; ``channel`` is None for the lobby."""

    id: str
    seq: int
    rev: int
    channel: str | None
    username: str
    user_id: str
    content: str
    created_at: str
    client_id: str | None
    reply_to: str | None
    edited_at: str | None
    deleted: bool
    reactions: list[Reaction]
    mentions: list[str]


class Channel(TypedDict):
    """A channel as REST returns it; the detail route adds ``members``, ``/api/channels/me`` read state."""

    id: str
    name: str
    description: str
    owner: str | None
    member_count: int
    created_at: str
    kind: Literal["public", "private", "direct"]
    members: NotRequired[list[str]]
    last_read_seq: NotRequired[int]
    unread: NotRequired[int]
    mentions: NotRequired[int]


class Ack(TypedDict):
    """The server's answer once a send or change is stored."""

    type: Literal["ack"]
    client_id: str | None
    id: str
    seq: int
    rev: int


class ReadState(TypedDict):
    """Read position and counts of one channel ("" is the lobby)."""

    last_read_seq: int
    last_seq: int
    unread: int
    mentions: int


class ConnectionEvent(TypedDict):
    """Emitted as the ``connection`` event whenever the state changes."""

    type: Literal["connection"]
    state: ConnectionState
    code: NotRequired[int | None]  # the close code that caused a reconnect, when there was one
    attempt: NotRequired[int]  # reconnect attempts since the last connection that opened
    delay: NotRequired[float]  # seconds until the next attempt (``reconnecting``)


@dataclass(frozen=True)
class Tokens:
    """An access and refresh token pair; the refresh token is rotated on every refresh."""

    access: str
    refresh: str


@dataclass(frozen=True)
class HistoryPage:
    """The answer to ``history()``: older messages of one channel, oldest first."""

    messages: list[Message]
    has_more: bool


Event = dict[str, Any]
"""A server frame as received (``type`` names it), or one of the client's own events
(``connection``, ``tokens``)."""
