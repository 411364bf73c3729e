"""The handshake's cost and its state: queries per connect, ``online`` from the presence store, and a
socket's delivery structures made only when needed.

Runs on SQLite and, in the PostgreSQL pass (``bin/test``), on PostgreSQL.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import presence as account_presence
from chatrooms import services as channel_services
from messaging.selectors import reset_recent_cache
from messaging.services import message_send
from realtime.hub import get_hub
from realtime.presence_store import get_presence_store
from tests.gateway.conftest import Client, open_socket

db = database_sync_to_async


async def captured_connect(ws_connect, user, *, cold: bool) -> tuple[Client, list[str]]:
    """Connect ``user`` and return the SQL run from the handshake to the connect ``history``.

    The capture is entered in the database thread, where every step of the
    handshake runs (``database_sync_to_async`` shares one thread).
    """
    from tests.conftest import login_tokens

    token = (await db(login_tokens)(user))["access"]
    if cold:
        reset_recent_cache()
    capture = CaptureQueriesContext(connection)
    await db(capture.__enter__)()
    try:
        client = await ws_connect(user, token)
    finally:
        await db(capture.__exit__)(None, None, None)
    return client, await db(lambda: [query["sql"] for query in capture.captured_queries])()


@pytest.mark.django_db(transaction=True)
async def test_a_warm_connect_costs_three_queries_in_two_trips(make_user, ws_connect, monkeypatch):
    """The session with its user, the channels, the read states with positions; history from the cache.

    It was four queries and three trips to the database thread (the session,
    the channels, the read states, then every online user's name).
    """
    from core import database_thread

    user = await db(make_user)()
    for n in range(3):
        await db(channel_services.channel_create)(user=user, name=f"room{n}")
        await db(message_send)(user=user, channel_name=f"room{n}", content=f"hello {n}")
    await db(message_send)(user=user, channel_name=None, content="lobby")
    first, cold = await captured_connect(ws_connect, user, cold=True)
    assert len(first.history["messages"]) == 4

    trips: list[str] = []
    real_db = database_thread.db

    def counting_db(function):
        trips.append(function.__name__)
        return real_db(function)

    monkeypatch.setattr("gateway.consumer.db", counting_db)
    second, warm = await captured_connect(ws_connect, user, cold=False)
    assert second.history == first.history
    assert trips == ["handshake_open", "initial_state"]
    assert len(warm) == 3, warm
    session, channels, states = warm
    assert "accounts_loginsession" in session and "accounts_user" in session
    assert "chatrooms_membership" in channels and "chatrooms_channel" in channels
    assert "last_read_seq" in states
    assert not any("status" in sql and "IN (" in sql for sql in warm)  # no scan of online users
    # Cold: the same three, then the history: the lobby, the channels in one query, reactions, mentions.
    assert len(cold) == 7, cold


@pytest.mark.django_db(transaction=True)
async def test_ready_online_comes_from_the_presence_store(make_user, ws_connect):
    """Visible users are listed, invisible ones never; a user who leaves is gone from the next ready."""
    ada, bob, cy = [await db(make_user)(name) for name in ("ada", "Bob", "cy")]
    await db(account_presence.user_set_status)(user=cy, status="offline")
    a = await ws_connect(ada)
    assert a.ready["online"] == ["ada"]
    b = await ws_connect(bob)
    c = await ws_connect(cy)
    assert b.ready["online"] == ["ada", "Bob"]
    assert c.ready["online"] == ["ada", "Bob"]  # cy is invisible, even to cy's own list
    assert c.ready["user"]["status"] == "offline"  # ... and sees their own choice

    # Visible again: listed; invisible: gone, though still connected.
    await db(account_presence.user_set_status)(user=cy, status="away")
    assert (await ws_connect(ada)).ready["online"] == ["ada", "Bob", "cy"]
    await db(account_presence.user_set_status)(user=bob, status="offline")
    assert (await ws_connect(ada)).ready["online"] == ["ada", "cy"]

    # Leaving: cy's only socket closes; ada's other sockets keep ada listed.
    await c.close()
    assert (await ws_connect(bob)).ready["online"] == ["ada"]
    await a.close()
    assert (await ws_connect(cy)).ready["online"] == ["ada", "cy"]
    assert get_presence_store().online_names() == ("ada", "cy")


@pytest.mark.django_db(transaction=True)
async def test_a_status_change_racing_a_handshake_is_never_shown_stale(make_user, ws_connect, monkeypatch):
    """The status read by the handshake goes stale before its connection is counted: it reads again."""
    from gateway import database

    ada = await db(make_user)("ada")
    real_open = account_presence.connection_opened

    def opened_after_a_change(**kwargs):
        # Between the handshake's read of ada's status (online) and its count: ada goes invisible.
        account_presence.user_set_status(user=type(kwargs["user"]).objects.get(id=ada.id), status="offline")
        return real_open(**kwargs)

    monkeypatch.setattr(database.presence, "connection_opened", opened_after_a_change)
    client = await ws_connect(ada)
    assert client.ready["online"] == []
    assert client.ready["user"]["status"] == "offline"
    assert get_presence_store().online_names() == ()


@pytest.mark.django_db(transaction=True)
async def test_an_idle_socket_makes_its_inbox_only_when_an_envelope_must_wait(make_user, ws_connect):
    """A socket that never receives anything holds no inbox; one that must queue gets one, delivers
    in order, and drops it once drained."""
    listener_user, sender = await db(make_user)(), await db(make_user)()
    listener = await ws_connect(listener_user)
    hub = await get_hub()
    (socket,) = [s for s in hub.subscribers() if s.user.id == listener_user.id]
    assert socket.inbox is None and socket.pump is None
    assert not hasattr(socket, "__dict__")  # slots only

    socket.live = False  # hold delivery back, as a socket in the middle of its handshake does
    for n in range(3):
        await db(message_send)(user=sender, channel_name=None, content=f"m{n}")
    for _ in range(100):
        if socket.inbox is not None and len(socket.inbox) == 3:
            break
        await asyncio.sleep(0.01)
    assert len(socket.inbox) == 3
    socket.live = True
    socket.start_pump()
    assert [(await listener.recv_type("message"))["message"]["content"] for _ in range(3)] == [
        "m0",
        "m1",
        "m2",
    ]
    for _ in range(100):
        if socket.pump is None:
            break
        await asyncio.sleep(0.01)
    assert socket.inbox is None
    await db(message_send)(user=sender, channel_name=None, content="inline")  # the fast path again
    assert (await listener.recv_type("message"))["message"]["content"] == "inline"
    assert socket.inbox is None


@pytest.mark.django_db(transaction=True)
async def test_a_refused_handshake_keeps_nothing(make_user):
    """4401 and 4403 close before anything is counted or joined."""
    from tests.conftest import login_tokens

    ada = await db(make_user)("ada")
    token = (await db(login_tokens)(ada))["access"]
    for username, token_given, code in [("ada", "nope", 4401), ("bob", token, 4403)]:
        communicator = await open_socket(username, token_given)
        closed = await communicator.receive_output(3)
        assert (closed["type"], closed.get("code")) == ("websocket.close", code)
    assert get_presence_store().all_connected() == set()
    assert (await get_hub()).members == {}


@pytest.mark.parametrize(
    "query",
    [
        b"token=a.b-c_d",
        b"token=",
        b"",
        b"other=1&token=x",
        b"token=x&token=y",
        b"token=a%2Eb",
        b"token=a+b",
        b"token=a=b",
        b"token=x;y",
        b"tokens=x",
        "token=\u00e9".encode("latin-1"),
    ],
)
def test_the_token_is_read_from_the_query_as_parse_qs_reads_it(query):
    from urllib.parse import parse_qs

    from gateway.consumer import _query_token

    expected = parse_qs(query.decode("latin-1")).get("token", [None])[0]
    assert _query_token({"query_string": query}) == expected


@pytest.mark.django_db(transaction=True)
async def test_closing_costs_a_trip_to_the_database_only_for_a_visible_users_last_socket(
    make_user, ws_connect
):
    """The presence store knows whether others saw the user: an invisible user's going, or a socket
    that was not the user's last, needs no database."""
    from tests.conftest import login_tokens

    ada, cy = await db(make_user)("ada"), await db(make_user)("cy")
    await db(account_presence.user_set_status)(user=cy, status="offline")
    sockets = {}
    for user in (ada, ada, cy):
        token = (await db(login_tokens)(user))["access"]
        sockets.setdefault(user.username, []).append(await ws_connect(user, token))

    async def queries_of_closing(client) -> list[str]:
        """The SQL run while ``client`` closes (its close returns once the socket's app has ended)."""
        capture = CaptureQueriesContext(connection)
        await db(capture.__enter__)()
        try:
            await client.close()
        finally:
            await db(capture.__exit__)(None, None, None)
        # ``connection`` is per thread: read the log in the database thread too.
        return await db(lambda: [query["sql"] for query in capture.captured_queries])()

    assert await queries_of_closing(sockets["cy"][0]) == []  # invisible
    assert await queries_of_closing(sockets["ada"][0]) == []  # ada has another socket
    last = await queries_of_closing(sockets["ada"][1])
    assert any("last_seen" in sql for sql in last), last  # others saw ada go: recorded and told


def test_the_servers_copies_of_the_handshake_headers_are_let_go_once_it_is_over():
    """uvicorn's sansio protocol keeps the request, the response and the scope's headers for the
    socket's whole life; after the handshake they are dropped (and nothing else)."""
    from uvicorn.config import Config
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState

    from gateway.wire import handshake_forgotten

    async def app(scope, receive, send):  # pragma: no cover - never called
        pass

    loop = asyncio.new_event_loop()
    try:
        protocol = WebSocketsSansIOProtocol(
            config=Config(app=app, ws="websockets-sansio", lifespan="off"),
            server_state=ServerState(),
            app_state={},
            _loop=loop,
        )
        protocol.request, protocol.response = object(), object()
        protocol.scope = {"type": "websocket", "path": "/api/ws/ada", "headers": [(b"host", b"x")]}
        handshake_forgotten(protocol.send)  # not over yet: kept
        assert protocol.request is not None and protocol.scope["headers"]
        protocol.handshake_complete = True
        handshake_forgotten(protocol.send)
        assert (protocol.request, protocol.response) == (None, None)
        assert protocol.scope == {"type": "websocket", "path": "/api/ws/ada", "headers": []}
    finally:
        loop.close()

    async def other_server_send(message):  # pragma: no cover - never called
        pass

    handshake_forgotten(other_server_send)  # anything else: left alone


@pytest.mark.django_db(transaction=True)
async def test_a_database_step_runs_where_database_sync_to_async_runs_it():
    """``db`` takes the shared sync thread, or asgiref's own choice inside a thread-sensitive context."""
    import threading

    from asgiref.sync import ThreadSensitiveContext

    from core.database_thread import db as step

    shared = await database_sync_to_async(threading.get_ident)()
    assert await step(threading.get_ident)() == shared != threading.get_ident()
    async with ThreadSensitiveContext():
        inside = await database_sync_to_async(threading.get_ident)()
        assert await step(threading.get_ident)() == inside != shared

    def fails():
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await step(fails)()
