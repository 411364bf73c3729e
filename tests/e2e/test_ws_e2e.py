"""The WebSocket contract against a real server process, through a real client library."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid

import pytest
import requests
import websockets

from tests.e2e.wsclient import Socket, bearer, register_and_login
from tests.servers import ServerProcess, free_port, running_server, server_database

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(live_server_proc):
    return live_server_proc


def make_channel(server, owner: dict, name: str | None = None) -> str:
    name = name or f"c{uuid.uuid4().hex[:12]}"
    response = requests.post(
        f"{server.base_url}/api/channels/", json={"name": name}, headers=bearer(owner), timeout=10
    )
    assert response.status_code == 201, response.text
    return name


def join(server, account: dict, name: str) -> None:
    response = requests.post(
        f"{server.base_url}/api/channels/{name}/join", headers=bearer(account), timeout=10
    )
    assert response.status_code == 200, response.text


async def test_several_users_chat_in_the_lobby(server):
    accounts = [register_and_login(server.base_url) for _ in range(3)]
    sockets = [await Socket.open(server.ws_base, account) for account in accounts]
    for n, socket in enumerate(sockets):
        await socket.send({"type": "message", "channel": None, "content": f"hello {n}", "client_id": f"k{n}"})
    for socket in sockets:
        messages = await socket.messages(3)
        assert sorted(m["content"] for m in messages) == ["hello 0", "hello 1", "hello 2"]
        seqs = [m["seq"] for m in messages]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
    for socket in sockets:
        await socket.close()


async def test_concurrent_senders_every_subscriber_gets_every_message_once_in_order(server):
    senders = [register_and_login(server.base_url) for _ in range(4)]
    listeners = [register_and_login(server.base_url) for _ in range(3)]
    name = make_channel(server, senders[0])
    for account in senders[1:] + listeners:
        join(server, account, name)
    listening = [await Socket.open(server.ws_base, account) for account in listeners]
    sending = [await Socket.open(server.ws_base, account) for account in senders]
    per_sender = 25

    async def send_all(socket: Socket, who: int) -> None:
        for n in range(per_sender):
            await socket.send(
                {"type": "message", "channel": name, "content": f"{who}:{n}", "client_id": f"{who}-{n}"}
            )

    await asyncio.gather(*(send_all(socket, who) for who, socket in enumerate(sending)))
    total = per_sender * len(senders)
    for socket in listening + sending:
        seqs = [m["seq"] for m in await socket.messages(total, timeout=15) if m["channel"] == name]
        assert seqs == list(range(1, total + 1))
        assert await socket.quiet(0.2, kinds=("message",)) == []
    for socket in listening + sending:
        await socket.close()


async def test_a_non_member_receives_nothing_from_a_channel(server):
    owner, outsider = register_and_login(server.base_url), register_and_login(server.base_url)
    name = make_channel(server, owner)
    owner_socket = await Socket.open(server.ws_base, owner)
    outsider_socket = await Socket.open(server.ws_base, outsider)
    await owner_socket.send({"type": "typing", "channel": name})
    await owner_socket.send({"type": "message", "channel": name, "content": "members only"})
    await owner_socket.recv_type("ack")
    assert await outsider_socket.quiet(1.0, kinds=("message", "typing", "member_joined")) == []
    await outsider_socket.send({"type": "message", "channel": name, "content": "let me in"})
    assert (await outsider_socket.recv_type("error"))["code"] == "not_a_member"
    await owner_socket.close()
    await outsider_socket.close()


async def test_rest_join_reaches_an_open_socket_and_starts_delivery(server):
    owner, joiner = register_and_login(server.base_url), register_and_login(server.base_url)
    name = make_channel(server, owner)
    socket = await Socket.open(server.ws_base, joiner)
    join(server, joiner, name)
    assert await socket.recv_type("subscribed") == {"type": "subscribed", "channel": name}
    response = requests.post(
        f"{server.base_url}/api/messages",
        json={"channel": name, "content": "welcome"},
        headers=bearer(owner),
        timeout=10,
    )
    assert response.status_code == 201
    message = (await socket.recv_type("message"))["message"]
    assert (message["channel"], message["content"]) == (name, "welcome")
    await socket.close()


async def test_sync_after_a_disconnect_returns_exactly_the_missed_messages(server):
    reader, writer = register_and_login(server.base_url), register_and_login(server.base_url)
    name = make_channel(server, writer)
    join(server, reader, name)
    socket = await Socket.open(server.ws_base, reader)
    writing = await Socket.open(server.ws_base, writer)
    await writing.send({"type": "message", "channel": name, "content": "before"})
    last_seen = (await socket.messages(1))[0]["seq"]
    await socket.close()
    for n in range(5):
        await writing.send({"type": "message", "channel": name, "content": f"missed {n}"})
        await writing.recv_type("ack")
    socket = await Socket.open(server.ws_base, reader)
    await socket.send({"type": "sync", "after": {name.upper(): last_seen}})
    frame = await socket.recv_type("history")
    assert (frame["reason"], frame["channel"], frame["has_more"]) == ("sync", name, False)
    assert [m["content"] for m in frame["messages"]] == [f"missed {n}" for n in range(5)]
    assert await socket.recv_type("synced") == {"type": "synced"}
    await socket.close()
    await writing.close()


async def test_logout_closes_the_sessions_socket_with_4401(server):
    account = register_and_login(server.base_url)
    socket = await Socket.open(server.ws_base, account)
    response = requests.post(f"{server.base_url}/api/auth/logout", headers=bearer(account), timeout=10)
    assert response.status_code == 204
    assert await socket.close_code(timeout=1.0) == 4401


async def test_oversized_frame_is_closed_with_1009(server):
    socket = await Socket.open(server.ws_base, register_and_login(server.base_url))
    await socket.send("x" * 65_537)
    assert await socket.close_code() == 1009


async def test_frame_of_exactly_the_limit_is_served(server):
    socket = await Socket.open(server.ws_base, register_and_login(server.base_url))
    await socket.send(json.dumps({"type": "message", "channel": None, "content": "x" * 1001}).ljust(65_536))
    assert (await socket.recv_type("error"))["code"] == "content_too_long"
    await socket.close()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(None, True), ("null", False), ("http://evil.example", False), ("SAME", True)],
)
async def test_origin_policy(server, origin, allowed):
    account = register_and_login(server.base_url)
    url = f"{server.ws_base}/api/ws/{account['username']}?token={account['access']}"
    if origin == "SAME":
        origin = server.base_url
    try:
        ws = await websockets.connect(url, origin=origin)
    except websockets.InvalidStatus as refused:
        assert not allowed
        assert refused.response.status_code == 403
        return
    assert allowed
    assert json.loads(await ws.recv())["type"] == "ready"
    await ws.close()


async def test_shutdown_closes_sockets_with_1001(tmp_path):
    with running_server(tmp_path) as server:
        socket = await Socket.open(server.ws_base, register_and_login(server.base_url))
        server.process.send_signal(signal.SIGTERM)
        assert await socket.close_code() == 1001


async def test_a_vanished_peer_is_closed_and_goes_offline(tmp_path):
    """A peer that stops answering pings is dropped and its user announced offline."""
    import base64
    import os
    import socket as sockets

    database = server_database(tmp_path, {"CHAT_WS_PING_INTERVAL": "1", "CHAT_WS_PING_TIMEOUT": "1"})
    server = ServerProcess(port=free_port(), env=database.env, log_path=tmp_path / "server.log")
    server.start()
    try:
        watcher = await Socket.open(server.ws_base, register_and_login(server.base_url))
        ghost = register_and_login(server.base_url)
        raw = sockets.create_connection(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            (
                f"GET /api/ws/{ghost['username']}?token={ghost['access']} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert b"101" in raw.recv(1024)
        online = await watcher.recv_type("presence")
        assert (online["username"], online["is_online"]) == (ghost["username"], True)
        # The ghost never reads or answers a ping again.
        offline = await watcher.recv_type("presence", timeout=15)
        assert (offline["username"], offline["is_online"]) == (ghost["username"], False)
        raw.close()
        await watcher.close()
    finally:
        server.stop()
        for step in database.cleanup:
            step()


async def test_edits_reactions_and_deletions_reach_a_real_client_and_sync_replays_them(server):
    author, reader = register_and_login(server.base_url), register_and_login(server.base_url)
    name = make_channel(server, author)
    join(server, reader, name)
    writer, watcher = await Socket.open(server.ws_base, author), await Socket.open(server.ws_base, reader)
    await writer.send({"type": "message", "channel": name, "content": "helo", "client_id": "m1"})
    ack = await writer.recv_type("ack")
    await watcher.recv_type("message")
    await writer.send({"type": "edit", "id": ack["id"], "content": "hello", "client_id": "e1"})
    assert (await writer.recv_type("ack"))["rev"] == 2
    patched = requests.post(
        f"{server.base_url}/api/messages/{ack['id']}/reactions",
        json={"emoji": "🎉"},
        headers=bearer(reader),
        timeout=10,
    )
    assert patched.status_code == 200 and patched.json()["rev"] == 3
    await writer.send({"type": "delete", "id": ack["id"], "client_id": "d1"})
    changes = [await watcher.recv_type("message_updated") for _ in range(3)]
    assert [(c["change"], c["message"]["rev"]) for c in changes] == [
        ("edited", 2),
        ("reactions", 3),
        ("deleted", 4),
    ]
    await watcher.send({"type": "sync", "after": {name: 1}})
    replay = await watcher.recv_type("history")
    assert [(m["rev"], m["deleted"], m["content"]) for m in replay["messages"]] == [(4, True, "")]
    await watcher.recv_type("synced")
    for socket in (writer, watcher):
        await socket.close()
