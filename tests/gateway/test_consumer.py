"""The WebSocket contract through Channels' WebsocketCommunicator and the full ASGI app."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from accounts import presence as account_presence
from accounts import services as account_services
from tests.conftest import login_tokens
from tests.gateway.conftest import Client, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def close_code(communicator) -> int:
    output = await communicator.receive_output(3)
    assert output["type"] == "websocket.close", output
    return output["code"]


# --- handshake ----------------------------------------------------------------


async def test_missing_and_malformed_tokens_close_4401(make_user):
    user = await database_sync_to_async(make_user)()
    for token in (None, "", "garbage", "a.b.c"):
        assert await close_code(await open_socket(user.username, token)) == 4401


async def test_ended_session_closes_4401(make_user):
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login_tokens)(user)
    await database_sync_to_async(account_services.session_logout)(session=tokens["session"])
    assert await close_code(await open_socket(user.username, tokens["access"])) == 4401


async def test_refresh_token_is_not_an_access_token(make_user):
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login_tokens)(user)
    assert await close_code(await open_socket(user.username, tokens["refresh"])) == 4401


async def test_other_users_token_and_inactive_user_close_4403(make_user):
    alice, bob = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login_tokens)(alice)
    assert await close_code(await open_socket(bob.username, tokens["access"])) == 4403
    await database_sync_to_async(account_services.user_deactivate)(user=alice)
    assert await close_code(await open_socket(alice.username, tokens["access"])) == 4403


async def test_path_username_is_case_insensitive(make_user, ws_connect):
    user = await database_sync_to_async(make_user)("CamelCase")
    token = (await database_sync_to_async(login_tokens)(user))["access"]
    client = Client(await open_socket("camelcase", token), user)
    assert (await client.recv())["type"] == "ready"
    await client.close()


async def test_connection_limit_closes_4429(make_user, ws_connect, settings):
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 2
    user = await database_sync_to_async(make_user)()
    await ws_connect(user)
    await ws_connect(user)
    token = (await database_sync_to_async(login_tokens)(user))["access"]
    assert await close_code(await open_socket(user.username, token)) == 4429


async def test_ready_then_history_in_order(make_user, ws_connect):
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    assert client.ready["user"]["username"] == user.username
    assert client.ready["user"]["email"] == user.email
    assert client.ready["channels"] == []
    assert user.username in client.ready["online"]
    assert client.history == {"type": "history", "reason": "connect", "messages": [], "has_more": False}


async def test_connect_history_holds_the_last_50_ascending(make_user, ws_connect):
    from messaging.services import message_send

    user = await database_sync_to_async(make_user)()
    for n in range(55):
        await database_sync_to_async(message_send)(user=user, channel_name=None, content=f"m{n}")
    client = await ws_connect(user)
    seqs = [m["seq"] for m in client.history["messages"]]
    assert seqs == list(range(6, 56))
    assert client.history["has_more"] is True


# --- messages -------------------------------------------------------------------


async def test_plain_text_frame_goes_to_the_lobby(make_user, ws_connect):
    alice, bob = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    a, b = await ws_connect(alice), await ws_connect(bob)
    await a.send("  hello there  ")
    got = await a.collect("ack", "message")
    ack = got["ack"]
    assert ack["client_id"] is None and ack["seq"] == 1
    for message in (got["message"]["message"], (await b.recv_type("message"))["message"]):
        assert message["content"] == "hello there"
        assert message["channel"] is None
        assert message["username"] == alice.username
        assert message["id"] == ack["id"]


@pytest.mark.parametrize("text", ["42", '"hi"', "{broken", "[1, 2]", "null"])
async def test_non_object_json_is_plain_text(make_user, ws_connect, text):
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    await client.send(text)
    assert (await client.collect("ack", "message"))["message"]["message"]["content"] == text


async def test_message_frame_acks_and_delivers_once(make_user, ws_connect):
    alice, bob = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    a, b = await ws_connect(alice), await ws_connect(bob)
    await a.send({"type": "message", "channel": None, "content": "hi", "client_id": "c-1"})
    ack = (await a.collect("ack", "message"))["ack"]
    assert ack == {"type": "ack", "client_id": "c-1", "id": ack["id"], "seq": 1, "rev": 1}
    assert (await b.recv_type("message"))["message"]["client_id"] == "c-1"
    # A resend is acknowledged with the first id and seq and never delivered again.
    await a.send({"type": "message", "channel": None, "content": "hi", "client_id": "c-1"})
    assert await a.recv_type("ack") == ack
    await b.nothing()
    await a.nothing()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"no": "type"}, "invalid_message"),
        ({"type": 5}, "invalid_message"),
        ({"type": "dance"}, "unknown_type"),
        ({"type": "message"}, "invalid_message"),
        ({"type": "message", "channel": None, "content": 7}, "invalid_message"),
        ({"type": "message", "content": "x", "channel": 3}, "invalid_message"),
        ({"type": "message", "channel": None, "content": "   "}, "content_empty"),
        ({"type": "message", "channel": None, "content": "😀" * 1001}, "content_too_long"),
        ({"type": "message", "content": "x", "channel": "nowhere"}, "channel_not_found"),
        ({"type": "message", "channel": None, "content": "a\u0000b"}, "invalid_message"),
        ({"type": "join"}, "invalid_message"),
        ({"type": "typing", "channel": "nowhere"}, "channel_not_found"),
        ({"type": "message", "content": "no channel key"}, "invalid_message"),
        ({"type": "typing"}, "invalid_message"),
        ({"type": "history"}, "invalid_message"),
        ({"type": "history", "channel": None, "limit": 0}, "invalid_message"),
        ({"type": "history", "channel": None, "before": "not-a-uuid"}, "invalid_message"),
        ({"type": "sync", "after": []}, "invalid_message"),
        ({"type": "sync", "after": {"": "1"}}, "invalid_message"),
    ],
)
async def test_refused_frames_get_error_and_socket_stays_open(make_user, ws_connect, frame, code):
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    await client.send({**frame, "client_id": "echo-me"} if frame.get("type") == "message" else frame)
    error = await client.recv_type("error")
    assert error["code"] == code
    if frame.get("type") == "message":
        assert error["client_id"] == "echo-me"
    await client.send({"type": "ping"})
    assert await client.recv_type("pong") == {"type": "pong"}


async def test_1000_code_points_accepted(make_user, ws_connect):
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    await client.send({"type": "message", "channel": None, "content": "😀" * 1000})
    assert len((await client.collect("ack", "message"))["message"]["message"]["content"]) == 1000


async def test_empty_and_binary_frames_get_invalid_message(make_user, ws_connect):
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    await client.communicator.send_to(bytes_data=b"\x00\x01")
    assert (await client.recv_type("error"))["code"] == "invalid_message"
    await client.communicator.send_input({"type": "websocket.receive", "text": ""})
    assert (await client.recv_type("error"))["code"] == "invalid_message"
    await client.send({"type": "ping"})
    await client.recv_type("pong")


async def test_deeply_nested_json_is_just_text(make_user, ws_connect):
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    await client.send("[" * 900)
    assert (await client.collect("ack", "message"))["message"]["message"]["content"] == "[" * 900


async def test_oversized_frame_closes_1009(make_user, ws_connect):
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    await client.send("x" * 65_537)
    assert await client.recv_type("__closed__") == {"type": "__closed__", "code": 1009}


async def test_rate_limit_refuses_without_storing(make_user, ws_connect, settings):
    from messaging.models import Message
    from messaging.ratelimit import reset_message_rate_limiter

    settings.CHAT_MESSAGE_BURST = 3
    settings.CHAT_MESSAGE_RATE = 0.01
    reset_message_rate_limiter()
    user = await database_sync_to_async(make_user)()
    client = await ws_connect(user)
    for n in range(3):
        await client.send({"type": "message", "channel": None, "content": f"m{n}"})
        await client.collect("ack", "message")
    await client.send({"type": "message", "channel": None, "content": "one too many", "client_id": "x"})
    error = await client.recv_type("error")
    assert error["code"] == "rate_limited" and error["retry_after"] > 0 and error["client_id"] == "x"
    assert await database_sync_to_async(Message.objects.count)() == 3


async def test_ping_pong(make_user, ws_connect):
    client = await ws_connect(await database_sync_to_async(make_user)())
    await client.send({"type": "ping"})
    assert await client.recv() == {"type": "pong"}


# --- sessions --------------------------------------------------------------------


async def test_logout_closes_that_sessions_sockets_4401(make_user, ws_connect):
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login_tokens)(user)
    doomed = await ws_connect(user, tokens["access"])
    survivor = await ws_connect(user)
    await database_sync_to_async(account_services.session_logout)(session=tokens["session"])
    assert await doomed.recv_type("__closed__") == {"type": "__closed__", "code": 4401}
    await survivor.send({"type": "ping"})
    await survivor.recv_type("pong")


async def test_deactivation_closes_every_socket_4403(make_user, ws_connect):
    user = await database_sync_to_async(make_user)()
    first, second = await ws_connect(user), await ws_connect(user)
    await database_sync_to_async(account_services.user_deactivate)(user=user)
    for client in (first, second):
        assert (await client.recv_type("__closed__"))["code"] == 4403


# --- presence ----------------------------------------------------------------------


async def test_presence_online_and_offline_with_last_seen(make_user, ws_connect):
    watcher_user, user = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    watcher = await ws_connect(watcher_user)
    client = await ws_connect(user)
    online = await watcher.recv()
    assert online == {
        "type": "presence",
        "username": user.username,
        "status": "online",
        "is_online": True,
        "last_seen": None,
    }
    second = await ws_connect(user)  # not the first connection: no event
    await watcher.nothing(ignore=())
    await second.close()
    await watcher.nothing(ignore=())
    await client.close()
    offline = await watcher.recv()
    assert offline["type"] == "presence" and offline["is_online"] is False
    assert offline["status"] == "offline" and offline["last_seen"].endswith("Z")


async def test_invisible_user_comes_and_goes_unseen(make_user, ws_connect):
    watcher_user, user = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await database_sync_to_async(account_presence.user_set_status)(user=user, status="offline")
    watcher = await ws_connect(watcher_user)
    client = await ws_connect(user)
    assert user.username not in client.ready["online"]
    await client.close()
    await watcher.nothing(ignore=())


async def test_status_change_through_rest_reaches_sockets(make_user, ws_connect, auth_client):
    watcher_user, user = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    watcher = await ws_connect(watcher_user)
    await ws_connect(user)
    await watcher.recv_type("presence")
    client = await database_sync_to_async(auth_client)(user)
    response = await database_sync_to_async(client.post)(
        "/api/users/me/status", {"status": "away"}, format="json"
    )
    assert response.status_code == 200
    away = await watcher.recv()
    assert (away["type"], away["status"], away["is_online"]) == ("presence", "away", True)


async def test_connect_history_follows_new_and_deleted_messages(make_user, ws_connect):
    """The history cache never serves a page older than the stream: a deletion shows as a tombstone."""
    from messaging.changes import message_delete
    from messaging.services import message_send

    user = await database_sync_to_async(make_user)()
    first = await database_sync_to_async(message_send)(user=user, channel_name=None, content="one")
    assert [m["content"] for m in (await ws_connect(user)).history["messages"]] == ["one"]
    await database_sync_to_async(message_send)(user=user, channel_name=None, content="two")
    assert [m["content"] for m in (await ws_connect(user)).history["messages"]] == ["one", "two"]
    await database_sync_to_async(message_delete)(user=user, message_id=str(first.message.id))
    history = (await ws_connect(user)).history["messages"]
    assert [(m["content"], m["deleted"]) for m in history] == [("", True), ("two", False)]


async def test_a_redis_outage_during_a_frame_is_an_unavailable_error(make_user, ws_connect, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from gateway import consumer as consumers

    async def refuse(group, event):
        raise RedisConnectionError("Redis is restarting")

    client = await ws_connect(await database_sync_to_async(make_user)())
    monkeypatch.setattr(consumers, "apublish", refuse)
    await client.send({"type": "typing", "channel": None})
    assert (await client.recv_type("error"))["code"] == "unavailable"
    await client.send({"type": "ping"})
    await client.recv_type("pong")


async def test_housekeeping_closes_sockets_whose_close_envelope_was_lost(make_user, ws_connect, settings):
    """An ended session or a deactivated user is noticed with no envelope (e.g. lost in a Redis outage)."""
    from django.utils import timezone

    from accounts.models import LoginSession, User

    settings.CHAT_HOUSEKEEPING_SECONDS = 0.2
    ended_user, inactive_user, fine_user = [await database_sync_to_async(make_user)() for _ in range(3)]
    ended_tokens = await database_sync_to_async(login_tokens)(ended_user)
    ended = await ws_connect(ended_user, ended_tokens["access"])
    inactive = await ws_connect(inactive_user)
    fine = await ws_connect(fine_user)
    # Written straight to the database: no service, so no close envelope.
    await database_sync_to_async(LoginSession.objects.filter(id=ended_tokens["session"].id).update)(
        ended_at=timezone.now()
    )
    await database_sync_to_async(User.objects.filter(id=inactive_user.id).update)(is_active=False)
    assert (await ended.recv_type("__closed__", timeout=5))["code"] == 4401
    assert (await inactive.recv_type("__closed__", timeout=5))["code"] == 4403
    await fine.send({"type": "ping"})
    await fine.recv_type("pong")
