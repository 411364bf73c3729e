"""Every WebSocket frame's shape and close code, in one place, and the one JSON encoder.

Builders take plain values (payloads the apps built, names, ids as strings)
and return plain dicts; ``encode`` turns one into text once, however many
sockets it then goes to. A message's and a user's payload are shaped by the
apps that own them (``messaging.payloads``, ``accounts.presence``).
"""

from __future__ import annotations

from typing import Any

import orjson

# Close codes, as the contract names them.
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_TOO_BIG = 1009  # a frame over 65,536 bytes
CLOSE_TRY_AGAIN = 1013  # fell too far behind, or a service is briefly unavailable
CLOSE_UNAUTHORIZED = 4401  # missing, malformed, expired or revoked token; session ended
CLOSE_FORBIDDEN = 4403  # another user's token, or an inactive user
CLOSE_TOO_MANY = 4429  # past the per-user connection limit


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# --- server to client -------------------------------------------------------


def ready_frame(*, user: dict, channels: list[str], online: list[str], unread: dict[str, dict]) -> dict:
    """``unread``: per subscribed channel name (``""`` the lobby) ``last_read_seq``, ``last_seq``,
    ``unread`` and ``mentions``."""
    return {"type": "ready", "user": user, "channels": channels, "online": online, "unread": unread}


def history_frame(
    *, reason: str, messages: list[dict], has_more: bool, channel: str | None = None, with_channel: bool
) -> dict:
    frame: dict[str, Any] = {"type": "history", "reason": reason}
    if with_channel:
        frame["channel"] = channel
    frame["messages"] = messages
    frame["has_more"] = has_more
    return frame


def message_frame(payload: dict) -> dict:
    return {"type": "message", "message": payload}


def message_updated_frame(change: str, payload: dict) -> dict:
    """``change`` is ``edited``, ``deleted`` or ``reactions``; ``payload`` the message's new state."""
    return {"type": "message_updated", "change": change, "message": payload}


def ack_frame(*, client_id: str | None, message_id: str, seq: int, rev: int) -> dict:
    return {"type": "ack", "client_id": client_id, "id": message_id, "seq": seq, "rev": rev}


def presence_frame(user_view: dict) -> dict:
    return {
        "type": "presence",
        "username": user_view["username"],
        "status": user_view["status"],
        "is_online": user_view["is_online"],
        "last_seen": user_view["last_seen"],
    }


def read_frame(*, channel: str | None, last_read_seq: int, unread: int, mentions: int) -> dict:
    """A user's read position moved (to all their connections); ``channel`` None is the lobby."""
    return {
        "type": "read",
        "channel": channel,
        "last_read_seq": last_read_seq,
        "unread": unread,
        "mentions": mentions,
    }


def typing_frame(*, channel: str | None, username: str) -> dict:
    return {"type": "typing", "channel": channel, "username": username}


def member_frame(kind: str, *, channel: str, username: str) -> dict:
    """``kind`` is ``member_joined`` or ``member_left``."""
    return {"type": kind, "channel": channel, "username": username}


def subscription_frame(kind: str, *, channel: str) -> dict:
    """``kind`` is ``subscribed`` or ``unsubscribed``."""
    return {"type": kind, "channel": channel}


def channel_deleted_frame(*, channel: str) -> dict:
    return {"type": "channel_deleted", "channel": channel}


def error_frame(*, code: str, detail: str, client_id: Any = None, retry_after: float | None = None) -> dict:
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame


PONG_FRAME = {"type": "pong"}
SYNCED_FRAME = {"type": "synced"}
