"""Aborted handshakes on a Redis-backed server: nothing of them stays in Redis.

Presence entries are keys in Redis and the hub's group memberships are pubsub
subscriptions there, so both can be looked at from outside the server.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.test_abuse_e2e import abort_handshakes, check_no_ghosts
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
