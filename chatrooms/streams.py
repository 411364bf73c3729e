"""A channel's message stream, as this app needs it: provided by the app that owns streams.

Positions and messages belong to ``messaging``, which sits above this app in
the layers (it imports chatrooms, never the reverse). Yet creating a channel
starts its stream, a join reads the stream's last position inside its own
transaction, and removing a channel removes its stream; so ``messaging``
provides these steps when Django starts (``MessagingConfig.ready``).
"""

from __future__ import annotations

from typing import Protocol

from django.core.exceptions import ImproperlyConfigured


class ChannelStreams(Protocol):
    def stream_created(self, stream: str) -> None:
        """Start a new channel's stream at position 0, in the caller's transaction."""

    def last_position(self, stream: str) -> int:
        """The stream's last committed position, read in the caller's transaction."""

    def stream_removed(self, stream: str) -> None:
        """Delete the stream's messages and position counter, in the caller's transaction."""


_provider: ChannelStreams | None = None


def provide(provider: ChannelStreams) -> None:
    """Install the streams' owner (called once, when the messaging app is ready)."""
    global _provider
    _provider = provider


def channel_streams() -> ChannelStreams:
    if _provider is None:
        raise ImproperlyConfigured("No provider of channel streams: is the messaging app installed?")
    return _provider
