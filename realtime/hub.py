"""The process-local hub: one channel-layer member per process, not per socket.

Channels' usual design gives every socket its own layer channel, so one
broadcast to N sockets is N layer messages (and N serialized thread hops, and
N silent drops once a queue fills). Here each process joins a layer group
once, on behalf of all its local sockets in that group, and hands every
envelope it receives to those sockets itself: one layer message per process
per broadcast, its frame encoded once by the publisher.

When Redis restarts, the pubsub layer's client (redis-py's ``PubSub``)
reconnects and re-subscribes to every channel it had by itself, so existing
memberships survive. What does not survive is a ``group_add`` or
``group_discard`` attempted while Redis is away: they raise. The hub keeps
such groups aside and ``repair()`` (called by the housekeeping loop) retries
them, so a socket never fails or leaks because of an outage; a layer that
keeps memberships in Redis itself (``RedisChannelLayer``) loses them on a
restart, so ``repair()`` re-adds them all for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import Any, Protocol

from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer

from core import metrics
from realtime.publish import set_server_loop

logger = logging.getLogger(__name__)


class HubSubscriber(Protocol):
    def hub_event(self, event: dict[str, Any]) -> None:
        """Take one envelope; must not block (queue it, or send without awaiting)."""

    async def server_close(self, code: int) -> None:
        """Close the socket now: the process is stopping."""


class Hub:
    """Relays layer envelopes to the local subscribers of their group."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.channel_name: str | None = None
        # A group's local subscribers: the one subscriber itself while it is alone (a user's or a
        # session's group, mostly: an empty set costs more than the socket's reference), a set
        # from the second on. ``_members`` reads either as a tuple.
        self.members: dict[str, set[HubSubscriber] | HubSubscriber] = {}
        self._joined: set[str] = set()  # groups this process's layer channel is in
        self._unjoined: set[str] = set()  # groups whose group_add failed (Redis away): retried
        # Per group while a join or leave of it is under way: [lock, how many hold or await it].
        self._locks: dict[str, list] = {}
        self._receiver: asyncio.Task | None = None
        self._starting: asyncio.Lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._receiver is None:
                self.channel_name = await self.layer.new_channel("hub.")
                self._receiver = asyncio.create_task(self._receive_forever(), name="chat-hub")

    async def join(self, group: str, subscriber: HubSubscriber) -> None:
        """Deliver ``group``'s envelopes to ``subscriber`` from now on."""
        current = self.members.get(group)
        if current is None:
            self.members[group] = subscriber
        elif isinstance(current, set):
            current.add(subscriber)
        elif current is not subscriber:
            self.members[group] = {current, subscriber}
        if group in self._joined:
            return
        async with self._locked(group):
            if group not in self._joined and group in self.members:
                try:
                    await self.layer.group_add(group, self.channel_name)
                except Exception as exc:
                    metrics.LAYER_ERRORS.inc()
                    # Redis is away: serve the socket anyway (gaps fill from
                    # the database) and join once repair() gets through.
                    logger.warning("hub: joining %s failed (%s); will retry", group, exc)
                    self._unjoined.add(group)
                    return
                self._unjoined.discard(group)
                self._joined.add(group)

    async def leave(self, group: str, subscriber: HubSubscriber) -> None:
        members = self.members.get(group)
        if members is None:
            return
        if isinstance(members, set):
            members.discard(subscriber)
            if len(members) > 1:
                return
            if members:  # one left: kept as itself
                self.members[group] = next(iter(members))
                return
            del self.members[group]
        elif members is subscriber:
            del self.members[group]
        else:
            return
        async with self._locked(group):
            if group not in self.members:
                self.members.pop(group, None)
                self._unjoined.discard(group)
                if group in self._joined:
                    self._joined.discard(group)
                    try:
                        await self.layer.group_discard(group, self.channel_name)
                    except Exception as exc:
                        metrics.LAYER_ERRORS.inc()
                        # An extra subscription only costs envelopes nobody here reads.
                        logger.warning("hub: leaving %s failed (%s)", group, exc)

    async def leave_all(self, groups: Iterable[str], subscriber: HubSubscriber) -> None:
        for group in list(groups):
            await self.leave(group, subscriber)

    def subscribers(self) -> set[HubSubscriber]:
        return {subscriber for group in self.members for subscriber in self._members(group)}

    def _members(self, group: str) -> tuple[HubSubscriber, ...]:
        members = self.members.get(group)
        if members is None:
            return ()
        return tuple(members) if isinstance(members, set) else (members,)

    async def close_all(self, code: int) -> None:
        """Close every local socket with ``code`` (the process is stopping)."""
        await asyncio.gather(
            *(subscriber.server_close(code) for subscriber in self.subscribers()), return_exceptions=True
        )

    async def rejoin_all(self) -> None:
        """Re-add every group membership (after a layer lost them, e.g. a Redis restart)."""
        for group in list(self._joined):
            await self.layer.group_add(group, self.channel_name)

    async def repair(self) -> None:
        """Join the groups an outage kept us out of; re-add all where the layer forgets them.

        Called periodically (the housekeeping loop). The pubsub layer
        re-subscribes by itself after a reconnect; ``RedisChannelLayer``
        keeps memberships in Redis, which a restart empties, and expires
        them after ``group_expiry``, so for it every membership is renewed.
        """
        for group in list(self._unjoined):
            if members := self._members(group):
                await self.join(group, members[0])
            else:
                self._unjoined.discard(group)
        if not isinstance(self.layer, RedisPubSubChannelLayer):
            await self.rejoin_all()

    @contextlib.asynccontextmanager
    async def _locked(self, group: str) -> AsyncIterator[None]:
        """Hold ``group``'s lock: joins and leaves of one group take turns. The lock exists only
        while one of them is under way, not for as long as the group (a user's or a session's
        group lives as long as its socket)."""
        entry = self._locks.get(group)
        if entry is None:
            entry = self._locks[group] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[group]

    def dispatch(self, event: dict[str, Any]) -> None:
        members = self.members.get(event.get("group", ""))
        if members is None:
            return
        for subscriber in tuple(members) if isinstance(members, set) else (members,):
            try:
                subscriber.hub_event(event)
            except Exception:
                logger.exception("hub subscriber failed on %s", event.get("kind"))

    async def _receive_forever(self) -> None:
        while True:
            try:
                event = await self.layer.receive(self.channel_name)
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.LAYER_ERRORS.inc()
                logger.exception("hub receive failed; retrying")
                await asyncio.sleep(0.5)
                continue
            self.dispatch(event)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


async def get_hub() -> Hub:
    """The hub of the running event loop (one per server process)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(get_channel_layer())
        set_server_loop(loop)
    await hub.start()
    return hub
