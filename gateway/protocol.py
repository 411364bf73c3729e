"""Reading client frames: the shape checks every handler shares, each refusal an ``InvalidInput``."""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import InvalidInput
from messaging.selectors import PAGE_DEFAULT
from messaging.services import clean_client_id

MAX_FRAME_BYTES = 65_536


def too_big(text: str) -> bool:
    """Over the contract's 65,536 bytes (encoding only text that could be)."""
    return len(text) > MAX_FRAME_BYTES // 4 and len(text.encode()) > MAX_FRAME_BYTES


def parse_frame(text: str) -> dict[str, Any] | None:
    """A JSON object, or None for text that is a plain lobby message."""
    try:
        value = orjson.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def frame_type(frame: dict[str, Any]) -> str:
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise InvalidInput("Frames need a string 'type'.")
    return kind


def channel_field(frame: dict[str, Any], *, lobby: bool) -> str | None:
    """The frame's ``channel``, which must be present: a name, or (``lobby``) null for the lobby.

    A missing ``channel`` is never taken for the lobby: with private channels,
    a client bug that drops the field must not publish to everyone.
    """
    if "channel" not in frame:
        raise InvalidInput("channel is required (null for the lobby).")
    name = frame["channel"]
    if name is not None and not isinstance(name, str):
        raise InvalidInput("channel must be a channel name or null.")
    if name is None and not lobby:
        raise InvalidInput("channel must be a channel name.")
    return name


def content_field(frame: dict[str, Any]) -> Any:
    """The frame's ``content``, unchecked: the message service measures it."""
    if "content" not in frame:
        raise InvalidInput("content is required.")
    return frame["content"]


def limit_field(frame: dict[str, Any]) -> int:
    limit = frame.get("limit")
    if limit is None:
        return PAGE_DEFAULT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput("limit must be a positive integer.")
    return limit


def after_field(frame: dict[str, Any]) -> dict[str, int]:
    """``sync``'s ``after``: channel names ('' for the lobby) to positions."""
    after = frame.get("after")
    if not isinstance(after, dict) or not all(
        isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 for seq in after.values()
    ):
        raise InvalidInput("after must map channel names ('' for the lobby) to seqs.")
    return after


def client_id_field(frame: dict[str, Any]) -> str | None:
    """The frame's optional ``client_id``, checked as for messages: it is echoed in the ``ack``."""
    return clean_client_id(frame.get("client_id"))


def echoed_client_id(frame: dict[str, Any] | None) -> str | None:
    """The ``client_id`` an ``error`` frame echoes: the refused frame's, when it is a valid one.

    Anything else (a number, a nested list, a lone surrogate) is left out, so
    the error frame always encodes: echoing it could fail, and a failure there
    would end the socket.
    """
    try:
        return clean_client_id((frame or {}).get("client_id"))
    except InvalidInput:
        return None
