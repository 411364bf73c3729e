"""A channel's message stream, as this app needs it: provided by the app that owns streams.

Positions and messages belong to ``messaging``, which sits above this app in
the layers (it imports chatrooms, never the reverse). Yet creating a channel
starts its stream, a join reads the stream's last position inside its own
transaction, removing a channel removes its stream, and ``GET
/api/channels/me`` shows read counts; so ``messaging`` provides these steps
when Django starts (``MessagingConfig.ready``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from django.core.exceptions import ImproperlyConfigured


class ChannelStreams(Protocol):
    def stream_created(self, stream: str) -> None:
        """Start a new channel's stream at position 0, in the caller's transaction."""

    def last_position(self, stream: str) -> int:
        """The stream's last committed position, read in the caller's transaction."""

    def stream_removed(self, stream: str) -> None:
        """Delete the stream's messages and position counter, in the caller's transaction."""

    def read_counts(self, *, user_id: UUID, channel_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
        """``{channel id: {"last_read_seq", "unread", "mentions"}}`` for those of ``channel_ids``
        the user is a member of, in one query."""


@dataclass(frozen=True)
class StreamSteps:
    """The steps as plain functions, the shape ``messaging`` hands over."""

    stream_created: Callable[[str], None]
    last_position: Callable[[str], int]
    stream_removed: Callable[[str], None]
    read_counts: Callable[..., dict[UUID, dict[str, int]]]


_provider: ChannelStreams | None = None


def provide(provider: ChannelStreams) -> None:
    """Install the streams' owner (called once, when the messaging app is ready)."""
    global _provider
    _provider = provider


def channel_streams() -> ChannelStreams:
    if _provider is None:
        raise ImproperlyConfigured("No provider of channel streams: is the messaging app installed?")
    return _provider
