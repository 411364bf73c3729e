"""Fixtures for the scale-out tests, which talk to the machine's real Redis and PostgreSQL.

When a service is unreachable its tests skip with the reason, unless
``CHAT_REQUIRE_SERVICES=1`` (CI), in which case they fail.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

import pytest
import redis

from tests.servers import ServerProcess, free_port, server_database

# A database number of its own, flushed around every test.
REDIS_URL = os.environ.get("CHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
POSTGRES_URL = os.environ.get("CHAT_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def services_required() -> bool:
    return os.environ.get("CHAT_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes", "on"}


def unavailable(reason: str) -> None:
    """Skip, or fail when the services are required."""
    if services_required():
        pytest.fail(f"{reason} (CHAT_REQUIRE_SERVICES=1, so this is a failure)", pytrace=False)
    pytest.skip(f"{reason}; set CHAT_REQUIRE_SERVICES=1 to make this a failure")


@cache
def _redis_problem(url: str) -> str | None:
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return f"Redis at {url} is unreachable: {exc}"
    return None


@cache
def _postgres_problem(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"PostgreSQL at {url} is unreachable: {exc}"
    return None


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, empty at the start and end of the test."""
    if problem := _redis_problem(REDIS_URL):
        unavailable(problem)
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def redis_conn(redis_url) -> Iterator[redis.Redis]:
    """A plain client on the test Redis database, for looking at keys."""
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def postgres_url() -> str:
    """A PostgreSQL URL whose server lets the tests create databases."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = POSTGRES_URL
    if problem := _postgres_problem(url):
        unavailable(problem)
    return url


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_url: str, redis_url: str
) -> Iterator[Callable[..., list[ServerProcess]]]:
    """``cluster(n, **env)``: n real server processes sharing one fresh PostgreSQL database and Redis."""
    started: list[ServerProcess] = []
    cleanups: list = []

    def start(n: int = 2, **extra_env: str) -> list[ServerProcess]:
        database = server_database(
            tmp_path, {"DATABASE_URL": postgres_url, "REDIS_URL": redis_url, **extra_env}
        )
        cleanups.extend(database.cleanup)
        servers = []
        for i in range(n):
            server = ServerProcess(
                port=free_port(), env=database.env, log_path=tmp_path / f"server-{len(started)}-{i}.log"
            )
            started.append(server)
            server.start()
            servers.append(server)
        return servers

    yield start
    for server in started:
        server.stop()
    for step in cleanups:
        step()
