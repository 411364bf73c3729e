"""The embedded channel layer keeps Channels' semantics without its per-call sweeps and copies."""

from __future__ import annotations

from unittest import mock

import pytest
from channels.exceptions import ChannelFull

from realtime import layers
from realtime.layers import LocalChannelLayer


async def test_group_send_reaches_members_without_copying():
    layer = LocalChannelLayer()
    first, second = await layer.new_channel("hub."), await layer.new_channel("hub.")
    await layer.group_add("chat.lobby", first)
    await layer.group_add("chat.lobby", second)
    envelope = {"type": "hub.event", "frame": "{}"}
    await layer.group_send("chat.lobby", envelope)
    assert await layer.receive(first) is envelope
    assert await layer.receive(second) is envelope


async def test_sweeps_at_most_once_a_second():
    layer = LocalChannelLayer()
    channel = await layer.new_channel("hub.")
    await layer.group_add("chat.lobby", channel)
    with mock.patch.object(layers.InMemoryChannelLayer, "_clean_expired") as sweep:
        for _ in range(50):
            await layer.group_send("chat.lobby", {"type": "hub.event"})
            await layer.receive(channel)
    assert sweep.call_count == 1


async def test_group_memberships_do_not_expire_after_a_day():
    layer = LocalChannelLayer()
    channel = await layer.new_channel("hub.")
    await layer.group_add("chat.lobby", channel)
    layer.groups["chat.lobby"][channel] -= 2 * 86400  # joined two days ago
    layer._next_sweep = 0.0
    await layer.group_send("chat.lobby", {"type": "hub.event", "n": 1})
    assert (await layer.receive(channel))["n"] == 1


async def test_a_full_member_is_skipped_and_send_raises():
    layer = LocalChannelLayer(capacity=1)
    channel = await layer.new_channel("hub.")
    await layer.group_add("g", channel)
    await layer.group_send("g", {"type": "x", "n": 1})
    await layer.group_send("g", {"type": "x", "n": 2})  # dropped, not raised
    assert (await layer.receive(channel))["n"] == 1
    await layer.send(channel, {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "x"})
