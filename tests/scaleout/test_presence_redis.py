"""RedisPresenceStore against the real Redis: counts, limits, expiry, heartbeat and sweep.

Stores built on separate clients stand in for separate server processes.
Expiry tests use a short TTL and poll for the outcome; nothing asserts on
how long anything took.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from core.errors import ServiceUnavailable
from core.redis import redis_client
from realtime.presence_redis import RedisPresenceStore
from realtime.presence_store import get_presence_store, presence_renew, reset_presence_store
from tests.gateway.conftest import fresh_layer_and_presence, ws_connect  # noqa: F401  (fixtures)

pytestmark = pytest.mark.services

PREFIX = "test:presence:"


@pytest.fixture
def make_store(redis_url) -> Callable[..., RedisPresenceStore]:
    """``make_store(ttl=...)``: a store on its own client, like another server process."""
    clients = []

    def make(*, ttl: float = 45.0, sweep_batch: int = 500) -> RedisPresenceStore:
        client = redis_client(redis_url)
        clients.append(client)
        return RedisPresenceStore(client, prefix=PREFIX, ttl=ttl, sweep_batch=sweep_batch)

    yield make
    for client in clients:
        client.close()


def wait_until(condition: Callable[[], object], *, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(step)
    raise AssertionError("condition not met before the deadline")


def redis_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_open_counts_connections_up_to_the_limit(make_store):
    store = make_store()
    user = uuid.uuid4()
    assert store.open(user, "c1", limit=2) == 1
    assert store.open(user, "c2", limit=2) == 2
    assert store.open(user, "c3", limit=2) is None
    # Opening a connection the store already has renews it and counts it once.
    assert store.open(user, "c1", limit=2) == 2
    assert store.connected([user]) == {user}


def test_limit_holds_across_processes_opening_at_once(make_store):
    user = uuid.uuid4()
    stores = [make_store() for _ in range(4)]
    barrier = threading.Barrier(20)
    results: list[int | None] = []
    lock = threading.Lock()

    def connect(n: int) -> None:
        barrier.wait()
        count = stores[n % len(stores)].open(user, f"conn-{n}", limit=5)
        with lock:
            results.append(count)

    threads = [threading.Thread(target=connect, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(count for count in results if count is not None) == [1, 2, 3, 4, 5]
    assert results.count(None) == 15


def test_close_returns_what_is_left_and_leaves_no_keys(make_store, redis_conn):
    a, b = make_store(), make_store()
    user = uuid.uuid4()
    a.open(user, "on-a", limit=10)
    b.open(user, "on-b", limit=10)
    assert a.close(user, "on-a") == 1
    assert a.connected([user]) == {user}
    assert b.close(user, "on-b") == 0
    assert b.close(user, "on-b") == 0  # closing twice is harmless
    assert a.connected([user]) == set()
    assert redis_conn.keys(f"{PREFIX}*") == []


def test_connected_and_all_connected_see_every_process(make_store):
    a, b = make_store(), make_store()
    on_a, on_b, on_both, nowhere = (uuid.uuid4() for _ in range(4))
    a.open(on_a, "1", limit=10)
    b.open(on_b, "2", limit=10)
    a.open(on_both, "3", limit=10)
    b.open(on_both, "4", limit=10)
    expected = {on_a, on_b, on_both}
    assert a.connected([on_a, on_b, on_both, nowhere]) == expected
    assert b.connected(iter([nowhere, on_b])) == {on_b}
    assert a.connected([]) == set()
    assert a.all_connected() == expected == b.all_connected()


def test_heartbeat_pushes_expiry_forward(make_store, redis_conn):
    store = make_store(ttl=30)
    users = [uuid.uuid4() for _ in range(3)]
    for n, user in enumerate(users):
        store.open(user, f"c{n}", limit=10)
    key = f"{PREFIX}u:{users[0].hex}"
    before = redis_conn.zscore(key, "c0")
    # Let Redis's clock move past the millisecond of the open.
    now_ms = wait_until(lambda: (ms := redis_ms(redis_conn)) > before - 30_000 and ms, step=0.002)
    assert store.heartbeat([(user, f"c{n}") for n, user in enumerate(users)]) == []
    after = redis_conn.zscore(key, "c0")
    assert after > before
    assert after >= now_ms + 30_000
    assert redis_conn.zscore(f"{PREFIX}conns", f"{users[0].hex}:c0") == after
    assert 0 < redis_conn.pttl(key) <= 60_000


def test_heartbeat_in_chunks_renews_many_connections(make_store):
    store = make_store()
    pairs = [(uuid.uuid4(), f"c{n}") for n in range(1203)]
    for user, conn in pairs:
        store.open(user, conn, limit=10)
    assert store.heartbeat(pairs) == []
    assert len(store.all_connected()) == 1203


def test_heartbeat_never_brings_back_a_closed_connection(make_store):
    store = make_store()
    user = uuid.uuid4()
    store.open(user, "c1", limit=10)
    assert store.close(user, "c1") == 0
    assert store.heartbeat([(user, "c1")]) == [(user, "c1")]
    assert store.connected([user]) == set()
    assert store.sweep() == []


def test_expired_connections_stop_counting_and_are_swept_once(make_store):
    store = make_store(ttl=0.3)
    user = uuid.uuid4()
    store.open(user, "c1", limit=1)
    wait_until(lambda: not store.connected([user]))
    assert store.all_connected() == set()
    assert store.sweep() == [user]
    assert store.sweep() == []


def test_open_past_the_limit_succeeds_once_dead_connections_expire(make_store):
    dead, alive = make_store(ttl=0.3), make_store(ttl=30)
    user = uuid.uuid4()
    dead.open(user, "dead-1", limit=2)
    dead.open(user, "dead-2", limit=2)
    assert alive.open(user, "new", limit=2) is None
    assert wait_until(lambda: alive.open(user, "new", limit=2)) == 1
    # The open dropped the dead entries; nobody announces the user offline.
    assert alive.sweep() == []
    assert alive.all_connected() == {user}


def test_a_process_that_stops_heartbeating_has_its_users_swept_offline(make_store, redis_conn):
    a, b = make_store(ttl=1.0), make_store(ttl=1.0)
    only_a, on_both, only_b = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a.open(only_a, "a1", limit=10)
    a.open(on_both, "a2", limit=10)
    b.open(on_both, "b1", limit=10)
    b.open(only_b, "b2", limit=10)
    b_connections = [(on_both, "b1"), (only_b, "b2")]

    # A stops renewing (it died); B keeps renewing and sweeping, as its
    # presence tick does.
    offline: list[uuid.UUID] = []

    def b_ticks() -> bool:
        b.heartbeat(b_connections)
        offline.extend(b.sweep())
        return only_a in offline

    wait_until(b_ticks, step=0.1)
    assert offline == [only_a]
    assert b.connected([only_a, on_both, only_b]) == {on_both, only_b}
    assert b.all_connected() == {on_both, only_b}
    assert not redis_conn.exists(f"{PREFIX}u:{only_a.hex}")

    # A wakes up: its connections are reported gone, not renewed, and
    # closing them announces nobody a second time.
    assert sorted(a.heartbeat([(only_a, "a1"), (on_both, "a2")])) == sorted([(only_a, "a1"), (on_both, "a2")])
    assert a.close(only_a, "a1") == 0
    assert a.close(on_both, "a2") == 1
    assert b.sweep() == []


def test_concurrent_sweepers_report_each_user_exactly_once(make_store):
    dead = make_store(ttl=0.2)
    users = [uuid.uuid4() for _ in range(60)]
    for user in users:
        dead.open(user, "x", limit=10)
        dead.open(user, "y", limit=10)
    wait_until(lambda: not dead.all_connected())
    sweepers = [make_store(sweep_batch=7) for _ in range(4)]
    barrier = threading.Barrier(len(sweepers))
    reports: list[uuid.UUID] = []
    lock = threading.Lock()

    def sweep(store: RedisPresenceStore) -> None:
        barrier.wait()
        found = store.sweep()
        with lock:
            reports.extend(found)

    threads = [threading.Thread(target=sweep, args=(store,)) for store in sweepers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(reports) == sorted(users)


def test_scripts_reload_after_redis_forgets_them(make_store, redis_conn):
    """A Redis restart empties its script cache; the store loads its scripts again."""
    store = make_store()
    user = uuid.uuid4()
    store.open(user, "c1", limit=10)
    redis_conn.script_flush()
    assert store.open(user, "c2", limit=10) == 2
    redis_conn.script_flush()
    assert store.heartbeat([(user, "c1"), (user, "c2")]) == []
    redis_conn.script_flush()
    assert store.connected([user]) == {user}
    assert store.sweep() == []


def test_get_presence_store_uses_redis_when_configured(settings, redis_url):
    settings.REDIS_URL = redis_url
    reset_presence_store()
    try:
        store = get_presence_store()
        assert isinstance(store, RedisPresenceStore)
        assert store.prefix == "chat:presence:"
        assert store.ttl_ms == 45_000
    finally:
        reset_presence_store()


class FakeSocket:
    def __init__(self, *, closing: bool = False) -> None:
        self.closing = closing


def test_presence_renew_reopens_what_a_redis_restart_lost_but_not_what_closed(
    settings, redis_url, redis_conn
):
    """After Redis lost every entry, the next heartbeat brings back the connections still open."""
    settings.REDIS_URL = redis_url
    reset_presence_store()
    try:
        store = get_presence_store()
        user, other = uuid.uuid4(), uuid.uuid4()
        live = {
            (user, "c1"): FakeSocket(),
            (user, "c2"): FakeSocket(),
            (other, "c3"): FakeSocket(closing=True),
        }
        for user_id, connection_id in live:
            store.open(user_id, connection_id, limit=10)
        redis_conn.flushdb()  # what a restart of a Redis without persistence leaves
        assert store.connected([user, other]) == set()

        presence_renew(live, still_open=lambda socket: not socket.closing)
        assert store.connected([user, other]) == {user}
        # Counted once each: a third connection fits a limit of 3, a fourth does not.
        assert store.open(user, "c4", limit=3) == 3
        assert store.open(user, "c5", limit=3) is None
        # Renewing again finds them all and re-opens nothing twice.
        presence_renew(live, still_open=lambda socket: not socket.closing)
        assert store.close(user, "c1") == 2
    finally:
        reset_presence_store()


def test_redis_errors_become_service_unavailable():
    """An unreachable Redis is a 503 / ``unavailable`` refusal, never a raw RedisError (a 500 or 1011)."""
    store = RedisPresenceStore(redis_client("redis://127.0.0.1:1/0"), prefix=PREFIX)
    user = uuid.uuid4()
    for call in (
        lambda: store.open(user, "c1", limit=10),
        lambda: store.close(user, "c1"),
        lambda: store.connected([user]),
        store.all_connected,
        lambda: store.heartbeat([(user, "c1")]),
        store.sweep,
    ):
        with pytest.raises(ServiceUnavailable) as refused:
            call()
        assert (refused.value.http_status, refused.value.code) == (503, "unavailable")


# --- how others see connected users: ``ready``'s ``online`` -------------------------


def test_online_names_lists_connected_visible_users_until_they_leave(make_store):
    store, other_process = make_store(), make_store()
    ada, bob, cy = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    epoch = store.status_epoch()
    assert store.open_as(ada, "a1", limit=10, name="ada", epoch=epoch).count == 1
    assert store.open_as(bob, "b1", limit=10, name="Bob", epoch=epoch).shown
    assert other_process.open_as(cy, "c1", limit=10, name=None, epoch=epoch).shown  # invisible
    assert other_process.open_as(ada, "a2", limit=10, name="ada", epoch=epoch).count == 2
    assert store.online_names() == other_process.online_names() == ["ada", "Bob"]
    assert store.close(ada, "a1") == 1
    assert store.online_names() == ["ada", "Bob"]  # ada's other process still has a socket
    assert other_process.close(ada, "a2") == 0
    assert store.online_names() == ["Bob"]
    assert store.open_as(bob, "b2", limit=1, name="Bob", epoch=epoch) is None  # past the limit
    assert store.online_names() == ["Bob"]


def test_a_status_change_shows_or_hides_a_connected_user_and_moves_the_epoch(make_store, redis_conn):
    store = make_store()
    ada, absent = uuid.uuid4(), uuid.uuid4()
    store.open_as(ada, "a1", limit=10, name="ada", epoch=store.status_epoch())
    before = store.status_epoch()
    store.status_changing()
    store.status_changed(ada, None)
    assert store.status_epoch() == before + 2
    assert store.online_names() == []
    store.status_changed(ada, "ada")
    assert store.online_names() == ["ada"]
    store.status_changed(absent, "absent")  # not connected: not listed, no entry left behind
    assert store.online_names() == ["ada"]
    assert redis_conn.hkeys(f"{PREFIX}shown") == [ada.hex.encode()]


def test_a_status_read_before_a_change_began_is_not_recorded(make_store):
    """The epoch read before the status was read has moved: the visibility is left to a new read."""
    store, changer = make_store(), make_store()
    ada, bob = uuid.uuid4(), uuid.uuid4()
    epoch = store.status_epoch()  # then the status is read: visible
    changer.status_changing()  # ... while it goes invisible in another process
    changer.status_changed(ada, None)
    opened = store.open_as(ada, "a1", limit=10, name="ada", epoch=epoch)
    assert (opened.count, opened.shown) == (1, False)
    assert store.online_names() == []  # hidden until a read that no change raced
    assert not store.show(ada, "ada", epoch=epoch)
    assert store.show(ada, None, epoch=store.status_epoch())
    assert store.online_names() == []
    # Shown by a read after the change; a show for a user with no connection records nothing.
    assert store.show(bob, "bob", epoch=store.status_epoch())
    assert store.online_names() == []


def test_a_user_whose_connections_expired_is_not_listed_and_is_swept_from_the_list(make_store, redis_conn):
    store = make_store(ttl=0.3)
    ada = uuid.uuid4()
    store.open_as(ada, "a1", limit=10, name="ada", epoch=store.status_epoch())
    assert store.online_names() == ["ada"]
    wait_until(lambda: store.online_names() == [])
    assert store.sweep() == [ada]
    assert redis_conn.hlen(f"{PREFIX}shown") == 0
    # A user back after expiring starts hidden, whatever a dead process had recorded.
    redis_conn.hset(f"{PREFIX}shown", ada.hex, "stale")
    changed = store.status_epoch() + 1
    store.status_changing()
    assert not store.open_as(ada, "a2", limit=10, name="ada", epoch=changed - 1).shown
    assert store.online_names() == []


@pytest.mark.django_db(transaction=True)
async def test_ready_online_from_the_redis_store(settings, redis_url, make_user, ws_connect):  # noqa: F811
    """Through real sockets with the presence store in Redis: visible, invisible, after disconnects."""
    from channels.db import database_sync_to_async as db

    from accounts import presence

    settings.REDIS_URL = redis_url
    reset_presence_store()
    ada, bob, cy = [await db(make_user)(name) for name in ("ada", "bob", "cy")]
    await db(presence.user_set_status)(user=cy, status="offline")
    a, b = await ws_connect(ada), await ws_connect(bob)
    c = await ws_connect(cy)
    assert b.ready["online"] == ["ada", "bob"]
    assert c.ready["online"] == ["ada", "bob"]
    await b.close()
    assert (await ws_connect(cy)).ready["online"] == ["ada"]
    await db(presence.user_set_status)(user=cy, status="online")
    assert (await ws_connect(ada)).ready["online"] == ["ada", "cy"]
    await a.close()
    await c.close()
    assert sorted(get_presence_store().online_names()) == ["ada", "cy"]  # their other sockets
    assert isinstance(get_presence_store(), RedisPresenceStore)


def test_close_tells_whether_others_saw_the_user(make_store):
    store = make_store()
    ada, cy = uuid.uuid4(), uuid.uuid4()
    epoch = store.status_epoch()
    store.open_as(ada, "a1", limit=10, name="ada", epoch=epoch)
    store.open_as(ada, "a2", limit=10, name="ada", epoch=epoch)
    store.open_as(cy, "c1", limit=10, name=None, epoch=epoch)
    assert store.close_shown(ada, "a1") == (1, True)
    assert store.close_shown(ada, "a2") == (0, True)
    assert store.close_shown(ada, "a2") == (0, False)  # gone already
    assert store.close_shown(cy, "c1") == (0, False)
