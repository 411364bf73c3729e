"""The one builder of envelopes: what travels through the channel layer to each process's hub.

An envelope carries frames already encoded (once, by the publisher) plus what
the hub and each socket need to deliver them in order: the ``kind``, and the
stream and position of a message. Builders take ids and plain values, never
models, so every app can publish without knowing the hub's internals.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

HUB_EVENT_TYPE = "hub.event"

KIND_MESSAGE = "message"  # a chat message: ``stream``, ``seq``, ``frame``
KIND_FRAME = "frame"  # any frame; ``exclude_user`` (hex) skips one user's sockets
KIND_SUBSCRIBE = "subscribe"  # to a user: receive ``stream`` after ``last_seq``; ``frames`` to send
KIND_UNSUBSCRIBE = "unsubscribe"  # to a user: stop receiving ``stream``; ``frames`` to send
KIND_CHANNEL_DELETED = "channel_deleted"  # to a channel: drop ``stream``; send ``frame``
KIND_CLOSE = "close"  # to a user or session: close with ``code``
KIND_RESYNC = "resync"  # queued locally: make ``stream``'s subscription match the database


# What goes first when a queue is full (``envelope_priority``): lossy frames
# (typing, presence), which nothing needs later; then messages, which a socket
# re-reads from the database when it notices the gap; control envelopes
# (close, unsubscribe, subscribe, channel deleted, re-sync) and other frames
# are never dropped: a socket too slow for them is closed with 1013 instead.
PRIORITY_LOSSY = 0
PRIORITY_RECOVERABLE = 1
PRIORITY_CONTROL = 2


CONTROL_KINDS = frozenset(
    {KIND_FRAME, KIND_SUBSCRIBE, KIND_UNSUBSCRIBE, KIND_CHANNEL_DELETED, KIND_CLOSE, KIND_RESYNC}
)


def envelope_priority(event: dict[str, Any]) -> int:
    """How an envelope fares at a full queue (a message without a ``kind`` counts as recoverable)."""
    if event.get("lossy"):
        return PRIORITY_LOSSY
    if event.get("kind") in CONTROL_KINDS:
        return PRIORITY_CONTROL
    return PRIORITY_RECOVERABLE


def _envelope(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": HUB_EVENT_TYPE, "kind": kind, **fields}


def message_envelope(*, stream: str, seq: int, frame: str) -> dict[str, Any]:
    """A stored message at position ``seq`` of ``stream``; sockets deliver it in order."""
    return _envelope(KIND_MESSAGE, stream=stream, seq=seq, frame=frame)


def frame_envelope(frame: str, *, exclude_user_id: UUID | None = None, lossy: bool = False) -> dict[str, Any]:
    """A frame outside any stream's order (presence, typing, membership news).

    ``lossy``: dropped first under pressure (typing and presence).
    """
    fields: dict[str, Any] = {"frame": frame}
    if exclude_user_id is not None:
        fields["exclude_user"] = exclude_user_id.hex
    if lossy:
        fields["lossy"] = True
    return _envelope(KIND_FRAME, **fields)


def subscribe_envelope(
    *, stream: str, channel: str, last_seq: int | None, frames: list[str]
) -> dict[str, Any]:
    """Subscribe a user's sockets to ``stream``, delivering what comes after ``last_seq``.

    ``last_seq`` None: each socket reads the stream's last position itself.
    """
    return _envelope(KIND_SUBSCRIBE, stream=stream, channel=channel, last_seq=last_seq, frames=frames)


def unsubscribe_envelope(*, stream: str, channel: str, frames: list[str]) -> dict[str, Any]:
    """Send ``frames``, then stop delivering ``stream`` to a user's sockets."""
    return _envelope(KIND_UNSUBSCRIBE, stream=stream, channel=channel, frames=frames)


def channel_deleted_envelope(*, stream: str, channel: str, frame: str) -> dict[str, Any]:
    return _envelope(KIND_CHANNEL_DELETED, stream=stream, channel=channel, frame=frame)


def close_envelope(code: int) -> dict[str, Any]:
    """Close every socket of the group (a user or a session) with ``code``."""
    return _envelope(KIND_CLOSE, code=code)


def resync_envelope(stream: str) -> dict[str, Any]:
    """Queued by a socket for itself: make ``stream``'s subscription match the database."""
    return _envelope(KIND_RESYNC, stream=stream)
