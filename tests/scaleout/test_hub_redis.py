"""The process hub on the real Redis, through a Redis restart, for both channels-redis layers.

Joins and leaves attempted while Redis is away must not raise (a socket would
close with 1011, or its disconnect would skip recording presence), and
``repair()`` must bring every wanted membership back once Redis returns.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from realtime.hub import Hub
from tests.hub_subscribers import RecordingSubscriber
from tests.scaleout.helpers import eventually, redis_start, redis_stop

pytestmark = pytest.mark.services


def make_layer(kind: str, url: str):
    prefix = f"testhub{uuid.uuid4().hex[:6]}"
    if kind == "pubsub":
        return RedisPubSubChannelLayer(hosts=[url], prefix=prefix)
    return RedisChannelLayer(hosts=[{"address": url, "socket_timeout": 10}], prefix=prefix)


async def heard(hub: Hub, recorder: RecordingSubscriber, group: str) -> bool:
    """Publish a marker to ``group`` and wait briefly for the recorder to get it."""
    marker = uuid.uuid4().hex
    try:
        await hub.layer.group_send(
            group, {"type": "hub.event", "group": group, "kind": "frame", "frame": marker}
        )
    except Exception:
        return False
    for _ in range(20):
        if any(event.get("frame") == marker for event in recorder.events):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("kind", ["pubsub", "core"])
async def test_memberships_survive_a_redis_restart_and_joins_made_meanwhile_are_retried(redis_url, kind):
    hub = Hub(make_layer(kind, redis_url))
    await hub.start()
    recorder = RecordingSubscriber()
    await hub.join("kept", recorder)
    await hub.join("dropped", recorder)
    assert await heard(hub, recorder, "kept")
    try:
        redis_stop()
        await hub.join("during", recorder)  # must not raise
        await hub.leave("dropped", recorder)  # must not raise
    finally:
        redis_start()

    async def repaired() -> bool:
        await hub.repair()
        return await heard(hub, recorder, "kept") and await heard(hub, recorder, "during")

    await eventually(repaired, timeout=30, step=0.5)
    assert not await heard(hub, recorder, "dropped")
    hub._receiver.cancel()
    await asyncio.gather(hub._receiver, return_exceptions=True)
    await hub.layer.flush()


async def test_a_batch_is_published_in_one_pipeline_and_arrives_in_order(redis_url):
    """``PubSubLayer.group_send_many``: every envelope of a batch, each group's in order."""
    from realtime.layers import PubSubLayer

    layer = PubSubLayer(hosts=[redis_url], prefix=f"testhub{uuid.uuid4().hex[:6]}")
    hub = Hub(layer)
    await hub.start()
    first, second = RecordingSubscriber(), RecordingSubscriber()
    await hub.join("one", first)
    await hub.join("two", second)
    batch = [
        (group, {"type": "hub.event", "group": group, "kind": "frame", "frame": f"{group}-{n}"})
        for n in range(50)
        for group in ("one", "two")
    ]
    await layer.group_send_many(batch)
    await eventually(lambda: len(first.events) == 50 and len(second.events) == 50)
    assert [event["frame"] for event in first.events] == [f"one-{n}" for n in range(50)]
    assert [event["frame"] for event in second.events] == [f"two-{n}" for n in range(50)]
