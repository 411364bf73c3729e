"""Two real server processes, A and B, on one PostgreSQL database and one Redis.

Every scenario has clients on both processes: what one process's client does
must reach the other's exactly as the contract says, and limits hold for A
and B together. "Receives nothing" is checked by waiting for it.
"""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.e2e.wsclient import Socket
from tests.scaleout.helpers import account, eventually, join, make_channel, online_usernames, rest

pytestmark = [pytest.mark.services, pytest.mark.e2e]


async def refused_with(server, user: dict) -> int | None:
    """Open a socket that the server is expected to close at once; return the close code."""
    async with websockets.connect(f"{server.ws_base}/api/ws/{user['username']}?token={user['access']}") as ws:
        try:
            frame = await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"the socket was served: {frame[:200]}")


async def test_lobby_and_channel_messages_cross_processes_and_only_reach_members(cluster):
    a, b = cluster(2)
    alice, bob = await account(a, "alice"), await account(b, "bob")
    outsider_a, outsider_b = await account(a, "outa"), await account(b, "outb")
    room = await make_channel(a, alice)
    await join(b, bob, room)
    alice_ws = await Socket.open(a.ws_base, alice)
    bob_ws = await Socket.open(b.ws_base, bob)
    out_a = await Socket.open(a.ws_base, outsider_a)
    out_b = await Socket.open(b.ws_base, outsider_b)
    everyone = (alice_ws, bob_ws, out_a, out_b)

    # The lobby: a message sent through either process reaches every connection on both.
    await alice_ws.send({"type": "message", "channel": None, "content": "hello from A", "client_id": "l1"})
    await bob_ws.send({"type": "message", "channel": None, "content": "hello from B", "client_id": "l2"})
    for socket in everyone:
        got = await socket.messages(2)
        assert sorted(m["content"] for m in got) == ["hello from A", "hello from B"]
        assert [m["seq"] for m in got] == [1, 2]

    # A channel: members on both processes get both messages in seq order, the sender's own included.
    await bob_ws.send({"type": "message", "channel": room, "content": "room via B", "client_id": "r1"})
    for socket in (alice_ws, bob_ws):
        [got] = await socket.messages(1)
        assert (got["channel"], got["seq"], got["content"], got["username"]) == (
            room,
            1,
            "room via B",
            bob["username"],
        )
    await alice_ws.send({"type": "message", "channel": room, "content": "room via A", "client_id": "r2"})
    for socket in (alice_ws, bob_ws):
        [got] = await socket.messages(1)
        assert (got["channel"], got["seq"], got["content"]) == (room, 2, "room via A")
    # Typing crosses processes too, to members other than the typist.
    await alice_ws.send({"type": "typing", "channel": room})
    typing = await bob_ws.recv_type("typing")
    assert typing == {"type": "typing", "channel": room, "username": alice["username"]}

    # Non-members on either process receive none of the channel's messages or typing.
    for socket in (out_a, out_b):
        assert await socket.quiet(1.5) == []
    for socket in everyone:
        await socket.close()


async def test_presence_crosses_processes(cluster):
    a, b = cluster(2)
    watcher, walker = await account(b, "watch"), await account(a, "walk")
    watching = await Socket.open(b.ws_base, watcher)

    walking = await Socket.open(a.ws_base, walker)
    event = await watching.recv_type("presence")
    assert (event["username"], event["is_online"], event["status"]) == (walker["username"], True, "online")
    assert walker["username"] in await online_usernames(b, watcher)
    # The watcher's ready frame on B lists a user connected only to A.
    late = await Socket.open(b.ws_base, watcher)
    assert walker["username"] in late.ready["online"]
    await late.close()

    # A status change made through B reaches the watcher on B.
    response = await rest("POST", f"{b.base_url}/api/users/me/status", walker, json={"status": "away"})
    assert response.status_code == 200, response.text
    event = await watching.recv_type("presence")
    assert (event["username"], event["status"]) == (walker["username"], "away")

    await walking.close()
    event = await watching.recv_type("presence")
    assert (event["username"], event["is_online"], event["status"]) == (walker["username"], False, "offline")
    assert event["last_seen"] is not None
    assert walker["username"] not in await online_usernames(b, watcher)
    await watching.close()


async def test_logout_through_a_closes_that_sessions_socket_on_b_with_4401(cluster):
    a, b = cluster(2)
    user = await account(a, "leaver")
    # A second session of the same user, which logout must not end.
    response = await rest(
        "POST",
        f"{b.base_url}/api/auth/login",
        json={"username": user["username"], "password": "correct-Horse-battery-9"},
    )
    assert response.status_code == 200, response.text
    other = {"username": user["username"], **response.json()}
    on_b = await Socket.open(b.ws_base, user)
    other_on_b = await Socket.open(b.ws_base, other)

    response = await rest("POST", f"{a.base_url}/api/auth/logout", user)
    assert response.status_code == 204, response.text
    assert await on_b.close_code(timeout=5) == 4401
    # The other session's socket is untouched and still served.
    await other_on_b.send({"type": "ping"})
    assert (await other_on_b.recv_type("pong"))["type"] == "pong"
    # The ended session's token no longer opens a socket on either process.
    for server in (a, b):
        assert await refused_with(server, user) == 4401
    response = await rest("GET", f"{b.base_url}/api/users/me", user)
    assert response.status_code == 401
    await other_on_b.close()


async def test_rest_join_through_a_subscribes_the_users_socket_on_b_and_starts_delivery(cluster):
    a, b = cluster(2)
    owner, joiner = await account(a, "owner"), await account(b, "joiner")
    room = await make_channel(a, owner)
    joiner_ws = await Socket.open(b.ws_base, joiner)
    owner_ws = await Socket.open(a.ws_base, owner)
    assert room not in joiner_ws.ready["channels"]

    # Before joining, the channel's messages do not reach the joiner.
    response = await rest(
        "POST", f"{a.base_url}/api/messages", owner, json={"channel": room, "content": "early"}
    )
    assert response.status_code == 201, response.text
    assert await joiner_ws.quiet(1.0) == []

    response = await rest("POST", f"{a.base_url}/api/channels/{room}/join", joiner)
    assert response.status_code == 200, response.text
    assert await joiner_ws.recv_type("subscribed") == {"type": "subscribed", "channel": room}
    joined = await owner_ws.recv_type("member_joined")
    assert (joined["channel"], joined["username"]) == (room, joiner["username"])

    await owner_ws.send({"type": "message", "channel": room, "content": "welcome", "client_id": "w1"})
    [message] = await joiner_ws.messages(1)
    assert (message["channel"], message["content"], message["seq"]) == (room, "welcome", 2)

    # Leaving through A ends delivery on B.
    response = await rest("POST", f"{a.base_url}/api/channels/{room}/leave", joiner)
    assert response.status_code == 200, response.text
    assert await joiner_ws.recv_type("unsubscribed") == {"type": "unsubscribed", "channel": room}
    await owner_ws.send({"type": "message", "channel": room, "content": "gone", "client_id": "w2"})
    while (await owner_ws.recv_type("ack"))["client_id"] != "w2":
        pass
    assert await joiner_ws.quiet(1.0) == []
    await joiner_ws.close()
    await owner_ws.close()


async def test_message_rate_limit_holds_across_both_processes(cluster):
    # A burst of 6 and a refill so slow that none comes back during the test.
    a, b = cluster(2, CHAT_MESSAGE_BURST="6", CHAT_MESSAGE_RATE="0.001")
    user = await account(a, "chatty")
    on_a = await Socket.open(a.ws_base, user)
    on_b = await Socket.open(b.ws_base, user)
    outcomes: list[str] = []
    for n in range(12):
        socket = (on_a, on_b)[n % 2]
        await socket.send({"type": "message", "channel": None, "content": f"m{n}", "client_id": f"c{n}"})
        while True:
            frame = await socket.recv()
            if frame["type"] in ("ack", "error"):
                break
        assert frame["client_id"] == f"c{n}"
        outcomes.append("ack" if frame["type"] == "ack" else frame["code"])
        if frame["type"] == "error":
            assert frame["retry_after"] > 0
    assert outcomes == ["ack"] * 6 + ["rate_limited"] * 6

    # REST on either process draws from the same bucket: 429 with Retry-After.
    response = await rest(
        "POST", f"{b.base_url}/api/messages", user, json={"channel": None, "content": "rest"}
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    # An idempotent resend spends nothing and is still acknowledged with the first id.
    await on_b.send({"type": "message", "channel": None, "content": "m0", "client_id": "c0"})
    ack = await on_b.recv_type("ack")
    assert (ack["client_id"], ack["seq"]) == ("c0", 1)
    await on_a.close()
    await on_b.close()


async def test_connection_limit_holds_across_both_processes(cluster):
    a, b = cluster(2, CHAT_MAX_CONNECTIONS_PER_USER="3")
    user = await account(a, "many")
    opened = [
        await Socket.open(a.ws_base, user),
        await Socket.open(b.ws_base, user),
        await Socket.open(a.ws_base, user),
    ]
    # A fourth connection is refused on either process.
    for server in (b, a):
        assert await refused_with(server, user) == 4429
    # Closing one on A frees a place for B.
    await opened[0].close()

    async def fourth_opens():
        try:
            return await Socket.open(b.ws_base, user)
        except websockets.ConnectionClosed:
            return None

    replacement = await eventually(fourth_opens, timeout=10)
    for socket in (*opened[1:], replacement):
        await socket.close()
