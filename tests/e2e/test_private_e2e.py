"""Direct channels and bans against a real server process: the live effects reach real sockets."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.e2e.wsclient import Socket, bearer, register_and_login

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(live_server_proc):
    return live_server_proc


async def test_direct_channel_subscribes_both_and_stays_private(server):
    ada, bob, eve = (register_and_login(server.base_url) for _ in range(3))
    a, b, e = [await Socket.open(server.ws_base, account) for account in (ada, bob, eve)]
    response = requests.post(
        f"{server.base_url}/api/dms/{ada['username'].upper()}", headers=bearer(bob), timeout=10
    )
    assert response.status_code == 201, response.text
    name = response.json()["name"]
    assert name == "@" + "+".join(sorted([ada["username"], bob["username"]], key=str.lower))
    for socket in (a, b):
        assert await socket.recv_type("subscribed") == {"type": "subscribed", "channel": name}
    again = requests.post(f"{server.base_url}/api/dms/{bob['username']}", headers=bearer(ada), timeout=10)
    assert again.status_code == 200 and again.json()["id"] == response.json()["id"]
    await a.send({"type": "message", "channel": name.upper(), "content": "hi bob", "client_id": "d1"})
    assert (await b.recv_type("message"))["message"]["content"] == "hi bob"
    # Eve sees nothing of it, and naming it is answered as a missing channel.
    assert await e.quiet(0.3) == []
    await e.send({"type": "history", "channel": name})
    assert (await e.recv_type("error"))["code"] == "channel_not_found"
    plus_unencoded = requests.get(
        f"{server.base_url}/api/messages?channel={name}", headers=bearer(bob), timeout=10
    )
    assert [m["content"] for m in plus_unencoded.json()["results"]] == ["hi bob"]
    hidden = requests.get(f"{server.base_url}/api/channels/{name}", headers=bearer(eve), timeout=10)
    missing = requests.get(
        f"{server.base_url}/api/channels/@nobody1+nobody2", headers=bearer(eve), timeout=10
    )
    assert (
        (hidden.status_code, hidden.json()) == (missing.status_code, missing.json()) == (404, missing.json())
    )
    for socket in (a, b, e):
        await socket.close()


async def test_ban_reaches_the_banned_users_socket(server):
    owner, member = register_and_login(server.base_url), register_and_login(server.base_url)
    name = f"c{uuid.uuid4().hex[:12]}"
    created = requests.post(
        f"{server.base_url}/api/channels/",
        json={"name": name, "private": True},
        headers=bearer(owner),
        timeout=10,
    )
    assert created.status_code == 201 and created.json()["kind"] == "private"
    o = await Socket.open(server.ws_base, owner)
    added = requests.post(
        f"{server.base_url}/api/channels/{name}/members",
        json={"username": member["username"]},
        headers=bearer(owner),
        timeout=10,
    )
    assert added.status_code == 200
    assert (await o.recv_type("member_joined"))["username"] == member["username"]
    m = await Socket.open(server.ws_base, member)
    banned = requests.post(
        f"{server.base_url}/api/channels/{name}/bans",
        json={"username": member["username"], "reason": "spam"},
        headers=bearer(owner),
        timeout=10,
    )
    assert banned.status_code == 201
    assert banned.json()["banned_by"] == owner["username"]
    assert (await m.recv_type("member_left"))["username"] == member["username"]
    assert await m.recv_type("unsubscribed") == {"type": "unsubscribed", "channel": name}
    assert (await o.recv_type("member_left"))["username"] == member["username"]
    await o.send({"type": "message", "channel": name, "content": "after the ban"})
    assert await m.quiet(0.5) == []
    # The banned user can no longer see the private channel at all.
    await m.send({"type": "join", "channel": name})
    assert (await m.recv_type("error"))["code"] == "channel_not_found"
    listed = requests.get(f"{server.base_url}/api/channels/{name}/bans", headers=bearer(owner), timeout=10)
    assert [b["username"] for b in listed.json()["results"]] == [member["username"]]
    for socket in (o, m):
        await socket.close()
