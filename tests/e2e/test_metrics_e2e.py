"""``/metrics`` of a real server: sockets that vanish right after the 101 still leave the gauge."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.wsclient import Socket, register_and_login
from tests.servers import ServerProcess, running_server

pytestmark = pytest.mark.e2e

TOKEN = "scrape-" + os.urandom(8).hex()


@pytest.fixture
def server(tmp_path):
    with running_server(tmp_path, {"CHAT_METRICS_TOKEN": TOKEN}) as process:
        yield process


def scrape(server: ServerProcess) -> dict[tuple[str, tuple], float]:
    response = requests.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def closes(samples) -> float:
    return sum(value for (name, _), value in samples.items() if name == "chat_ws_closes_total")


def handshake_then_vanish(server: ServerProcess, account: dict) -> None:
    """Complete the WebSocket handshake, then reset the connection before reading a frame."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /api/ws/{account['username']}?token={account['access']} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(1)
        assert response.startswith(b"HTTP/1.1 101"), response
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close


async def test_sockets_dropped_right_after_the_101_leave_the_connection_gauge(server):
    account = register_and_login(server.base_url, prefix="gauge")
    before = scrape(server)
    assert before[("chat_connections", ())] == 0
    for _ in range(12):
        handshake_then_vanish(server, account)
    deadline = time.monotonic() + 15
    while (now := scrape(server))[("chat_connections", ())] != 0:
        assert time.monotonic() < deadline, f"still counted open: {now[('chat_connections', ())]}"
        time.sleep(0.1)
    assert closes(now) == closes(before) + 12
    # And a socket that stays is counted while it is open. (Another user: the
    # presence entries the dropped sockets leave are not this test's subject.)
    socket_ = await Socket.open(server.ws_base, register_and_login(server.base_url, prefix="gauge"))
    assert scrape(server)[("chat_connections", ())] == 1
    await socket_.close()
    deadline = time.monotonic() + 10
    while scrape(server)[("chat_connections", ())] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)


async def test_broadcasts_are_written_below_asgi_on_the_default_server(server):
    """uvicorn's sansio protocol (bin/server's default) takes the broadcast's frame directly."""
    sender = await Socket.open(server.ws_base, register_and_login(server.base_url, prefix="wire"))
    reader = await Socket.open(server.ws_base, register_and_login(server.base_url, prefix="wire"))
    try:
        before = scrape(server)[("chat_direct_writes_total", ())]
        for number in range(3):
            await sender.send(
                {"type": "message", "channel": None, "content": f"wire {number} é", "client_id": f"w{number}"}
            )
        got = await reader.messages(3)
        assert [m["content"] for m in got] == ["wire 0 é", "wire 1 é", "wire 2 é"]
        assert [m["seq"] for m in got] == sorted(m["seq"] for m in got)
        # Both sockets are in the lobby: six deliveries, each one frame written directly.
        assert scrape(server)[("chat_direct_writes_total", ())] - before >= 6
    finally:
        await sender.close()
        await reader.close()
