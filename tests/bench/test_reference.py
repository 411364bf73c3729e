"""The reference server (``bench/reference.py``) speaks the frames the load tool needs, as ours does.

Real sockets throughout: the server is served on a free port in the test's
event loop (or, for the scenarios, started as ``bench/run`` starts it), and
clients are ``websockets`` for frame-level checks and the load tool's own
``bench.client`` for the rest.
"""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import asynccontextmanager
from urllib.request import urlopen

import orjson
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.server import serve

from bench import orchestrate, reference, scenarios
from bench.client import close_all, connect
from messaging import seeding
from messaging.payloads import message_row_payload
from realtime import frames

MEMBERS = {"Ann_1": ["Room-A", "beta"], "bob_1": ["Room-A"], "cat_1": ["beta"], "dan_1": []}


@asynccontextmanager
async def reference_server(members=MEMBERS):
    async with serve(
        reference.make_handler(reference.Hub(members)),
        "127.0.0.1",
        0,
        process_request=reference.process_request,
        compression=None,
        max_size=reference.MAX_FRAME,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def open_socket(base: str, username: str):
    """A raw connection past its ``ready`` and connect ``history``; returns (socket, ready, history)."""
    socket = await ws_connect(f"{base}/api/ws/{username}?token=anything")
    ready = orjson.loads(await socket.recv())
    history = orjson.loads(await socket.recv())
    return socket, ready, history


async def test_ready_lists_the_users_channels_then_the_connect_history():
    async with reference_server() as base:
        socket, ready, history = await open_socket(base, "ann_1")  # names are case-insensitive
        await socket.close()
    assert (
        ready["type"] == "ready"
        and ready.keys() == frames.ready_frame(user={}, channels=[], online=[], unread={}).keys()
    )
    assert ready["channels"] == ["beta", "Room-A"]  # sorted ignoring case, as stored
    assert ready["user"]["username"] == "Ann_1" and ready["online"] == []
    assert history == {"type": "history", "reason": "connect", "messages": [], "has_more": False}


async def test_a_message_is_acked_and_reaches_the_members_only():
    async with reference_server() as base:
        ann, _, _ = await open_socket(base, "Ann_1")
        bob, _, _ = await open_socket(base, "bob_1")
        cat, _, _ = await open_socket(base, "cat_1")
        for number in (1, 2):
            frame = {
                "type": "message",
                "channel": "room-a",
                "content": f"hi {number}",
                "client_id": f"c{number}",
            }
            await ann.send(orjson.dumps(frame).decode())
        got = {"ann": [orjson.loads(await ann.recv()) for _ in range(4)]}  # two messages, two acks
        got["bob"] = [orjson.loads(await bob.recv()) for _ in range(2)]
        await ann.send("plain text goes to the lobby")
        lobby = [orjson.loads(await s.recv()) for s in (bob, cat)]
        for socket in (ann, bob, cat):
            await socket.close()
    acks = [frame for frame in got["ann"] if frame["type"] == "ack"]
    assert [(a["client_id"], a["seq"], a["rev"]) for a in acks] == [("c1", 1, 1), ("c2", 2, 2)]
    assert acks[0].keys() == frames.ack_frame(client_id="", message_id="", seq=0, rev=0).keys()
    for name in ("ann", "bob"):
        messages = [frame["message"] for frame in got[name] if frame["type"] == "message"]
        assert [(m["seq"], m["channel"], m["content"]) for m in messages] == [
            (1, "Room-A", "hi 1"),
            (2, "Room-A", "hi 2"),
        ]
        assert messages[0]["id"] == acks[0]["id"] and messages[0]["username"] == "Ann_1"
        assert messages[0].keys() == message_row_payload((None,) * 12).keys()  # the contract's message
    # cat is not in Room-A: the first frame it got is the lobby message, seq 1 of the lobby.
    assert [(f["type"], f["message"]["channel"], f["message"]["seq"]) for f in lobby] == [
        ("message", None, 1),
        ("message", None, 1),
    ]
    assert lobby[1]["message"]["content"] == "plain text goes to the lobby"


async def test_ping_is_answered_and_other_frames_ignored():
    async with reference_server() as base:
        socket, _, _ = await open_socket(base, "dan_1")
        await socket.send('{"type": "typing", "channel": null}')
        await socket.send('{"type": "ping"}')
        assert orjson.loads(await socket.recv()) == {"type": "pong"}
        await socket.close()


async def test_the_load_tool_connects_and_counts_deliveries():
    async with reference_server() as base:
        ann = await connect(base, "Ann_1", "t", tag="x-")
        bob = await connect(base, "bob_1", "t", tag="x-")
        dan = await connect(base, "dan_1", "t", tag="x-")
        assert (ann.channels, bob.channels, dan.channels) == (["beta", "Room-A"], ["Room-A"], [])
        acks, seen = [], []
        ann.on_ack = lambda client, frame: acks.append(frame["seq"])
        for client in (ann, bob, dan):
            client.on_message = lambda client, message, now: seen.append((client.username, message["seq"]))
        ann.send_message("Room-A", "one", "x-1")
        ann.send_message(None, "two", "x-2")
        while len(seen) < 5 or not acks:
            await asyncio.sleep(0.01)
        await close_all([ann, bob, dan])
    assert sorted(seen) == [("Ann_1", 1), ("Ann_1", 1), ("bob_1", 1), ("bob_1", 1), ("dan_1", 1)]
    assert acks == [1, 1]


def test_health_answers_plain_http():
    response = reference.process_request(FakeConnection(), FakeRequest("/api/health"))
    assert response.status_code == 200
    assert reference.process_request(FakeConnection(), FakeRequest("/api/ws/ann_1?token=x")) is None
    assert reference.process_request(FakeConnection(), FakeRequest("/elsewhere")).status_code == 404


class FakeRequest:
    def __init__(self, path: str) -> None:
        self.path = path


class FakeConnection:
    def respond(self, status, text):
        from websockets.http11 import Response

        return Response(int(status), status.phrase, {}, text.encode())


@pytest.mark.django_db
def test_members_are_dumped_from_the_seeded_database(tmp_path):
    seeding.seed_chat(
        users=6, channels=2, members_per_channel=3, messages=0, prefix="m", password="pw-Secret-123"
    )
    seeding.seed_chat(
        users=2, channels=0, members_per_channel=1, messages=0, prefix="q", password="pw-Secret-123"
    )
    path = tmp_path / "members.json"
    reference.write_members(path)
    members = json.loads(path.read_text())
    # seed_chat's layout: channel j holds the 3 users from user 3j on.
    assert members == {
        "m_000000": ["m-room0000"], "m_000001": ["m-room0000"], "m_000002": ["m-room0000"],
        "m_000003": ["m-room0001"], "m_000004": ["m-room0001"], "m_000005": ["m-room0001"],
        "q_000000": [], "q_000001": [],
    }  # fmt: skip


# --- the scenarios, as bench/run drives them ------------------------------------


SEED = [("fan", 6, 1, 6), ("room", 6, 2, 3), ("idle", 12, 0, 1)]  # as test_smoke_e2e seeds ours


def seeded_members() -> dict[str, list[str]]:
    """What ``seed_chat`` gives these prefixes (``tests/bench/test_seed_chat.py`` checks the layout)."""
    members: dict[str, list[str]] = {}
    for prefix, users, channels, per_channel in SEED:
        names = [seeding.username_for(prefix, i) for i in range(users)]
        members.update({name: [] for name in names})
        for j in range(channels):
            for t in range(per_channel):
                members[names[(j * per_channel + t) % users]].append(seeding.channel_name_for(prefix, j))
    return members


@pytest.fixture(scope="module")
def reference_process(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    members = folder / "members.json"
    members.write_text(json.dumps(seeded_members()))
    port = orchestrate.free_port()
    server = orchestrate.Server(
        dict(os.environ), port, folder / "server.log", command=orchestrate.reference_command(port, members)
    )
    server.start()  # polls /api/health, as bench/run does
    yield server
    server.stop()
    assert server.process.returncode == 0  # SIGTERM stops it cleanly


@pytest.fixture
def ctx(reference_process):
    tokens = dict.fromkeys(seeded_members(), "ignored")
    return scenarios.Context(
        http_base=f"http://127.0.0.1:{reference_process.port}",
        tokens=tokens,
        server_pid=reference_process.pid,
        drain_seconds=10,
    )


def assert_clean(rows):
    for row in rows:
        assert "error" not in row, row
        assert not row["flagged"], row


@pytest.mark.e2e
def test_reference_process_answers_health(reference_process):
    with urlopen(f"http://127.0.0.1:{reference_process.port}/api/health", timeout=5) as response:
        assert response.status == 200


@pytest.mark.e2e
async def test_scenarios_against_the_reference(ctx):
    fanout = await scenarios.fanout(ctx, subscribers=5, seconds=0.5, window=4, rate=5, rate_seconds=0.4)
    rooms = await scenarios.rooms(ctx, channels=2, members=3, seconds=0.5)
    idle = await scenarios.idle(ctx, connections=10, hold=0.2)
    connects = await scenarios.connects(ctx, total=12, concurrency=4, users=6)
    assert_clean(fanout + rooms + idle + connects)
    assert fanout[0]["delivered"] == fanout[0]["expected"] > 0
    assert rooms[0]["delivered"] == rooms[0]["expected"] > 0
    assert idle[0]["delivered"] == 10 and idle[0]["rss_per_connection_kib"] is not None
    assert connects[0]["handshakes"] == 12
