"""Realtime start-up belongs to the process: the ASGI lifespan starts it before any connection."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import channel_layers

from chatsite.asgi import application
from gateway import housekeeping
from realtime.hub import get_hub


@pytest.fixture(autouse=True)
def own_layer():
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


async def test_lifespan_startup_starts_the_hub_and_housekeeping_once():
    messages = asyncio.Queue()
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await messages.put({"type": "lifespan.startup"})
    await messages.put({"type": "lifespan.shutdown"})
    await application({"type": "lifespan", "asgi": {"version": "3.0"}}, messages.get, send)

    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    hub = await get_hub()
    task = housekeeping._housekeepers[id(hub)]
    assert not task.done()
    assert await housekeeping.process_started() is hub
    assert housekeeping._housekeepers[id(hub)] is task  # started once, not again by a connection
    task.cancel()
