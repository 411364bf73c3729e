"""The per-user limits over the WebSocket (WebsocketCommunicator and the full ASGI app): join and
leave, history and sync refused with ``rate_limited`` error frames, read frames dropped silently
with the latest applied soon after, handshakes past CHAT_CONNECT_RATE closed with 4429."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chatrooms import services as channel_services
from chatrooms.models import Membership
from messaging.services import message_send
from tests.conftest import login_tokens
from tests.gateway.conftest import open_socket
from tests.gateway.test_consumer import close_code

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def users(make_user):
    return make_user("alice"), make_user("bob")


async def until(client, kind: str, timeout: float = 3.0) -> dict:
    """The next frame of ``kind``, whatever comes before it."""
    while True:
        frame = await client.recv(timeout)
        if frame["type"] == kind:
            return frame


def assert_rate_limited(frame: dict, *, most: float) -> None:
    assert frame["type"] == "error" and frame["code"] == "rate_limited", frame
    assert 0 < frame["retry_after"] <= most


@database_sync_to_async
def channel(owner, name: str, *members) -> None:
    channel_services.channel_create(user=owner, name=name)
    for member in members:
        channel_services.channel_join(user=member, name=name)


async def test_join_and_leave_frames_share_the_membership_rate_with_rest(make_user, ws_connect, rates):
    alice, bob = await users(make_user)
    await channel(bob, "room")
    await channel(bob, "hall")
    rates(CHAT_MEMBERSHIP_RATE="3/m")
    client = await ws_connect(alice)
    await client.send({"type": "join", "channel": "room"})
    await until(client, "subscribed")
    await database_sync_to_async(channel_services.channel_join)(user=alice, name="hall")  # as REST does
    await until(client, "subscribed")
    await client.send({"type": "leave", "channel": "room"})
    await until(client, "unsubscribed")
    await client.send({"type": "join", "channel": "room", "client_id": "j"})
    refused = await client.recv_type("error")
    assert_rate_limited(refused, most=60)
    assert refused["client_id"] == "j"
    await client.send({"type": "leave", "channel": "hall"})
    assert_rate_limited(await client.recv_type("error"), most=60)
    memberships = database_sync_to_async(
        lambda: set(Membership.objects.filter(user=alice).values_list("channel__name", flat=True))
    )
    assert await memberships() == {"hall"}
    # The socket stays usable.
    await client.send({"type": "ping"})
    assert (await client.recv_type("pong"))["type"] == "pong"


async def test_history_and_sync_frames_past_the_read_rate_are_refused(make_user, ws_connect, rates):
    alice, bob = await users(make_user)
    await channel(alice, "ops", bob)
    for n in range(3):
        await database_sync_to_async(message_send)(user=alice, channel_name="ops", content=f"m{n}")
    rates(CHAT_READ_RATE="2/m")
    client = await ws_connect(bob)  # the connect's own history is not a request
    await client.send({"type": "history", "channel": "ops"})
    assert len((await client.recv_type("history"))["messages"]) == 3
    # One sync frame is one request, however many streams it names.
    await client.send({"type": "sync", "after": {"": 0, "ops": 0}})
    await client.recv_type("history")
    assert (await client.recv_type("synced"))["type"] == "synced"
    await client.send({"type": "sync", "after": {"ops": 0}})
    assert_rate_limited(await client.recv_type("error"), most=60)
    await client.send({"type": "history", "channel": None, "client_id": "h"})
    refused = await client.recv_type("error")
    assert_rate_limited(refused, most=60)
    assert refused["client_id"] == "h"
    await client.nothing()  # no synced after a refused sync
    # Another user is not limited by bob's reading.
    other = await ws_connect(alice)
    await other.send({"type": "history", "channel": "ops"})
    assert len((await other.recv_type("history"))["messages"]) == 3


async def test_read_frames_past_the_rate_are_dropped_and_the_latest_applies(make_user, ws_connect, rates):
    alice, bob = await users(make_user)
    await channel(alice, "ops", bob)
    for n in range(10):
        await database_sync_to_async(message_send)(user=alice, channel_name="ops", content=f"m{n}")
    rates(CHAT_READ_RATE="2/m")
    one, two = await ws_connect(bob), await ws_connect(bob)
    for seq in (1, 2):
        await one.send({"type": "read", "channel": "ops", "seq": seq})
        assert (await two.recv_type("read"))["last_read_seq"] == seq
    for seq in range(3, 9):  # a reader scrolling fast: each one past the rate
        await one.send({"type": "read", "channel": "ops", "seq": seq})
    # No error frame; one read frame with the latest position, within a second or so.
    frame = await two.recv_type("read", timeout=5)
    assert frame == {"type": "read", "channel": "ops", "last_read_seq": 8, "unread": 2, "mentions": 0}
    assert [(await one.recv_type("read", timeout=5))["last_read_seq"] for _ in range(3)] == [1, 2, 8]
    await one.nothing(timeout=1.0)
    await two.nothing(timeout=0.1)
    position = database_sync_to_async(lambda: Membership.objects.get(user=bob).last_read_seq)
    assert await position() == 8
    # Refusals are still told: a channel bob is not in.
    await one.send({"type": "read", "channel": "nowhere", "seq": 1})
    assert (await one.recv_type("error"))["code"] == "channel_not_found"


async def test_handshakes_past_the_connect_rate_close_4429(make_user, ws_connect, rates):
    alice, bob = await users(make_user)
    rates(CHAT_CONNECT_RATE="3/m")
    token = (await database_sync_to_async(login_tokens)(alice))["access"]
    for _ in range(3):
        client = await ws_connect(alice, token)
        await client.close()
    assert await close_code(await open_socket("alice", token)) == 4429
    # Counted per user, not per token or address: a new login does not help, bob is not affected.
    fresh = (await database_sync_to_async(login_tokens)(alice))["access"]
    assert await close_code(await open_socket("alice", fresh)) == 4429
    assert (await ws_connect(bob)).ready["type"] == "ready"
