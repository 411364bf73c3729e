"""One mapping from exceptions to what a socket is told, shared in spirit with REST (core.errors)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import IntegrityError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from core.errors import ContentEmpty, InvalidInput, ServiceUnavailable, as_chat_error
from gateway import database

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("failure", "code", "status"),
    [
        (OperationalError("server closed the connection"), "unavailable", 503),
        (RedisConnectionError("Redis is restarting"), "unavailable", 503),
        (IntegrityError("duplicate key"), "invalid_message", 400),
        (ContentEmpty("Content is empty."), "content_empty", 400),
    ],
)
def test_as_chat_error_maps_outages_refused_rows_and_refusals(failure, code, status):
    refusal = as_chat_error(failure)
    assert (refusal.code, refusal.http_status) == (code, status)


def test_as_chat_error_leaves_bugs_alone():
    assert as_chat_error(KeyError("oops")) is None


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (OperationalError("server closed the connection"), "unavailable"),
        (IntegrityError("duplicate key"), "invalid_message"),
        (InvalidInput("before must be the id of a message in this channel."), "invalid_message"),
        (ServiceUnavailable("Presence is unavailable (Redis); try again shortly."), "unavailable"),
        (RuntimeError("a bug"), "internal_error"),
    ],
)
async def test_a_failing_frame_is_an_error_frame_and_the_socket_stays_open(
    make_user, ws_connect, monkeypatch, failure, code
):
    def fail(**kwargs):
        raise failure

    client = await ws_connect(await database_sync_to_async(make_user)())
    monkeypatch.setattr(database, "history", fail)
    await client.send({"type": "history", "channel": None, "client_id": "h-1"})
    error = await client.recv_type("error")
    assert (error["code"], error["client_id"]) == (code, "h-1")
    await client.send({"type": "ping"})
    await client.recv_type("pong")


@pytest.mark.parametrize("failure", [OperationalError("database is away"), RedisConnectionError("away")])
async def test_an_outage_during_the_handshake_closes_1013(make_user, monkeypatch, failure):
    from tests.conftest import login_tokens
    from tests.gateway.conftest import open_socket

    user = await database_sync_to_async(make_user)()
    token = (await database_sync_to_async(login_tokens)(user))["access"]

    def fail(**kwargs):
        raise failure

    monkeypatch.setattr(database, "connection_open", fail)
    communicator = await open_socket(user.username, token)
    closed = await communicator.receive_output(3)
    assert (closed["type"], closed["code"]) == ("websocket.close", 1013)
