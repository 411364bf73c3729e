"""The embedded channel layer: Channels' in-memory layer without its per-call costs.

With the hub (``realtime.hub``) a process has one layer channel and one
group per chat channel, user and login session. The stock layer sweeps every
channel and group on each receive and send (a thousand groups swept per
message), deep-copies each message per recipient, and drops group members
after a day, which would silently stop a long-running process's delivery.

It also drops whatever arrives at a full queue, a logout's close included.
Here a full queue drops by priority (``realtime.envelopes.envelope_priority``):
lossy envelopes (typing, presence) once the queue is half full, messages
(recoverable from the database) once it is full, and control envelopes
(close, unsubscribe...) never: they are queued past the capacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from realtime.envelopes import PRIORITY_CONTROL, PRIORITY_LOSSY, envelope_priority

SWEEP_SECONDS = 1.0
NEVER = 10 * 365 * 24 * 3600
LOSSY_SHARE = 0.5  # lossy envelopes are refused once a queue is this full


class LocalChannelLayer(InMemoryChannelLayer):
    def __init__(self, expiry: int = 60, group_expiry: int = NEVER, capacity: int = 10_000, **kwargs) -> None:
        super().__init__(expiry=expiry, group_expiry=group_expiry, capacity=capacity, **kwargs)
        self._next_sweep = 0.0
        self.dropped = 0  # envelopes refused at a full queue, for tests and logs

    def _clean_expired(self) -> None:
        """Sweep at most once a second rather than on every call."""
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_SECONDS
            super()._clean_expired()

    def _queue(self, channel: str) -> asyncio.Queue:
        # Unbounded: ``send`` applies the capacity itself, by priority.
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue()
        return queue

    async def send(self, channel: str, message: dict) -> None:
        """Queue ``message`` as is (envelopes are never changed once published), unless the
        queue is too full for its priority: then ChannelFull."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        queue = self._queue(channel)
        capacity = self.get_capacity(channel)
        priority = envelope_priority(message)
        if priority != PRIORITY_CONTROL:
            limit = capacity * LOSSY_SHARE if priority == PRIORITY_LOSSY else capacity
            if queue.qsize() >= limit:
                self.dropped += 1
                raise ChannelFull(channel)
        queue.put_nowait((time.time() + self.expiry, message))

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self._queue(channel)
        try:
            _, message = await queue.get()
        finally:
            if queue.empty():
                self.channels.pop(channel, None)
        return message

    async def group_send(self, group: str, message: dict) -> None:
        """Send to each member in turn; a member too full for the envelope's priority is skipped."""
        assert isinstance(message, dict), "Message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        for channel in list(self.groups.get(group, ())):
            with contextlib.suppress(ChannelFull):
                await self.send(channel, message)


class PubSubLayer(RedisPubSubChannelLayer):
    """channels-redis's pubsub layer, with a batch of envelopes published in one round trip.

    The stock ``group_send`` takes its shard's lock and waits for one
    ``PUBLISH`` reply per envelope, so a group commit of a hundred messages
    was a hundred round trips in a row (a third of the scaled-out server's
    CPU in the rooms benchmark). ``group_send_many`` publishes the batch, in
    order, through one pipeline per shard (a group always maps to the same
    shard, so each group's envelopes keep their order). It relies on the
    layer's per-loop shards (``_get_layer``, ``_get_shard``, the shard's
    ``_lock`` and ``_redis``) as channels-redis 4 has them; tests run it
    against a real Redis.
    """

    async def group_send_many(self, envelopes: list[tuple[str, dict]]) -> None:
        layer = self._get_layer()
        by_shard: dict[Any, list[tuple[str, bytes]]] = {}
        for group, message in envelopes:
            channel = layer._get_group_channel_name(group)
            by_shard.setdefault(layer._get_shard(channel), []).append((channel, self.serialize(message)))
        for shard, items in by_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                async with shard._redis.pipeline(transaction=False) as pipe:
                    for channel, data in items:
                        pipe.publish(channel, data)
                    await pipe.execute()
