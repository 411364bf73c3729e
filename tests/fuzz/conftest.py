"""A real server on a fresh PostgreSQL database, with its log kept, for the fuzz and slow-consumer tests.

These tests are slow, so they are marked ``services`` and run in the first
pass of ``bin/test`` only; they skip (or fail, with ``CHAT_REQUIRE_SERVICES=1``)
when PostgreSQL is unreachable. PostgreSQL rather than SQLite because it
refuses more (a NUL in a string), which is what fuzzing should hit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.scaleout.conftest import POSTGRES_URL, _postgres_problem, unavailable
from tests.servers import ServerProcess, free_port, server_database

# Limits that would otherwise refuse most of the traffic these tests send (the
# rate limits have their own tests): every frame should reach its handler.
UNLIMITED = {
    "CHAT_MESSAGE_BURST": "1000000",
    "CHAT_MESSAGE_RATE": "1000000",
    "CHAT_CONNECT_RATE": "100000/m",
    "CHAT_CHANNEL_CREATE_RATE": "100000/m",
    "CHAT_MEMBERSHIP_RATE": "100000/m",
    "CHAT_READ_RATE": "100000/m",
    "CHAT_PROFILE_RATE": "100000/m",
    "CHAT_LOGIN_RATE": "100000/m",
    "CHAT_REGISTER_RATE": "100000/m",
}

# What a server logs when code failed: a traceback, or a line at ERROR or CRITICAL.
FAILURE_LINE = re.compile(r"Traceback \(most recent call last\)|\b(ERROR|CRITICAL)\b")


def server_failures(server: ServerProcess) -> list[str]:
    """The lines of the server's log that show an exception or an error."""
    lines = server.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines if FAILURE_LINE.search(line)]


@pytest.fixture
def postgres_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``postgres_server(**env)``: one started server on a fresh PostgreSQL database."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = POSTGRES_URL
    if problem := _postgres_problem(url):
        unavailable(problem)
    started: list[ServerProcess] = []
    cleanups: list = []

    def start(**extra_env: str) -> ServerProcess:
        database = server_database(tmp_path, {"DATABASE_URL": url, **UNLIMITED, **extra_env})
        cleanups.extend(database.cleanup)
        server = ServerProcess(
            port=free_port(), env=database.env, log_path=tmp_path / f"server-{len(started)}.log"
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
    for step in cleanups:
        step()
