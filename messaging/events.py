"""Every WebSocket frame's shape, in one place, and the one JSON encoder.

Builders return plain dicts; ``encode`` turns one into text once, however many
sockets it then goes to.
"""

from __future__ import annotations

from typing import Any

import orjson

from chatsite.timestamps import format_timestamp

# Close codes, as the contract names them.
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_TOO_BIG = 1009  # a frame over 65,536 bytes
CLOSE_TRY_AGAIN = 1013  # fell too far behind, or a service is briefly unavailable
CLOSE_UNAUTHORIZED = 4401  # missing, malformed, expired or revoked token; session ended
CLOSE_FORBIDDEN = 4403  # another user's token, or an inactive user
CLOSE_TOO_MANY = 4429  # past the per-user connection limit


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode()


# --- payloads shared with REST ---------------------------------------------


# The columns ``message_row_payload`` reads, for ``values_list(*MESSAGE_COLUMNS)``:
# reading rows instead of model instances is several times cheaper.
MESSAGE_COLUMNS = (
    "id",
    "seq",
    "channel__name",
    "user__username",
    "user_id",
    "content",
    "created_at",
    "client_id",
)


def message_row_payload(row: tuple) -> dict[str, Any]:
    """A Message as the contract shows it, from a ``MESSAGE_COLUMNS`` row."""
    message_id, seq, channel, username, user_id, content, created_at, client_id = row
    return {
        "id": str(message_id),
        "seq": seq,
        "channel": channel,
        "username": username,
        "user_id": str(user_id),
        "content": content,
        "created_at": format_timestamp(created_at),
        "client_id": client_id,
    }


def message_payload(message: Any) -> dict[str, Any]:
    """A Message model as the contract shows it; needs ``channel`` and ``user`` loaded."""
    channel = message.channel.name if message.channel_id else None
    return message_row_payload(
        (
            message.id,
            message.seq,
            channel,
            message.user.username,
            message.user_id,
            message.content,
            message.created_at,
            message.client_id,
        )
    )


def user_payload(user: Any, *, connected: bool, own: bool = False) -> dict[str, Any]:
    """A user as others see them, or (``own``) as they see themselves.

    ``connected``: the user has at least one open WebSocket. An invisible
    (``offline``) user is never shown online; they still see their choice.
    """
    is_online = connected and user.status != "offline"
    payload = {
        "id": str(user.id),
        "username": user.username,
        "status": user.status if (own or is_online) else "offline",
        "is_online": is_online,
        "last_seen": format_timestamp(user.last_seen),
        "date_joined": format_timestamp(user.date_joined),
    }
    if own:
        payload["email"] = user.email
    return payload


# --- server to client -------------------------------------------------------


def ready_frame(*, user: dict, channels: list[str], online: list[str]) -> dict:
    return {"type": "ready", "user": user, "channels": channels, "online": online}


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


def ack_frame(*, client_id: str | None, message_id: str, seq: int) -> dict:
    return {"type": "ack", "client_id": client_id, "id": message_id, "seq": seq}


def presence_frame(user_view: dict) -> dict:
    return {
        "type": "presence",
        "username": user_view["username"],
        "status": user_view["status"],
        "is_online": user_view["is_online"],
        "last_seen": user_view["last_seen"],
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
