"""WebSocket test helpers: the full ASGI app under WebsocketCommunicator."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator

import realtime.presence_store
from chatsite.asgi import application
from tests.conftest import login_tokens


@pytest.fixture(autouse=True)
def fresh_layer_and_presence():
    """Each test gets its own channel layer (bound to its event loop) and presence."""
    channel_layers.backends.clear()
    realtime.presence_store._store = None
    yield
    channel_layers.backends.clear()
    realtime.presence_store._store = None


# Frames other tests skip while waiting for theirs: presence and typing come
# from other users, ``read`` from the user's own posts (tests of read state
# wait for them by name).
NOISE = frozenset({"presence", "typing", "read"})


class Client:
    """A connected socket with helpers to read frames by type."""

    def __init__(self, communicator: WebsocketCommunicator, user) -> None:
        self.communicator = communicator
        self.user = user
        self.ready: dict | None = None
        self.history: dict | None = None

    async def send(self, frame: dict | str) -> None:
        text = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
        await self.communicator.send_to(text_data=text)

    async def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        output = await self.communicator.receive_output(timeout)
        if output["type"] == "websocket.close":
            return {"type": "__closed__", "code": output.get("code")}
        return orjson.loads(output["text"])

    async def recv_type(self, kind: str, timeout: float = 3.0) -> dict[str, Any]:
        """The next frame of ``kind``, skipping presence noise (and ``read`` frames, which a
        sender's own posts cause, unless ``kind`` is ``read``)."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame
            if frame["type"] not in NOISE:
                raise AssertionError(f"expected {kind}, got {frame}")

    async def collect(self, *kinds: str, timeout: float = 3.0) -> dict[str, dict[str, Any]]:
        """One frame of each of ``kinds``, in whatever order they come (``NOISE`` skipped)."""
        found: dict[str, dict[str, Any]] = {}
        while len(found) < len(kinds):
            frame = await self.recv(timeout)
            if frame["type"] in kinds and frame["type"] not in found:
                found[frame["type"]] = frame
            elif frame["type"] not in NOISE:
                raise AssertionError(f"expected {kinds}, got {frame}")
        return found

    async def nothing(self, timeout: float = 0.3, ignore: tuple[str, ...] = ("presence",)) -> None:
        """Assert that no frame (other than ``ignore``) arrives within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            if await self.communicator.receive_nothing(timeout=left):
                return
            frame = await self.recv()
            if frame["type"] not in ignore:
                raise AssertionError(f"expected nothing, got {frame}")

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_socket(username: str, token: str | None, headers=None) -> WebsocketCommunicator:
    path = f"/api/ws/{username}" + (f"?token={token}" if token is not None else "")
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.fixture
async def ws_connect():
    """``await ws_connect(user)``: a socket past ``ready`` and ``history``; closed after the test."""
    clients: list[Client] = []

    async def connect(user, token: str | None = None) -> Client:
        if token is None:
            token = (await database_sync_to_async(login_tokens)(user))["access"]
        client = Client(await open_socket(user.username, token), user)
        client.ready = await client.recv()
        assert client.ready["type"] == "ready", client.ready
        client.history = await client.recv()
        assert client.history["type"] == "history", client.history
        clients.append(client)
        return client

    yield connect
    for client in clients:
        await client.close()
