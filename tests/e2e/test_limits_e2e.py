"""The per-user limits against a real server process, over real HTTP and real WebSockets."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
import requests
import websockets

from tests.e2e.wsclient import Socket, bearer, register_and_login
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.e2e

LIMITS = {
    "CHAT_CHANNEL_CREATE_RATE": "3/h",
    "CHAT_MEMBERSHIP_RATE": "4/m",
    "CHAT_READ_RATE": "5/m",
    "CHAT_CONNECT_RATE": "4/m",
}


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server with low per-user limits; each test uses users of its own."""
    with running_server(tmp_path_factory.mktemp("limits"), LIMITS) as server:
        yield server


def assert_429(response: requests.Response, *, most: int) -> None:
    assert response.status_code == 429, response.text
    assert set(response.json()) == {"detail"}
    assert 1 <= int(response.headers["Retry-After"]) <= most


def test_channel_creation_and_new_direct_channels_share_one_allowance(limited_server):
    base = f"{limited_server.base_url}/api"
    ada, bob, cid = (register_and_login(limited_server.base_url) for _ in range(3))
    auth = bearer(ada)
    for _ in range(2):
        name = f"c{uuid.uuid4().hex[:12]}"
        assert (
            requests.post(f"{base}/channels/", json={"name": name}, headers=auth, timeout=10).status_code
            == 201
        )
    assert requests.post(f"{base}/dms/{bob['username']}", headers=auth, timeout=10).status_code == 201
    for _ in range(3):
        assert requests.post(f"{base}/dms/{bob['username']}", headers=auth, timeout=10).status_code == 200
    assert_429(requests.post(f"{base}/dms/{cid['username']}", headers=auth, timeout=10), most=3600)
    assert_429(
        requests.post(f"{base}/channels/", json={"name": "late1"}, headers=auth, timeout=10), most=3600
    )
    assert requests.post(f"{base}/dms/{ada['username']}", headers=bearer(cid), timeout=10).status_code == 201


async def test_membership_changes_over_rest_and_the_socket_share_the_limit(limited_server):
    base = f"{limited_server.base_url}/api"
    owner, ada = register_and_login(limited_server.base_url), register_and_login(limited_server.base_url)
    names = [f"m{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in names:
        requests.post(
            f"{base}/channels/", json={"name": name}, headers=bearer(owner), timeout=10
        ).raise_for_status()
    socket = await Socket.open(limited_server.ws_base, ada)
    assert requests.post(f"{base}/channels/{names[0]}/join", headers=bearer(ada), timeout=10).ok
    assert requests.post(f"{base}/channels/{names[0]}/leave", headers=bearer(ada), timeout=10).ok
    await socket.send({"type": "join", "channel": names[1]})
    await socket.recv_type("subscribed")
    await socket.send({"type": "leave", "channel": names[1]})
    await socket.recv_type("unsubscribed")
    await socket.send({"type": "join", "channel": names[1], "client_id": "j5"})
    error = await socket.recv_type("error")
    assert error["code"] == "rate_limited" and error["client_id"] == "j5"
    assert 0 < error["retry_after"] <= 60
    assert_429(requests.post(f"{base}/channels/{names[0]}/join", headers=bearer(ada), timeout=10), most=60)
    await socket.send({"type": "ping"})
    assert (await socket.recv_type("pong"))["type"] == "pong"
    await socket.close()


async def test_reads_refused_past_the_rate_and_dropped_reads_land_on_the_latest(limited_server):
    base = f"{limited_server.base_url}/api"
    ada, bob = register_and_login(limited_server.base_url), register_and_login(limited_server.base_url)
    name = f"r{uuid.uuid4().hex[:12]}"
    requests.post(
        f"{base}/channels/", json={"name": name}, headers=bearer(bob), timeout=10
    ).raise_for_status()
    requests.post(f"{base}/channels/{name}/join", headers=bearer(ada), timeout=10).raise_for_status()
    for n in range(20):
        body = {"channel": name, "content": f"m{n}"}
        requests.post(f"{base}/messages", json=body, headers=bearer(bob), timeout=10).raise_for_status()
    one, two = await Socket.open(limited_server.ws_base, ada), await Socket.open(limited_server.ws_base, ada)
    # Refused: lists, search, history and sync share 5 a minute.
    assert requests.get(f"{base}/messages", headers=bearer(ada), timeout=10).ok
    assert requests.get(f"{base}/messages/search?q=m1", headers=bearer(ada), timeout=10).ok
    await one.send({"type": "history", "channel": name})
    await one.recv_type("history")
    await one.send({"type": "sync", "after": {name: 15}})
    await one.recv_type("synced")
    assert requests.get(f"{base}/messages/me", headers=bearer(ada), timeout=10).ok
    assert_429(requests.get(f"{base}/messages", headers=bearer(ada), timeout=10), most=60)
    await one.send({"type": "history", "channel": name})
    assert (await one.recv_type("error"))["code"] == "rate_limited"
    # Read updates past the rate (this window is spent) are dropped silently; the latest lands.
    for seq in range(1, 13):
        await one.send({"type": "read", "channel": name, "seq": seq})
    rest = requests.post(f"{base}/read", json={"channel": name, "seq": 14}, headers=bearer(ada), timeout=10)
    assert rest.status_code == 200 and rest.json()["last_read_seq"] == 0  # as it stands
    frame = await two.recv_type("read", timeout=5)
    assert frame == {"type": "read", "channel": name, "last_read_seq": 14, "unread": 6, "mentions": 0}
    assert await two.quiet(1.0, kinds=("read", "error")) == []
    assert await one.quiet(0.5, kinds=("error",)) == []
    mine = requests.get(f"{base}/channels/me", headers=bearer(ada), timeout=10).json()["results"]
    assert next(item for item in mine if item["name"] == name)["last_read_seq"] == 14
    await one.close()
    await two.close()


async def test_handshakes_past_the_connect_rate_close_4429(limited_server):
    ada, bob = register_and_login(limited_server.base_url), register_and_login(limited_server.base_url)
    for _ in range(4):
        socket = await Socket.open(limited_server.ws_base, ada)
        await socket.close()
    url = f"{limited_server.ws_base}/api/ws/{ada['username']}?token={ada['access']}"
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert closed.value.rcvd.code == 4429
    other = await Socket.open(limited_server.ws_base, bob)
    await other.close()
