"""WebSocket abuse through WebsocketCommunicator: handshakes dropped midway, typing floods.

The real-server versions are in tests/e2e/test_abuse_e2e.py.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

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
    for _ in range(100):
        if user.id in get_presence_store().all_connected():
            break
        await asyncio.sleep(0.01)
    assert user.id in get_presence_store().all_connected()
    communicator.future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await communicator.future
    for _ in range(100):  # the release runs shielded, on its own
        if user.id not in get_presence_store().all_connected():
            break
        await asyncio.sleep(0.01)
    assert user.id not in get_presence_store().all_connected()
    assert (await get_hub()).members == {}
