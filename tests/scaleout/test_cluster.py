"""Several real server processes sharing one PostgreSQL database and one Redis.

The cross-process WebSocket scenarios live with the consumer's tests; these
cover what holds through REST alone: limits shared through Redis, and the
lobby's seq staying gapless with writers in several processes.
"""

from __future__ import annotations

import itertools
import threading

import psycopg
import pytest
import requests

from tests.servers import register_and_login

pytestmark = [pytest.mark.services, pytest.mark.e2e]


def test_login_rate_limit_is_shared_by_every_process(cluster):
    """django-ratelimit counts in the Redis cache, so A and B draw on one budget per address."""
    a, b = cluster(2, CHAT_LOGIN_RATE="4/h")
    statuses = []
    for server in (a, b, a, b, a, b):
        response = requests.post(
            f"{server.base_url}/api/auth/login",
            json={"username": "nobody", "password": "wrong-password-1"},
            timeout=10,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    assert statuses == [401, 401, 401, 401, 429, 429]


def test_lobby_seq_is_gapless_with_writers_in_two_processes(cluster):
    servers = cluster(2)
    tokens = [register_and_login(servers[0].base_url, prefix="writer")["access"] for _ in range(2)]
    threads_count, per_thread = 8, 25
    counter = itertools.count()
    seqs: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads_count)

    def write(n: int) -> None:
        server = servers[n % len(servers)]
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {tokens[(n // 2) % len(tokens)]}"
            barrier.wait()
            for _ in range(per_thread):
                response = session.post(
                    f"{server.base_url}/api/messages",
                    json={"channel": None, "content": f"message {next(counter)}"},
                    timeout=30,
                )
                with lock:
                    if response.status_code == 201:
                        seqs.append(response.json()["seq"])
                    else:
                        failures.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = threads_count * per_thread
    assert failures == []
    assert sorted(seqs) == list(range(1, total + 1))
    with psycopg.connect(servers[0].env["DATABASE_URL"]) as conn:
        stored = [
            row[0]
            for row in conn.execute("SELECT seq FROM messaging_message WHERE channel_id IS NULL ORDER BY seq")
        ]
        last = conn.execute("SELECT last_seq FROM messaging_streamsequence WHERE stream = ''").fetchone()
    assert stored == list(range(1, total + 1))
    assert last == (total,)
