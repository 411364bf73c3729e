"""WebSocket abuse through WebsocketCommunicator: handshakes dropped midway, typing floods.

The real-server versions are in tests/e2e/test_abuse_e2e.py.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from accounts import services as account_services
from chatrooms import services as channel_services
from chatsite.asgi import application
from realtime.hub import get_hub
from realtime.presence_store import get_presence_store
from tests.conftest import login_tokens

pytestmark = pytest.mark.django_db(transaction=True)


def dropping_after(sends: int):
    """The app behind a client that vanishes after ``sends`` frames: the next send raises, as
    an ASGI server's ``send`` does once the connection is gone (an ``OSError``)."""

    async def app(scope, receive, send):
        sent = 0

        async def flaky_send(message):
            nonlocal sent
            if message["type"] == "websocket.send":
                sent += 1
                if sent > sends:
                    raise OSError("the client is gone")
            await send(message)

        await application(scope, receive, flaky_send)

    return app


async def drop_handshake(username: str, token: str, sends: int) -> None:
    communicator = WebsocketCommunicator(dropping_after(sends), f"/api/ws/{username}?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    # What the server tells the app once the transport is gone; the app must not have died.
    await communicator.send_input({"type": "websocket.disconnect", "code": 1006})
    await communicator.wait(3)


@pytest.mark.parametrize("sends", [0, 1])  # the send of ``ready`` fails, or that of ``history``
async def test_a_handshake_dropped_after_accept_leaves_no_presence_or_hub_membership(
    make_user, ws_connect, settings, sends
):
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 2
    user = await database_sync_to_async(make_user)()
    token = (await database_sync_to_async(login_tokens)(user))["access"]
    for _ in range(5):
        await drop_handshake(user.username, token, sends)
    hub = await get_hub()
    assert hub.members == {}, "the hub still holds groups of dropped sockets"
    assert user.id not in get_presence_store().all_connected()
    # Past the limit of 2 had the drops leaked: a normal connect still opens.
    client = await ws_connect(user, token)
    assert client.ready["type"] == "ready"
    assert user.id in get_presence_store().all_connected()
    await client.close()
    assert user.id not in get_presence_store().all_connected()
    assert hub.members == {}


async def test_a_handshake_dropped_while_cancelled_releases_too(make_user, settings):
    """The server cancels the app (it is stopping) in the middle of the handshake's sends."""
    user = await database_sync_to_async(make_user)()
    token = (await database_sync_to_async(login_tokens)(user))["access"]
    gate = asyncio.Event()

    async def app(scope, receive, send):
        async def stuck_send(message):
            if message["type"] == "websocket.send":
                await gate.wait()  # never set: the send hangs until cancelled
            await send(message)

        await application(scope, receive, stuck_send)

    communicator = WebsocketCommunicator(app, f"/api/ws/{user.username}?token={token}")
    connected, _ = await communicator.connect()
    assert connected
    for _ in range(1000):  # up to 10 s on a busy machine
        if user.id in get_presence_store().all_connected():
            break
        await asyncio.sleep(0.01)
    assert user.id in get_presence_store().all_connected()
    communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await communicator.future
    for _ in range(1000):  # the release runs shielded, on its own (up to 10 s on a busy machine)
        if user.id not in get_presence_store().all_connected():
            break
        await asyncio.sleep(0.01)
    assert user.id not in get_presence_store().all_connected()
    assert (await get_hub()).members == {}


# --- typing: throttled, and never in the way of a close ----------------------------


async def typing_frames(client, seconds: float) -> list[dict]:
    """The typing frames ``client`` receives within ``seconds``."""
    seen = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        if await client.communicator.receive_nothing(timeout=left):
            break
        frame = await client.recv()
        if frame["type"] == "typing":
            seen.append(frame)
    return seen


async def test_typing_is_forwarded_once_per_user_and_channel_every_two_seconds(make_user, ws_connect):
    alice, bob = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await database_sync_to_async(channel_services.channel_create)(user=alice, name="den")
    await database_sync_to_async(channel_services.channel_join)(user=bob, name="den")
    a, a2, b = await ws_connect(alice), await ws_connect(alice), await ws_connect(bob)
    for n in range(30):  # two sockets of one user share the budget
        await (a if n % 2 else a2).send({"type": "typing", "channel": None})
        await a.send({"type": "typing", "channel": "den"})
    await a.send({"type": "ping"})
    assert (await a.recv_type("pong"))["type"] == "pong"  # no error frame came first
    seen = await typing_frames(b, 1.0)
    assert sorted(str(f["channel"]) for f in seen) == ["None", "den"], seen
    await asyncio.sleep(2.1 - 1.0)
    await a.send({"type": "typing", "channel": None})
    assert (await b.recv_type("typing"))["username"] == alice.username


async def test_a_full_layer_queue_refuses_typing_first_and_never_a_close():
    from channels.exceptions import ChannelFull

    from realtime.envelopes import close_envelope, frame_envelope, message_envelope, unsubscribe_envelope
    from realtime.layers import LocalChannelLayer

    layer = LocalChannelLayer(capacity=10)
    channel = await layer.new_channel("hub.")
    for _ in range(5):
        await layer.send(channel, frame_envelope("t", lossy=True))
    with pytest.raises(ChannelFull):  # half full: no more typing or presence
        await layer.send(channel, frame_envelope("t", lossy=True))
    for n in range(5):
        await layer.send(channel, message_envelope(stream="", seq=n, frame="m"))
    with pytest.raises(ChannelFull):  # full: no more messages (the database has them)
        await layer.send(channel, message_envelope(stream="", seq=9, frame="m"))
    await layer.send(channel, unsubscribe_envelope(stream="s", channel="c", frames=[]))
    await layer.send(channel, close_envelope(4401))  # past the capacity, still queued
    kinds = [(await layer.receive(channel))["kind"] for _ in range(12)]
    assert kinds[-2:] == ["unsubscribe", "close"]


async def test_logout_closes_4401_within_a_second_with_the_hub_queue_full_of_typing(make_user, ws_connect):
    from realtime.envelopes import close_envelope, frame_envelope
    from realtime.groups import LOBBY_GROUP, session_group
    from realtime.publish import apublish

    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login_tokens)(user)
    client = await ws_connect(user, tokens["access"])
    typing = '{"type":"typing","channel":null,"username":"someone"}'
    # More typing than the hub's queue holds, then the close a logout publishes, all before
    # the hub reads any: the close arrives at a full queue.
    for _ in range(20_000):
        await apublish(LOBBY_GROUP, frame_envelope(typing, lossy=True))
    await apublish(session_group(tokens["session"].id), close_envelope(4401))
    loop = asyncio.get_running_loop()
    start = loop.time()
    while (frame := await client.recv(timeout=1.0))["type"] != "__closed__":
        assert frame["type"] == "typing"
    assert frame["code"] == 4401
    assert loop.time() - start < 1.0


async def test_a_slow_socket_gets_its_close_ahead_of_queued_typing(make_user):
    """A client reading 100 frames a second, 1,000 typing frames behind: the logout's 4401 comes
    within a second, typing beyond a small backlog having been dropped."""
    from realtime.envelopes import frame_envelope
    from realtime.groups import LOBBY_GROUP
    from realtime.publish import apublish

    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login_tokens)(user)

    async def app(scope, receive, send):
        async def slow_send(message):
            if message["type"] == "websocket.send":
                await asyncio.sleep(0.01)
            await send(message)

        await application(scope, receive, slow_send)

    communicator = WebsocketCommunicator(app, f"/api/ws/{user.username}?token={tokens['access']}")
    assert (await communicator.connect())[0]
    for expected in ("ready", "history"):
        assert expected in (await communicator.receive_output(3))["text"]
    typing = '{"type":"typing","channel":null,"username":"someone"}'
    for _ in range(1_000):
        await apublish(LOBBY_GROUP, frame_envelope(typing, lossy=True))
    await asyncio.sleep(0.2)  # the hub hands them to the socket
    await database_sync_to_async(account_services.session_logout)(session=tokens["session"])
    loop = asyncio.get_running_loop()
    start = loop.time()
    received = 0
    while (output := await communicator.receive_output(3))["type"] != "websocket.close":
        received += 1
    assert output["code"] == 4401
    assert loop.time() - start < 1.0, f"the close came after {received} typing frames"
    await communicator.wait(3)


async def test_typing_where_one_is_no_member_is_refused_once_per_two_seconds(
    make_user, ws_connect, monkeypatch
):
    from gateway import database

    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    trips = []
    real = database.channel_problem
    monkeypatch.setattr(database, "channel_problem", lambda **kw: (trips.append(kw), real(**kw))[1])
    for _ in range(20):
        await client.send({"type": "typing", "channel": "nowhere"})
    await client.send({"type": "ping"})
    assert (await client.recv_type("error"))["code"] == "channel_not_found"
    await client.recv_type("pong")  # the other 19 were dropped without a database trip
    assert len(trips) == 1
