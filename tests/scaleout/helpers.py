"""Helpers for the cross-process tests: REST calls off the event loop, channels, waiting."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import requests

from tests.e2e.wsclient import bearer, register_and_login

REDIS_PORT = 6379
# Exactly how the machine's Redis is started (no persistence: a restart empties it).
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    str(REDIS_PORT),
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


async def rest(method: str, url: str, account: dict | None = None, **kwargs: Any) -> requests.Response:
    """One REST call in a worker thread, so the sockets keep reading meanwhile."""
    headers = bearer(account) if account else {}
    return await asyncio.to_thread(requests.request, method, url, headers=headers, timeout=30, **kwargs)


async def account(server, prefix: str = "x") -> dict:
    return await asyncio.to_thread(register_and_login, server.base_url, prefix)


async def make_channel(server, owner: dict) -> str:
    name = f"c{uuid.uuid4().hex[:12]}"
    response = await rest("POST", f"{server.base_url}/api/channels/", owner, json={"name": name})
    assert response.status_code == 201, response.text
    return name


async def join(server, member: dict, name: str) -> None:
    response = await rest("POST", f"{server.base_url}/api/channels/{name}/join", member)
    assert response.status_code == 200, response.text


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0, step: float = 0.2) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


async def online_usernames(server, viewer: dict) -> set[str]:
    response = await rest("GET", f"{server.base_url}/api/users/online?limit=200", viewer)
    assert response.status_code == 200, response.text
    return {user["username"] for user in response.json()["results"]}


def redis_ping() -> bool:
    result = subprocess.run(
        ["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() == "PONG"


def redis_stop() -> None:
    subprocess.run(
        ["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], capture_output=True, check=False
    )
    deadline = time.monotonic() + 20
    while redis_ping():
        assert time.monotonic() < deadline, "Redis did not stop"
        time.sleep(0.1)


def redis_start() -> None:
    """Start the machine's Redis again (idempotent) and wait until it answers."""
    if not redis_ping():
        subprocess.run(REDIS_START, check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while not redis_ping():
        assert time.monotonic() < deadline, "Redis did not come back"
        time.sleep(0.1)


def _pg_cluster(action: str) -> None:
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True, check=True)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version.stdout.split()[0], "main", action],
        check=False,
        capture_output=True,
    )


def pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


def pg_stop() -> None:
    _pg_cluster("stop")
    deadline = time.monotonic() + 30
    while pg_ready():
        assert time.monotonic() < deadline, "PostgreSQL did not stop"
        time.sleep(0.1)


def pg_start() -> None:
    """Start PostgreSQL again (idempotent) and wait until it accepts connections."""
    if not pg_ready():
        _pg_cluster("start")
    deadline = time.monotonic() + 60
    while not pg_ready():
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)
