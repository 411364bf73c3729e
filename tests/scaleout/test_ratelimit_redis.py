"""RedisTokenBucket against the real Redis: one bucket per user shared by every process.

Limiters built on separate clients stand in for separate server processes.
The steady-rate test bounds what was allowed by the time that passed on
Redis's own clock; nothing asserts on how long anything took.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from core.redis import redis_client
from messaging.ratelimit import (
    SHORTEST_WAIT,
    LocalTokenBucket,
    RedisTokenBucket,
    get_message_rate_limiter,
    reset_message_rate_limiter,
)

pytestmark = pytest.mark.services

PREFIX = "test:rate:"


@pytest.fixture
def make_limiter(redis_url) -> Callable[..., RedisTokenBucket]:
    """``make_limiter(burst=, rate=)``: a limiter on its own client, like another server process."""
    clients = []

    def make(*, burst: int, rate: float, url: str = redis_url) -> RedisTokenBucket:
        client = redis_client(url)
        clients.append(client)
        return RedisTokenBucket(client, burst=burst, rate=rate, prefix=PREFIX)

    yield make
    for client in clients:
        client.close()


def redis_seconds(client) -> float:
    seconds, micros = client.time()
    return seconds + micros / 1_000_000


def test_burst_is_shared_by_every_process(make_limiter):
    # One token per 1000 s: nothing refills during the test.
    a, b = make_limiter(burst=5, rate=0.001), make_limiter(burst=5, rate=0.001)
    user = uuid.uuid4()
    assert [(a, b)[n % 2].consume(user) for n in range(5)] == [None] * 5
    retry_after = b.consume(user)
    assert retry_after is not None and 990 < retry_after <= 1000
    assert a.consume(user) is not None
    # Another user has a bucket of their own.
    assert a.consume(uuid.uuid4()) is None


def test_a_bucket_a_hair_short_of_a_token_still_asks_for_a_wait(make_limiter, redis_conn):
    """Never a refusal with a wait of 0 (rounded to the millisecond), which a client would retry at once."""
    limiter = make_limiter(burst=3, rate=20.0)
    user = uuid.uuid4()

    def almost_a_token() -> None:  # stamped ahead of Redis's clock: nothing refills before the call
        stamp = f"{redis_seconds(redis_conn) + 5:.6f}"
        redis_conn.hset(f"{PREFIX}{user.hex}", mapping={"tokens": "0.99999999999", "stamp": stamp})

    almost_a_token()
    retry_after = limiter.consume(user)
    assert retry_after is not None and SHORTEST_WAIT <= retry_after <= 1 / 20.0
    almost_a_token()
    [retry_many] = limiter.consume_many([user])
    assert retry_many is not None and SHORTEST_WAIT <= retry_many <= 1 / 20.0


def test_the_local_bucket_a_hair_short_of_a_token_still_asks_for_a_wait(monkeypatch):
    bucket = LocalTokenBucket(burst=3, rate=20.0)
    user = uuid.uuid4()
    monkeypatch.setattr(time, "monotonic", lambda: 1000.0)  # no refill between the two lines
    bucket._buckets[user] = (0.99999999999, 1000.0)
    retry_after = bucket.consume(user)
    assert retry_after is not None and SHORTEST_WAIT <= retry_after <= 1 / 20.0


def test_concurrent_senders_get_exactly_the_burst(make_limiter):
    user = uuid.uuid4()
    limiters = [make_limiter(burst=20, rate=0.001) for _ in range(8)]
    barrier = threading.Barrier(len(limiters))
    allowed: list[int] = []
    lock = threading.Lock()

    def send(limiter: RedisTokenBucket) -> None:
        barrier.wait()
        ok = sum(limiter.consume(user) is None for _ in range(10))
        with lock:
            allowed.append(ok)

    threads = [threading.Thread(target=send, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 20


def test_after_the_burst_the_steady_rate_holds_across_processes(make_limiter, redis_conn):
    burst, rate = 3, 20.0
    a, b = make_limiter(burst=burst, rate=rate), make_limiter(burst=burst, rate=rate)
    user = uuid.uuid4()
    start = redis_seconds(redis_conn)
    allowed = refused = 0
    n = 0
    while redis_seconds(redis_conn) - start < 1.0 or refused == 0:
        retry_after = (a, b)[n % 2].consume(user)
        n += 1
        if retry_after is None:
            allowed += 1
        else:
            refused += 1
            assert 0 < retry_after <= 1 / rate
            time.sleep(0.002)
    elapsed = redis_seconds(redis_conn) - start
    # Never more than the burst plus what refilled; and it did refill.
    assert allowed <= burst + rate * elapsed + 1
    assert allowed > burst + 5


def test_refund_gives_one_token_back_and_never_exceeds_the_burst(make_limiter):
    a, b = make_limiter(burst=2, rate=0.001), make_limiter(burst=2, rate=0.001)
    user = uuid.uuid4()
    b.refund(user)  # a full bucket stays full
    assert a.consume(user) is None
    assert b.consume(user) is None
    assert a.consume(user) is not None
    b.refund(user)
    assert a.consume(user) is None
    assert b.consume(user) is not None


def test_buckets_expire_once_they_would_be_full(make_limiter, redis_conn):
    limiter = make_limiter(burst=10, rate=5.0)
    user = uuid.uuid4()
    limiter.consume(user)
    ttl = redis_conn.pttl(f"{PREFIX}{user.hex}")
    assert 0 < ttl <= 1200  # one token refills in 200 ms, plus a second's margin


def test_without_redis_each_process_limits_its_own_share(make_limiter):
    limiter = make_limiter(burst=2, rate=0.001, url="redis://127.0.0.1:1/0")
    user = uuid.uuid4()
    assert limiter.consume(user) is None
    assert limiter.consume(user) is None
    assert limiter.consume(user) is not None
    limiter.refund(user)
    assert limiter.consume(user) is None


def test_get_message_rate_limiter_uses_redis_when_configured(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.CHAT_MESSAGE_BURST = 7
    settings.CHAT_MESSAGE_RATE = 2.5
    reset_message_rate_limiter()
    try:
        limiter = get_message_rate_limiter()
        assert isinstance(limiter, RedisTokenBucket)
        assert (limiter.burst, limiter.rate) == (7, 2.5)
    finally:
        reset_message_rate_limiter()
    settings.REDIS_URL = ""
    assert isinstance(get_message_rate_limiter(), LocalTokenBucket)


def test_a_batch_asks_every_bucket_in_order_in_one_call(make_limiter):
    """``consume_many`` answers as the same calls one by one would, a user's sends in order."""
    batch, single = make_limiter(burst=3, rate=0.001), make_limiter(burst=3, rate=0.001)
    ada, bob = uuid.uuid4(), uuid.uuid4()
    answers = batch.consume_many([ada, bob, ada, ada, ada, bob])
    assert answers[:4] == [None, None, None, None]
    assert answers[4] is not None and 990 < answers[4] <= 1000  # ada's fourth: past her burst of 3
    assert answers[5] is None  # bob's second
    # The same buckets, as another process sees them: ada has none left, bob one.
    assert single.consume(ada) is not None
    assert single.consume(bob) is None
    assert single.consume(bob) is not None


def test_a_batch_falls_back_to_this_process_while_redis_is_away(make_limiter):
    limiter = make_limiter(burst=2, rate=0.001, url="redis://127.0.0.1:1/0")  # nothing listens there
    user = uuid.uuid4()
    answers = limiter.consume_many([user, user, user])
    assert answers[:2] == [None, None] and answers[2] is not None
