"""``GET /metrics``: each metric moves when its event happens, and the route hides without its token."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from messaging.services import message_send
from realtime.hub import get_hub

TOKEN = "metrics-scraper-token-0123456789"
NAMES = {
    "chat_connections": "gauge",
    "chat_messages_stored": "counter",
    "chat_changes_stored": "counter",
    "chat_deliveries": "counter",
    "chat_direct_writes": "counter",
    "chat_gap_fills": "counter",
    "chat_ws_closes": "counter",
    "chat_rate_limited": "counter",
    "chat_layer_errors": "counter",
    "chat_ack_seconds": "histogram",
}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(condition, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the metric did not move"
        await asyncio.sleep(0.01)


# --- the route ----------------------------------------------------------------


def _unknown_route(client):
    return client.get("/no-such-route")


def test_without_a_token_configured_metrics_is_an_unknown_route(client, settings):
    settings.CHAT_METRICS_TOKEN = ""
    unknown = _unknown_route(client)
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": f"Bearer {TOKEN}"}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 404
        assert response.content == unknown.content
        assert response["Content-Type"] == unknown["Content-Type"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
def test_a_missing_or_wrong_token_is_an_unknown_route(client, settings, headers):
    settings.CHAT_METRICS_TOKEN = TOKEN
    unknown = _unknown_route(client)
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 404
    assert response.content == unknown.content


def test_the_token_gets_every_metric_in_prometheus_text(client, settings):
    settings.CHAT_METRICS_TOKEN = TOKEN
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f.type for f in text_string_to_metric_families(response.content.decode())}
    for name, kind in NAMES.items():
        assert families.get(name) == kind, name
    assert "process_resident_memory_bytes" in families  # the process collector comes along
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


# --- each metric moves ----------------------------------------------------------

pytestmark_db = pytest.mark.django_db(transaction=True)


@pytestmark_db
async def test_a_message_moves_stored_deliveries_and_the_ack_histogram(make_user, ws_connect):
    sender = await ws_connect(await database_sync_to_async(make_user)())
    listener = await ws_connect(await database_sync_to_async(make_user)())
    stored, delivered, acks = (
        sample("chat_messages_stored_total"),
        sample("chat_deliveries_total"),
        sample("chat_ack_seconds_count"),
    )
    await sender.send({"type": "message", "channel": None, "content": "counted", "client_id": "m1"})
    await sender.collect("ack", "message")
    await listener.recv_type("message")
    assert sample("chat_messages_stored_total") == stored + 1
    assert sample("chat_deliveries_total") == delivered + 2  # the sender's socket and the listener's
    assert sample("chat_ack_seconds_count") == acks + 1
    # A resend stores nothing new.
    await sender.send({"type": "message", "channel": None, "content": "counted", "client_id": "m1"})
    await sender.recv_type("ack")
    assert sample("chat_messages_stored_total") == stored + 1


@pytestmark_db
async def test_a_change_moves_changes_stored(make_user, ws_connect):
    client = await ws_connect(await database_sync_to_async(make_user)())
    await client.send({"type": "message", "channel": None, "content": "to edit"})
    message_id = (await client.collect("ack", "message"))["ack"]["id"]
    changes = sample("chat_changes_stored_total")
    await client.send({"type": "edit", "id": message_id, "content": "edited"})
    await client.collect("ack", "message_updated")
    assert sample("chat_changes_stored_total") == changes + 1
    await client.send({"type": "edit", "id": message_id, "content": "edited"})  # no change
    await client.recv_type("ack")
    assert sample("chat_changes_stored_total") == changes + 1


@pytestmark_db
async def test_a_lost_envelope_moves_gap_fills(make_user, ws_connect, monkeypatch):
    sender = await database_sync_to_async(make_user)()
    listener = await ws_connect(await database_sync_to_async(make_user)())
    fills, delivered = sample("chat_gap_fills_total"), sample("chat_deliveries_total")
    with monkeypatch.context() as lost:
        lost.setattr("realtime.publish.publish_all", lambda envelopes: None)
        await database_sync_to_async(message_send)(user=sender, channel_name=None, content="lost")
    await database_sync_to_async(message_send)(user=sender, channel_name=None, content="next")
    assert [(await listener.recv_type("message"))["message"]["content"] for _ in range(2)] == ["lost", "next"]
    assert sample("chat_gap_fills_total") == fills + 1
    assert sample("chat_deliveries_total") == delivered + 2


@pytestmark_db
async def test_closes_are_counted_by_code_and_connections_follow_open_sockets(make_user, ws_connect):
    from tests.gateway.conftest import open_socket

    user = await database_sync_to_async(make_user)()
    open_before = sample("chat_connections")
    client = await ws_connect(user)
    assert sample("chat_connections") == open_before + 1
    by_client = sample("chat_ws_closes_total", code="1000")
    await client.communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await client.communicator.wait()
    assert sample("chat_ws_closes_total", code="1000") == by_client + 1
    assert sample("chat_connections") == open_before

    refused = sample("chat_ws_closes_total", code="4401")
    communicator = await open_socket(user.username, "not-a-token")
    assert (await communicator.receive_output(3))["code"] == 4401
    await communicator.send_input({"type": "websocket.disconnect", "code": 4401})
    await communicator.wait()
    assert sample("chat_ws_closes_total", code="4401") == refused + 1
    assert sample("chat_connections") == open_before

    # A code a client makes up is counted, without a series of its own.
    other = sample("chat_ws_closes_total", code="other")
    client = await ws_connect(user)
    await client.communicator.send_input({"type": "websocket.disconnect", "code": 4123})
    await client.communicator.wait()
    assert sample("chat_ws_closes_total", code="other") == other + 1
    assert sample("chat_ws_closes_total", code="4123") == 0


@pytestmark_db
async def test_a_rate_limit_refusal_is_counted_by_kind(make_user, ws_connect, settings):
    from messaging.ratelimit import reset_message_rate_limiter

    settings.CHAT_MESSAGE_BURST = 1
    settings.CHAT_MESSAGE_RATE = 0.01
    reset_message_rate_limiter()
    client = await ws_connect(await database_sync_to_async(make_user)())
    refused = sample("chat_rate_limited_total", kind="message")
    await client.send({"type": "message", "channel": None, "content": "one"})
    await client.collect("ack", "message")
    assert sample("chat_rate_limited_total", kind="message") == refused
    await client.send({"type": "message", "channel": None, "content": "two"})
    assert (await client.recv_type("error"))["code"] == "rate_limited"
    assert sample("chat_rate_limited_total", kind="message") == refused + 1


def test_a_login_rate_limit_refusal_is_counted(api, make_user, settings):
    settings.CHAT_LOGIN_RATE = "1/m"
    make_user("limited")
    refused = sample("chat_rate_limited_total", kind="auth.login")
    body = {"username": "limited", "password": "wrong-password-1"}
    assert api.post("/api/auth/login", body, format="json").status_code == 401
    assert api.post("/api/auth/login", body, format="json").status_code == 429
    assert sample("chat_rate_limited_total", kind="auth.login") == refused + 1


@pytestmark_db
async def test_a_failed_publish_moves_layer_errors(make_user, ws_connect, monkeypatch):
    sender = await database_sync_to_async(make_user)()
    await ws_connect(await database_sync_to_async(make_user)())
    await get_hub()
    layer = get_channel_layer()

    async def refuse(group, message):
        raise ConnectionError("the layer is away")

    errors = sample("chat_layer_errors_total")
    with monkeypatch.context() as away:
        away.setattr(layer, "group_send", refuse)
        await database_sync_to_async(message_send)(user=sender, channel_name=None, content="unpublished")
        # The message's envelope and the sender's read position: each failed publish counts.
        await eventually(lambda: sample("chat_layer_errors_total") >= errors + 1)
