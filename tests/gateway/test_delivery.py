"""Delivery above an at-most-once layer: dropped envelopes are filled from the database."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from gateway import delivery
from messaging.services import message_send
from realtime.hub import get_hub

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 3}}
    }


async def stall_hub():
    """Stop the hub from reading the layer, as a busy or paused process would."""
    hub = await get_hub()
    hub._receiver.cancel()
    await asyncio.sleep(0)
    return hub


def resume_hub(hub) -> None:
    hub._receiver = asyncio.create_task(hub._receive_forever())


async def test_flood_past_layer_capacity_still_delivers_every_message_once_in_order(
    small_layer, make_user, ws_connect
):
    sender = await database_sync_to_async(make_user)()
    listeners = [await ws_connect(await database_sync_to_async(make_user)()) for _ in range(3)]
    hub = await stall_hub()
    sent = 40
    for n in range(sent):
        await database_sync_to_async(message_send)(user=sender, channel_name=None, content=f"flood {n}")
    layer = get_channel_layer()
    assert layer.channels[hub.channel_name].qsize() == 3  # the layer kept 3 and dropped the rest
    resume_hub(hub)
    await database_sync_to_async(message_send)(user=sender, channel_name=None, content="last")
    for listener in listeners:
        seqs = []
        while len(seqs) < sent + 1:
            frame = await listener.recv()
            if frame["type"] == "message":
                seqs.append(frame["message"]["seq"])
        assert seqs == list(range(1, sent + 2))
        await listener.nothing(ignore=("presence",))


async def test_socket_too_far_behind_is_closed_1013(small_layer, make_user, ws_connect, monkeypatch):
    monkeypatch.setattr(delivery, "GAP_FILL_MAX", 5)
    sender = await database_sync_to_async(make_user)()
    listener = await ws_connect(await database_sync_to_async(make_user)())
    hub = await stall_hub()
    for n in range(10):
        await database_sync_to_async(message_send)(user=sender, channel_name=None, content=f"m{n}")
    # Drain what the layer kept, so the next envelope the hub sees is far ahead.
    layer = get_channel_layer()
    while not layer.channels[hub.channel_name].empty():
        layer.channels[hub.channel_name].get_nowait()
    resume_hub(hub)
    await database_sync_to_async(message_send)(user=sender, channel_name=None, content="far ahead")
    assert await listener.recv_type("__closed__") == {"type": "__closed__", "code": 1013}


async def test_backlog_past_the_limit_is_closed_1013(make_user, ws_connect, monkeypatch):
    monkeypatch.setattr(delivery, "MAX_BACKLOG", 5)
    listener = await ws_connect(await database_sync_to_async(make_user)())
    hub = await get_hub()
    (consumer,) = [s for s in hub.subscribers() if s.user.id == listener.user.id]
    consumer.live = False  # stop the pump, as a socket that cannot write would
    for seq in range(1, 8):
        consumer.hub_event({"kind": "frame", "frame": "{}", "group": "chat.lobby", "seq": seq})
    assert await listener.recv_type("__closed__") == {"type": "__closed__", "code": 1013}


async def test_flood_of_edits_and_new_messages_past_layer_capacity_ends_in_every_final_state(
    small_layer, make_user, ws_connect
):
    """Into a layer of capacity 3: each subscriber applies every change once, in position order, and
    ends with every message in its final state."""
    from messaging import changes

    sender = await database_sync_to_async(make_user)()
    listeners = [await ws_connect(await database_sync_to_async(make_user)()) for _ in range(3)]
    hub = await stall_hub()
    final: dict[str, str] = {}
    for n in range(15):
        message = (
            await database_sync_to_async(message_send)(user=sender, channel_name=None, content=f"m{n}")
        ).message
        final[str(message.id)] = f"m{n}"
        if n % 3 == 0:
            await database_sync_to_async(changes.message_edit)(
                user=sender, message_id=str(message.id), content=f"m{n}!"
            )
            final[str(message.id)] = f"m{n}!"
        if n % 5 == 0:
            await database_sync_to_async(changes.message_delete)(user=sender, message_id=str(message.id))
            final[str(message.id)] = ""
    resume_hub(hub)
    last = (
        await database_sync_to_async(message_send)(user=sender, channel_name=None, content="last")
    ).message
    final[str(last.id)] = "last"
    for listener in listeners:
        state: dict[str, str] = {}
        positions: list[int] = []
        while last.seq not in positions:
            frame = await listener.recv()
            if frame["type"] in {"message", "message_updated"}:
                positions.append(frame["message"]["rev"])
                state[frame["message"]["id"]] = frame["message"]["content"]
        assert positions == sorted(set(positions))  # each position once, in order
        assert state == final
        await listener.nothing(ignore=("presence",))
