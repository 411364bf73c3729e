"""WebSocket abuse against a real server: handshakes aborted midway must leave no ghost.

The Redis-backed version (presence keys and hub subscriptions looked at in
Redis itself) is tests/scaleout/test_abuse_redis.py.
"""

from __future__ import annotations

import asyncio
import random

import pytest
import websockets

from tests.e2e.rawws import ABORT_POINTS, aborted_handshake
from tests.e2e.wsclient import Socket
from tests.scaleout.helpers import eventually, rest

pytestmark = pytest.mark.e2e

ABORTED = 50
LIMIT = 10  # CHAT_MAX_CONNECTIONS_PER_USER's default


async def abort_handshakes(port: int, account: dict, *, count: int = ABORTED, seed: int = 12) -> list[str]:
    """``count`` handshakes cut at random points (five at a time); returns the points used."""
    rng = random.Random(seed)
    points = [rng.choice(ABORT_POINTS) for _ in range(count)]
    for start in range(0, count, 5):
        await asyncio.gather(
            *(
                aborted_handshake(port, account["username"], account["access"], p)
                for p in points[start : start + 5]
            )
        )
    return points


async def is_online(server, viewer: dict, username: str) -> bool:
    response = await rest("GET", f"{server.base_url}/api/users/{username}", viewer)
    assert response.status_code == 200, response.text
    return response.json()["is_online"]


async def check_no_ghosts(server, account: dict, viewer: dict) -> None:
    """Offline once the aborts are noticed; then the whole connection limit opens, and closing it
    shows the user offline again."""
    name = account["username"]
    await eventually(lambda: _offline(server, viewer, name), timeout=10)
    sockets = []
    try:
        for _ in range(LIMIT):  # one leaked entry and the last of these would close 4429
            sockets.append(await Socket.open(server.ws_base, account))
        assert await is_online(server, viewer, name)
    except websockets.ConnectionClosed as closed:
        raise AssertionError(f"connect refused after aborted handshakes: {closed}") from closed
    finally:
        for socket in sockets:
            await socket.close()
    await eventually(lambda: _offline(server, viewer, name), timeout=10)


async def _offline(server, viewer: dict, name: str) -> bool:
    return not await is_online(server, viewer, name)


async def test_fifty_handshakes_aborted_at_random_points_leave_no_presence(live_server_proc):
    from tests.servers import register_and_login

    server = live_server_proc
    account = await asyncio.to_thread(register_and_login, server.base_url, "abort")
    viewer = await asyncio.to_thread(register_and_login, server.base_url, "view")
    # Some history, so that "mid_history" cuts a frame of a few kilobytes.
    poster = await Socket.open(server.ws_base, viewer)
    for n in range(20):
        await poster.send({"type": "message", "channel": None, "content": f"history {n} " + "x" * 300})
        await poster.recv_type("ack")
    await poster.close()
    points = await abort_handshakes(server.port, account)
    assert set(points) == set(ABORT_POINTS)
    await check_no_ghosts(server, account, viewer)


async def typing_count(socket: Socket, seconds: float) -> int:
    return len(await socket.quiet(seconds, kinds=("typing",)))


async def flood_typing(sockets: list[Socket], frames: int = 50) -> None:
    """``frames`` typing frames in the lobby, spread over ``sockets``, then a ping on each: its
    pong must be the next frame (a dropped typing frame gets no error)."""
    for n in range(frames):
        await sockets[n % len(sockets)].send({"type": "typing", "channel": None})
    for socket in sockets:
        await socket.send({"type": "ping"})
        assert (await socket.recv_type("pong"))["type"] == "pong"
        assert not await socket.quiet(0.1, kinds=("error",))


async def test_typing_floods_reach_others_once_per_two_seconds(live_server_proc):
    from tests.servers import register_and_login

    server = live_server_proc
    typer = await asyncio.to_thread(register_and_login, server.base_url, "typer")
    watcher = await asyncio.to_thread(register_and_login, server.base_url, "watch")
    t1, t2 = await Socket.open(server.ws_base, typer), await Socket.open(server.ws_base, typer)
    w = await Socket.open(server.ws_base, watcher)
    await flood_typing([t1, t2])
    assert await typing_count(w, 1.0) == 1
    await asyncio.sleep(1.2)  # the 2 s window is over
    await flood_typing([t1])
    assert await typing_count(w, 1.0) == 1
    for socket in (t1, t2, w):
        await socket.close()
