"""Realtime start-up belongs to the process: the ASGI lifespan starts it before any connection."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import channel_layers

from chatsite.asgi import application
from gateway import housekeeping
from gateway.auth import TokenAuthMiddleware
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


@pytest.mark.django_db(transaction=True)
async def test_the_token_middleware_fills_the_scope(make_user):
    from channels.db import database_sync_to_async

    from gateway.database import Refused
    from tests.conftest import login_tokens

    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login_tokens)(user)
    seen: list[dict] = []

    async def inner(scope, receive, send):
        seen.append(scope)

    middleware = TokenAuthMiddleware(inner)
    await middleware({"type": "websocket", "query_string": f"token={tokens['access']}".encode()}, None, None)
    await middleware({"type": "websocket", "query_string": b""}, None, None)
    await middleware({"type": "websocket", "query_string": b"token=not-a-jwt"}, None, None)

    assert (seen[0]["user"].id, seen[0]["session"].id, seen[0]["refusal"]) == (
        user.id,
        tokens["session"].id,
        None,
    )
    for scope in seen[1:]:
        assert scope["user"] is None
        assert isinstance(scope["refusal"], Refused) and scope["refusal"].code == 4401
