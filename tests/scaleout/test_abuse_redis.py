"""Aborted handshakes on a Redis-backed server: nothing of them stays in Redis.

Presence entries are keys in Redis and the hub's group memberships are pubsub
subscriptions there, so both can be looked at from outside the server.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.test_abuse_e2e import abort_handshakes, check_no_ghosts, flood_typing, typing_count
from tests.e2e.wsclient import Socket
from tests.scaleout.helpers import account, eventually, rest

pytestmark = [pytest.mark.services, pytest.mark.e2e]


async def test_aborted_handshakes_leave_no_presence_key_or_hub_subscription(cluster, redis_conn):
    (server,) = cluster(1)
    victim, viewer = await account(server, "abort"), await account(server, "view")
    me = (await rest("GET", f"{server.base_url}/api/users/me", victim)).json()
    user_hex = uuid.UUID(me["id"]).hex
    presence_key = f"chat:presence:u:{user_hex}"
    user_channel = f"chat__group__chat.u.{user_hex}"  # the pubsub layer's channel for the user's group

    def nothing_left() -> bool:
        ((_, subscribers),) = redis_conn.pubsub_numsub(user_channel)
        held = [m for m in redis_conn.zrange("chat:presence:conns", 0, -1) if m.startswith(user_hex.encode())]
        return subscribers == 0 and redis_conn.zcard(presence_key) == 0 and not held

    socket = await Socket.open(server.ws_base, victim)
    assert not nothing_left(), "an open socket shows in Redis (the check looks at the right keys)"
    await socket.close()
    await eventually(nothing_left, timeout=10)
    await abort_handshakes(server.port, victim)
    await eventually(nothing_left, timeout=10)
    await check_no_ghosts(server, victim, viewer)
    await eventually(nothing_left, timeout=10)


async def test_the_typing_throttle_holds_across_server_processes(cluster, redis_conn):
    first, second = cluster(2)
    typer, watcher = await account(first, "typer"), await account(first, "watch")
    on_first, on_second = await Socket.open(first.ws_base, typer), await Socket.open(second.ws_base, typer)
    watching = await Socket.open(first.ws_base, watcher)
    await flood_typing([on_first, on_second])
    assert await typing_count(watching, 1.5) == 1
    assert redis_conn.keys("chat:typing:*"), "the throttle's key is in Redis"
    for socket in (on_first, on_second, watching):
        await socket.close()


async def test_typing_throttles_share_redis_and_an_outage_falls_back_to_the_local_check(redis_url):
    from core.redis import redis_client
    from realtime.typing_throttle import TypingThrottle

    one = TypingThrottle(redis_client(redis_url), prefix="test:typing:")
    other = TypingThrottle(redis_client(redis_url), prefix="test:typing:")  # another process
    assert await one.allow("u1", "")
    assert not await other.allow("u1", "")  # its local check passes; Redis says no
    assert await other.allow("u1", "c1") and await other.allow("u2", "")
    assert not await one.allow("u1", "")  # the local check answers without Redis
    away = TypingThrottle(redis_client("redis://127.0.0.1:1/0"), prefix="test:typing:")
    assert await away.allow("u1", "")  # typing is best effort: an outage does not silence it
    assert not await away.allow("u1", "")
