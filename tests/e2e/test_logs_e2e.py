"""A real server's logs: JSON lines when asked, an access log that starts, and never a token."""

from __future__ import annotations

import json
import uuid

import pytest
import requests
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DEFAULT_PASSWORD
from tests.e2e.wsclient import Socket, bearer, register_and_login
from tests.servers import ServerProcess, free_port, server_database

pytestmark = pytest.mark.e2e

METRICS_TOKEN = "scrape-" + uuid.uuid4().hex


@pytest.fixture
def start_server(tmp_path):
    started: list[tuple[ServerProcess, object]] = []

    def start(**env: str) -> ServerProcess:
        folder = tmp_path / f"s{len(started)}"
        folder.mkdir()
        database = server_database(folder, extra_env=env)
        server = ServerProcess(
            port=free_port(), env=database.env, log_path=tmp_path / f"server{len(started)}.log"
        )
        started.append((server, database))
        server.start()
        return server

    yield start
    for server, database in started:
        server.stop()
        for step in database.cleanup:
            step()


def secrets_of(account: dict) -> list[str]:
    """The access and refresh tokens, and each one's signature alone (a token cut short is still one)."""
    return [
        value for key in ("access", "refresh") for value in (account[key], account[key].rsplit(".", 1)[1])
    ]


async def exercise(server: ServerProcess) -> list[str]:
    """Log in, connect, send, refresh, reconnect, fail a login and more; return every token used."""
    account = register_and_login(server.base_url, prefix="logs")
    used = secrets_of(account)
    socket = await Socket.open(server.ws_base, account)
    await socket.send({"type": "message", "channel": None, "content": "logged?", "client_id": "l1"})
    while (await socket.recv())["type"] != "ack":
        pass
    refreshed = requests.post(
        f"{server.base_url}/api/auth/refresh", json={"refresh": account["refresh"]}, timeout=10
    )
    assert refreshed.status_code == 200, refreshed.text
    renewed = {**account, **refreshed.json()}
    used += secrets_of(renewed)
    second = await Socket.open(server.ws_base, renewed)
    # Refused handshakes (another user's name; a token cut short) log their URLs too.
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        wrong = await websockets.connect(f"{server.ws_base}/api/ws/someoneelse?token={renewed['access']}")
        await wrong.recv()
    with pytest.raises(websockets.exceptions.ConnectionClosed):
        cut = await websockets.connect(
            f"{server.ws_base}/api/ws/{account['username']}?token={renewed['access'][:-3]}"
        )
        await cut.recv()
    failed = requests.post(
        f"{server.base_url}/api/auth/login",
        json={"username": account["username"], "password": DEFAULT_PASSWORD + "x"},
        timeout=10,
    )
    assert failed.status_code == 401
    # A 4xx path carrying tokens in its query string, and a bad refresh.
    lost = requests.get(f"{server.base_url}/api/nowhere?token={renewed['access']}", timeout=10)
    assert lost.status_code == 404
    assert requests.get(f"{server.base_url}/api/users/me", headers=bearer(renewed), timeout=10).ok
    bad = requests.post(
        f"{server.base_url}/api/auth/refresh", json={"refresh": account["refresh"]}, timeout=10
    )
    assert bad.status_code == 401  # rotated away
    await socket.close()
    await second.close()
    return used


def assert_no_token(text: str, used: list[str]) -> None:
    for secret in used:
        assert secret not in text, "a token reached the log"


async def test_json_logs_at_debug_with_the_access_log_hold_no_token(start_server):
    server = start_server(
        CHAT_LOG_FORMAT="json",
        CHAT_LOG_LEVEL="DEBUG",
        CHAT_SERVER_LOG_LEVEL="debug",
        CHAT_ACCESS_LOG="1",
        CHAT_METRICS_TOKEN=METRICS_TOKEN,
    )
    used = await exercise(server)
    metrics = requests.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert metrics.status_code == 200
    samples = {
        s.name: s.value for family in text_string_to_metric_families(metrics.text) for s in family.samples
    }
    assert samples["chat_messages_stored_total"] >= 1 and samples["chat_ack_seconds_count"] >= 1
    server.stop()

    text = server.log_path.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert_no_token(text, used)
    messages = [entry["message"] for entry in entries]
    # The lines that used to carry tokens are there, scrubbed: the test saw what it guards.
    assert any("WebSocket /api/ws/" in m and "token=[redacted]" in m and "accepted" in m for m in messages)
    assert any('/api/nowhere?token=[redacted] HTTP/1.1" 404' in m for m in messages)
    assert any('"POST /api/auth/login HTTP/1.1" 401' in m for m in messages)
    assert any(entry["logger"].startswith("django") for entry in entries)
    assert {entry["level"] for entry in entries} >= {"DEBUG", "INFO", "WARNING"}


async def test_the_access_log_switch_starts_the_server_and_logs_requests_without_tokens(start_server):
    server = start_server(CHAT_ACCESS_LOG="1")  # as the README documents it; the server used to refuse it
    used = await exercise(server)
    server.stop()
    text = server.log_path.read_text()
    assert '"GET /api/health HTTP/1.1" 200' in text
    assert '"POST /api/auth/refresh HTTP/1.1" 200' in text
    assert "/api/nowhere?token=[redacted] HTTP/1.1" in text
    assert_no_token(text, used)
