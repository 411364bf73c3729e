"""The embedded channel layer: Channels' in-memory layer without its per-call costs.

With the hub (``realtime.hub``) a process has one layer channel and one
group per chat channel, user and login session. The stock layer sweeps every
channel and group on each receive and send (a thousand groups swept per
message), deep-copies each message per recipient, and drops group members
after a day, which would silently stop a long-running process's delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

SWEEP_SECONDS = 1.0
NEVER = 10 * 365 * 24 * 3600


class LocalChannelLayer(InMemoryChannelLayer):
    def __init__(self, expiry: int = 60, group_expiry: int = NEVER, capacity: int = 10_000, **kwargs) -> None:
        super().__init__(expiry=expiry, group_expiry=group_expiry, capacity=capacity, **kwargs)
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        """Sweep at most once a second rather than on every call."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            super()._clean_expired()

    async def send(self, channel: str, message: dict) -> None:
        """Queue ``message`` as is: envelopes are never changed once published."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull as exc:
            raise ChannelFull(channel) from exc

    async def group_send(self, group: str, message: dict) -> None:
        """Send to each member in turn; a full member is skipped, as the stock layer does."""
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)
