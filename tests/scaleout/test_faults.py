"""Faults with two real server processes: a process killed, Redis restarted, PostgreSQL stopped.

Every outage is undone in a ``finally`` block, and nothing is restarted by
hand except the service the test itself stopped: the servers must recover on
their own. Counts come from PostgreSQL and from what each client holds.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter

import psycopg
import pytest
import requests
import websockets

from tests.e2e.wsclient import Socket
from tests.scaleout.chatclient import ChatClient
from tests.scaleout.helpers import (
    account,
    eventually,
    join,
    make_channel,
    online_usernames,
    pg_ready,
    pg_start,
    pg_stop,
    redis_start,
    redis_stop,
    rest,
)

pytestmark = [pytest.mark.services, pytest.mark.e2e]

# Short presence expiry and heartbeat, so dead processes' users go offline quickly.
FAST_PRESENCE = {"CHAT_PRESENCE_TTL": "3", "CHAT_HOUSEKEEPING_SECONDS": "1"}


def stored_rows(server) -> list[tuple[str, int, str, str | None]]:
    """Every message in PostgreSQL: (stream, seq, id, client_id); stream "" is the lobby."""
    with psycopg.connect(server.env["DATABASE_URL"]) as conn:
        rows = conn.execute(
            "SELECT c.name, m.seq, m.id::text, m.client_id FROM messaging_message m"
            " LEFT JOIN chatrooms_channel c ON c.id = m.channel_id ORDER BY c.name NULLS FIRST, m.seq"
        ).fetchall()
    return [
        (name or "", seq, message_id.replace("-", ""), client_id) for name, seq, message_id, client_id in rows
    ]


def by_stream(rows) -> dict[str, dict[int, str]]:
    streams: dict[str, dict[int, str]] = {}
    for stream, seq, message_id, _client_id in rows:
        streams.setdefault(stream, {})[seq] = message_id
    return streams


def normalised(client: ChatClient) -> dict[str, dict[int, str]]:
    return {
        stream: {seq: message_id.replace("-", "") for seq, message_id in seqs.items()}
        for stream, seqs in client.as_dict().items()
    }


async def test_kill_9_of_a_process_mid_traffic(cluster, redis_conn):
    a, b = cluster(2, **FAST_PRESENCE)
    senders_a = [ChatClient(await account(a, f"sa{n}"), name=f"sa{n}") for n in range(3)]
    sender_b = ChatClient(await account(b, "sb"), name="sb")
    listener_a = ChatClient(await account(a, "la"), name="la")
    listener_b = ChatClient(await account(b, "lb"), name="lb")
    lurker = await account(a, "lurker")  # on A only, never comes back
    everyone = [*senders_a, sender_b, listener_a, listener_b]
    room = await make_channel(b, sender_b.account)
    for client in everyone:
        if client is not sender_b:
            await join(b, client.account, room)
    for client in everyone:
        await client.connect(a if client in (*senders_a, listener_a) else b)
    lurking = await Socket.open(a.ws_base, lurker)
    assert lurker["username"] in await online_usernames(b, sender_b.account)

    per_sender = 60
    streams = [None, room]
    traffic = [
        asyncio.ensure_future(client.send_many(streams, per_sender, fallback=b))
        for client in (*senders_a, sender_b)
    ]
    # Kill A once a good part of its clients' traffic is acknowledged, with more in flight.
    await eventually(lambda: sum(len(c.acked) for c in senders_a) >= per_sender, timeout=60, step=0.01)
    a.stop(signal.SIGKILL)
    assert a.process.returncode == -signal.SIGKILL

    async def listener_failover():
        await listener_a.closed.wait()
        await listener_a.failover(b)

    await asyncio.wait_for(asyncio.gather(*traffic, listener_failover()), 120)
    assert all(client.connections >= 2 for client in (*senders_a, listener_a)), (
        "A's clients did not fail over"
    )
    # Some messages were in flight when A died, and were sent again through B.
    assert sum(client.resent for client in senders_a) > 0

    # Chat goes on after the failover: one last message per stream through B,
    # so that a message stored by A but never published is noticed as a gap.
    await sender_b.send_many(streams, 2, fallback=b)
    for client in everyone:
        assert client.errors == [], (client.name, client.errors[:3])

    rows = stored_rows(b)
    # Every acknowledged message is stored exactly once, under the id and seq its ack gave.
    client_ids = Counter(client_id for _s, _q, _i, client_id in rows if client_id)
    assert [cid for cid, count in client_ids.items() if count > 1] == []
    stored = {client_id: (message_id, seq) for _s, seq, message_id, client_id in rows if client_id}
    for client in (*senders_a, sender_b):
        assert client.unacked() == []
        for client_id, (message_id, seq) in client.acked.items():
            assert stored[client_id] == (message_id.replace("-", ""), seq), client_id
    total_sent = sum(len(client.sent) for client in (*senders_a, sender_b))
    assert len(client_ids) == total_sent == 4 * per_sender + 2
    # Seqs stay gapless per stream across the crash.
    expected = by_stream(rows)
    for stream, seqs in expected.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), stream

    # Every subscriber ends up with every message exactly once, in seq order on each connection.
    for client in everyone:
        await eventually(lambda client=client: normalised(client) == expected, timeout=30)
        assert client.conflicts == [], client.conflicts[:3]
        assert client.live_problems() == [], client.live_problems()[:3]
    # B's listener never disconnected: it got every message live, once each, in order.
    assert listener_b.connections == 1
    for stream, seqs in expected.items():
        assert listener_b.live[0][stream] == sorted(seqs), stream

    # A's users go offline through B's sweep; those who moved to B stay online, counted once.
    watcher = sender_b.account
    await eventually(lambda: _offline(b, watcher, lurker["username"]), timeout=60)
    online = await online_usernames(b, watcher)
    assert {client.account["username"] for client in everyone} <= online
    for client in (*senders_a, listener_a):
        user_id = (await rest("GET", f"{b.base_url}/api/users/me", client.account)).json()["id"]
        key = f"chat:presence:u:{user_id.replace('-', '')}"
        await eventually(lambda key=key: redis_conn.zcard(key) == 1, timeout=30)
    await lurking.close()
    for client in everyone:
        await client.close()


async def _offline(server, viewer: dict, username: str) -> bool:
    return username not in await online_usernames(server, viewer)


async def _next_frame(socket: Socket, kinds: tuple[str, ...], timeout: float = 15) -> dict:
    while True:
        frame = await socket.recv(timeout)
        if frame["type"] in kinds:
            return frame


async def _reply_to(socket: Socket, client_id: str, timeout: float = 15) -> dict:
    """The ``ack`` or ``error`` frame answering the message sent with ``client_id``."""
    while True:
        frame = await _next_frame(socket, ("ack", "error"), timeout)
        if frame.get("client_id") == client_id:
            return frame


@pytest.mark.parametrize("layer", ["pubsub", "core"])
async def test_redis_restart_mid_run_delivery_and_presence_resume_without_restarting_servers(
    cluster, redis_conn, layer
):
    a, b = cluster(2, CHAT_CHANNEL_LAYER=layer, **FAST_PRESENCE)
    alice, bob = await account(a, "alice"), await account(b, "bob")
    on_a, on_b = await Socket.open(a.ws_base, alice), await Socket.open(b.ws_base, bob)
    await on_a.send({"type": "message", "channel": None, "content": "before", "client_id": "m0"})
    assert [m["content"] for m in await on_b.messages(1)] == ["before"]
    bob_seqs = [1]

    try:
        redis_stop()
        # While Redis is away a send is still stored and acknowledged (the
        # database is the source of truth; the message rate limit counts in
        # the process meanwhile), and the socket stays open.
        await on_a.send({"type": "message", "channel": None, "content": "during", "client_id": "m1"})
        frame = await _reply_to(on_a, "m1")
        assert frame["type"] == "ack", frame
        await on_a.send({"type": "ping"})
        await _next_frame(on_a, ("pong",))
        # Login's rate limit counts in the process meanwhile; its answer shows
        # presence, which lives in Redis: 200 or an honest 503, never a 500.
        response = await rest(
            "POST",
            f"{a.base_url}/api/auth/login",
            json={"username": alice["username"], "password": "correct-Horse-battery-9"},
        )
        assert response.status_code in (200, 503), response.text
        assert response.json(), response.text
        # Presence lives in Redis: an honest 503, never a 500.
        response = await rest("GET", f"{b.base_url}/api/users/online", bob)
        assert response.status_code == 503 and response.json()["detail"], response.text
        response = await rest("GET", f"{a.base_url}/api/ready")
        assert response.status_code == 503 and response.json()["redis"] == "unavailable", response.text
        # A new connection cannot be counted: 1013 (try again), never 1011.
        try:
            async with websockets.connect(
                f"{b.ws_base}/api/ws/{bob['username']}?token={bob['access']}"
            ) as refused:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(refused.recv(), 15)
            assert closed.value.rcvd.code == 1013
        except websockets.InvalidStatus as status:  # refused before the handshake is also fine
            assert status.response.status_code == 503
    finally:
        redis_start()

    for server in (a, b):
        await eventually(
            lambda server=server: requests.get(f"{server.base_url}/api/ready", timeout=5).status_code == 200
        )
    # Delivery across processes resumes without restarting either server:
    # keep chatting until B's socket hears A's messages live again.
    n = 1

    async def delivered_again() -> bool:
        nonlocal n
        n += 1
        await on_a.send({"type": "message", "channel": None, "content": f"after {n}", "client_id": f"m{n}"})
        try:
            frame = await _next_frame(on_b, ("message",), timeout=1)
        except TimeoutError:
            return False
        bob_seqs.append(frame["message"]["seq"])
        return True

    await eventually(delivered_again, timeout=60, step=0.5)
    await eventually(lambda: len(stored_rows(a)) == n + 1, timeout=15)  # every send so far is stored
    total = n + 1 + 5
    for k in range(5):
        await on_a.send({"type": "message", "channel": None, "content": f"more {k}", "client_id": f"x{k}"})
    await eventually(lambda: len(stored_rows(a)) == total, timeout=15)
    while bob_seqs[-1] < total:
        bob_seqs.append((await _next_frame(on_b, ("message",)))["message"]["seq"])
    # Whatever the layer dropped meanwhile was filled from the database: every message once, in order.
    assert bob_seqs == list(range(1, total + 1))

    # Presence comes back by heartbeat, counted once per open connection.
    await eventually(lambda: _online(b, bob, {alice["username"], bob["username"]}), timeout=30)
    for user in (alice, bob):
        user_id = (await rest("GET", f"{a.base_url}/api/users/me", user)).json()["id"].replace("-", "")
        await eventually(
            lambda user_id=user_id: redis_conn.zcard(f"chat:presence:u:{user_id}") == 1, timeout=30
        )
    # And leaves exactly: closing the one socket takes the user offline.
    await on_b.close()
    await eventually(lambda: _offline(a, alice, bob["username"]), timeout=30)
    # The message rate limit is back in Redis, shared by both processes.
    await on_a.close()


async def _online(server, viewer: dict, usernames: set[str]) -> bool:
    return usernames <= await online_usernames(server, viewer)


async def test_postgresql_stopped_then_started_503s_and_error_frames_then_full_service(cluster):
    # A short pool timeout, so each request made while the database is away answers quickly.
    a, b = cluster(2, CHAT_DB_POOL_TIMEOUT="2")
    alice, bob = await account(a, "alice"), await account(b, "bob")
    on_a, on_b = await Socket.open(a.ws_base, alice), await Socket.open(b.ws_base, bob)
    await on_a.send({"type": "message", "channel": None, "content": "before", "client_id": "p0"})
    assert [m["content"] for m in await on_b.messages(1)] == ["before"]

    try:
        pg_stop()
        # REST: 503 with a reason, for the authentication step and for login alike.
        response = await rest("GET", f"{a.base_url}/api/users/me", alice)
        assert response.status_code == 503 and response.json()["detail"], response.text
        response = await rest("GET", f"{b.base_url}/api/messages", bob)
        assert response.status_code == 503 and response.json()["detail"], response.text
        response = await rest(
            "POST",
            f"{b.base_url}/api/auth/login",
            json={"username": bob["username"], "password": "correct-Horse-battery-9"},
        )
        assert response.status_code == 503 and response.json()["detail"], response.text
        response = await rest("GET", f"{a.base_url}/api/ready")
        assert response.status_code == 503, response.text
        assert (response.json()["database"], response.json()["redis"]) == ("unavailable", "ok")
        assert (await rest("GET", f"{a.base_url}/api/health")).status_code == 200
        # WebSocket: a send gets an error frame, and the socket stays open and usable.
        await on_a.send({"type": "message", "channel": None, "content": "during", "client_id": "p1"})
        frame = await _reply_to(on_a, "p1")
        assert (frame["type"], frame.get("code"), frame["client_id"]) == ("error", "unavailable", "p1"), frame
        await on_a.send({"type": "ping"})
        await _next_frame(on_a, ("pong",))
        # A new socket cannot authenticate: 1013 (try again), never 1011.
        async with websockets.connect(f"{b.ws_base}/api/ws/{bob['username']}?token={bob['access']}") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 15)
        assert closed.value.rcvd.code == 1013
    finally:
        pg_start()
    assert pg_ready()

    # Full service comes back by itself: readiness, REST, and the same sockets.
    for server in (a, b):
        await eventually(
            lambda server=server: requests.get(f"{server.base_url}/api/ready", timeout=5).status_code == 200,
            timeout=60,
        )
    response = await rest("GET", f"{a.base_url}/api/users/me", alice)
    assert response.status_code == 200, response.text
    await on_a.send({"type": "message", "channel": None, "content": "during", "client_id": "p1"})
    ack = await _reply_to(on_a, "p1")
    assert (ack["type"], ack["client_id"], ack["seq"]) == ("ack", "p1", 2)
    assert [(m["content"], m["seq"]) for m in await on_b.messages(1)] == [("during", 2)]
    again = await Socket.open(b.ws_base, bob)
    assert [m["content"] for m in again.history["messages"]] == ["before", "during"]
    for socket in (on_a, on_b, again):
        await socket.close()
