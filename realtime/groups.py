"""Channel-layer group names: one per chat channel, user and login session.

The lobby group reaches every open connection, so presence rides on it too.
Names stay within Channels' rules (ASCII letters, digits, ``.-_``, < 100 chars).
"""

from __future__ import annotations

from uuid import UUID

LOBBY_GROUP = "chat.lobby"

# The seq stream of the lobby; a chat channel's stream is its id's hex.
LOBBY_STREAM = ""


def channel_stream(channel_id: UUID | None) -> str:
    return LOBBY_STREAM if channel_id is None else channel_id.hex


def stream_group(stream: str) -> str:
    return LOBBY_GROUP if stream == LOBBY_STREAM else f"chat.c.{stream}"


def channel_group(channel_id: UUID | None) -> str:
    return stream_group(channel_stream(channel_id))


def user_group(user_id: UUID) -> str:
    return f"chat.u.{user_id.hex}"


def session_group(session_id: UUID) -> str:
    return f"chat.s.{session_id.hex}"
