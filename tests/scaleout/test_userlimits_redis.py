"""The per-user limits on the real Redis: one window per user and kind shared by every process.

Limiters on separate clients stand in for separate processes; then two real
server processes on one Redis and PostgreSQL show that handshakes, channel
creations and joins through either count against one allowance.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest

from core.rates import Rate
from core.redis import redis_client
from core.userlimits import LocalWindows, RedisWindows, reset_user_limits, user_limit
from tests.e2e.wsclient import Socket
from tests.scaleout.helpers import account, make_channel, rest
from tests.scaleout.test_cross_process import refused_with

pytestmark = pytest.mark.services

PREFIX = "test:userrate:"


@pytest.fixture
def make_windows(redis_url) -> Callable[..., RedisWindows]:
    """``make_windows()``: windows on a client of their own, like another server process."""
    clients = []

    def make(url: str = redis_url) -> RedisWindows:
        client = redis_client(url)
        clients.append(client)
        return RedisWindows(client, prefix=PREFIX)

    yield make
    for client in clients:
        client.close()


def test_a_window_is_shared_by_every_process_and_ends_on_redis_clock(make_windows, redis_conn):
    a, b = make_windows(), make_windows()
    rate = Rate(4, 60)
    assert [(a, b)[n % 2].hit("membership:u1", rate) for n in range(4)] == [None] * 4
    retry_after = b.hit("membership:u1", rate)
    assert retry_after is not None and 55 < retry_after <= 60
    assert a.hit("membership:u1", rate) is not None
    assert a.hit("membership:u2", rate) is None
    ttl = redis_conn.pttl(f"{PREFIX}membership:u1")
    assert 55_000 < ttl <= 60_000  # refused attempts do not extend the window


def test_concurrent_attempts_get_exactly_the_limit(make_windows):
    windows = [make_windows() for _ in range(8)]
    barrier = threading.Barrier(len(windows))
    allowed: list[int] = []
    lock = threading.Lock()

    def attempt(counter: RedisWindows) -> None:
        barrier.wait()
        ok = sum(counter.hit("connect:u", Rate(25, 60)) is None for _ in range(10))
        with lock:
            allowed.append(ok)

    threads = [threading.Thread(target=attempt, args=(counter,)) for counter in windows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 25


def test_a_short_window_opens_again(make_windows):
    import time

    counter = make_windows()
    assert counter.hit("read:u", Rate(1, 1)) is None
    assert counter.hit("read:u", Rate(1, 1)) is not None
    time.sleep(1.1)
    assert counter.hit("read:u", Rate(1, 1)) is None


def test_without_redis_each_process_counts_its_own_share(make_windows):
    counter = make_windows("redis://127.0.0.1:1/0")
    assert counter.hit("membership:u", Rate(2, 60)) is None
    assert counter.hit("membership:u", Rate(2, 60)) is None
    assert counter.hit("membership:u", Rate(2, 60)) is not None


def test_the_limits_use_redis_when_configured(settings, redis_url, redis_conn):
    settings.REDIS_URL = redis_url
    settings.CHAT_RATE_KEY_PREFIX = PREFIX
    reset_user_limits()
    try:
        user = uuid.uuid4()
        limit = user_limit("channel_create")
        assert isinstance(limit.counter, RedisWindows)
        assert limit.hit(user) is None
        assert redis_conn.get(f"{PREFIX}user:channel_create:{user.hex}") == b"1"
    finally:
        reset_user_limits()
    settings.REDIS_URL = ""
    assert isinstance(user_limit("channel_create").counter, LocalWindows)


@pytest.mark.e2e
async def test_connects_creations_and_joins_count_across_both_processes(cluster):
    a, b = cluster(2, CHAT_CONNECT_RATE="4/m", CHAT_CHANNEL_CREATE_RATE="3/h", CHAT_MEMBERSHIP_RATE="4/m")
    user, owner = await account(a, "limited"), await account(b, "owner")
    # Handshakes: two through each process, then neither serves a fifth.
    for server in (a, b, a, b):
        socket = await Socket.open(server.ws_base, user)
        await socket.close()
    assert await refused_with(a, user) == 4429
    assert await refused_with(b, user) == 4429
    # Channel creations, alternating processes.
    statuses = []
    for n, server in enumerate((a, b, a, b)):
        response = await rest("POST", f"{server.base_url}/api/channels/", user, json={"name": f"lim{n}"})
        statuses.append(response.status_code)
    assert statuses == [201, 201, 201, 429]
    assert int(response.headers["Retry-After"]) > 3500
    # Joins and leaves, alternating processes (another user's allowance untouched).
    room = await make_channel(b, owner)
    statuses = []
    for n, server in enumerate((a, b, a, b, a)):
        step = "join" if n % 2 == 0 else "leave"
        response = await rest("POST", f"{server.base_url}/api/channels/{room}/{step}", user)
        statuses.append(response.status_code)
    assert statuses == [200, 200, 200, 200, 429]
    assert (await rest("POST", f"{a.base_url}/api/channels/lim0/join", owner)).status_code == 200
