"""Read state against a real server process: REST reads reach every socket of the reader."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.e2e.wsclient import Socket, bearer, register_and_login

pytestmark = pytest.mark.e2e


async def test_read_positions_and_counts_reach_every_socket(live_server_proc):
    server = live_server_proc
    ada, bob = register_and_login(server.base_url), register_and_login(server.base_url)
    name = f"r{uuid.uuid4().hex[:12]}"
    base = f"{server.base_url}/api"
    assert requests.post(f"{base}/channels/", json={"name": name}, headers=bearer(ada), timeout=10).ok
    assert requests.post(f"{base}/channels/{name}/join", headers=bearer(bob), timeout=10).ok
    for content in ("first", f"hey @{ada['username']}"):
        posted = requests.post(
            f"{base}/messages", json={"channel": name, "content": content}, headers=bearer(bob), timeout=10
        )
        assert posted.status_code == 201, posted.text

    one, two = await Socket.open(server.ws_base, ada), await Socket.open(server.ws_base, ada)
    assert one.ready["unread"][name] == {"last_read_seq": 0, "last_seq": 2, "unread": 2, "mentions": 1}
    assert set(one.ready["unread"][""]) == {"last_read_seq", "last_seq", "unread", "mentions"}

    response = requests.post(
        f"{base}/read", json={"channel": name, "seq": 1}, headers=bearer(ada), timeout=10
    )
    assert response.status_code == 200, response.text
    expected = {"channel": name, "last_read_seq": 1, "unread": 1, "mentions": 1}
    assert response.json() == expected
    for socket in (one, two):
        assert await socket.recv_type("read") == {"type": "read", **expected}

    # A read that moves nothing sends nothing.
    assert requests.post(f"{base}/read", json={"channel": name, "seq": 0}, headers=bearer(ada), timeout=10).ok
    assert await two.quiet(0.5, kinds=("read",)) == []

    # Posting moves the sender's position to the new message, on every socket.
    await one.send({"type": "message", "channel": name, "content": "read it all", "client_id": "c1"})
    expected = {"type": "read", "channel": name, "last_read_seq": 3, "unread": 0, "mentions": 0}
    for socket in (one, two):
        assert await socket.recv_type("read") == expected
    mine = requests.get(f"{base}/channels/me", headers=bearer(ada), timeout=10).json()["results"]
    item = next(item for item in mine if item["name"] == name)
    assert (item["last_read_seq"], item["unread"], item["mentions"]) == (3, 0, 0)
    for socket in (one, two):
        await socket.close()
