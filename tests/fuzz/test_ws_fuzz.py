"""Fuzzing the WebSocket with Hypothesis against a real server: never a 1011, never an exception logged.

Every client frame type of the contract, with fields of the right type, of the
wrong type, missing or extra; huge and deeply nested values; NUL and lone
surrogates; invalid UTF-8 in text frames; binary and empty frames; plain
text. A fixed number of frames with a fixed seed (``derandomize``), spread over
a few sockets of one user. After every frame the socket is pinged: it must
answer ``pong`` (so it is still usable after whatever ``error`` frame came
first). Frames over 65,536 bytes legitimately close with 1009, and text frames
that are not UTF-8 with 1007; the socket then reconnects and goes on.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field

import hypothesis
import pytest
import requests
import websockets
from hypothesis import strategies as st

from tests.fuzz.conftest import server_failures
from tests.servers import bearer, register_and_login

pytestmark = [pytest.mark.e2e, pytest.mark.services]

FRAMES = 5_000  # per run: every CI run sends the same frames (derandomized)
BATCH = 8  # frames per Hypothesis example, spread over the sockets
SOCKETS = 4
MAX_BYTES = 65_536
# Close codes a frame may legitimately cause: too big, and a text frame that is not UTF-8.
ALLOWED_CLOSES = {1009: "too_big", 1007: "bad_utf8"}
# Error codes that mean the server failed rather than refused the input.
FAILURE_CODES = {"internal_error", "unavailable"}
TYPES = [
    "message",
    "edit",
    "delete",
    "react",
    "unreact",
    "join",
    "leave",
    "typing",
    "history",
    "sync",
    "read",
    "ping",
]

# --- strategies ---------------------------------------------------------------------------

# Text with what databases and encoders trip on: NUL, controls, lone surrogates, astral characters.
edgy_text = st.text(
    alphabet=st.characters(categories=["Cs", "Cc", "Zs", "So", "Lo", "Ll", "Nd"])
    | st.sampled_from(["\x00", "\ud800", "\udfff", "\u2028", "\ufeff", "\U0001f44d", "'", '"', "\\"]),
    max_size=40,
)
big_ints = st.integers(min_value=-(2**70), max_value=2**70)
scalars = (
    st.none()
    | st.booleans()
    | big_ints
    | st.integers(min_value=-3, max_value=300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | edgy_text
)
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(edgy_text, kids, max_size=4),
    max_leaves=10,
)


class Deep:
    """A value serialized as ``depth`` nested lists (or objects): built as text, not as Python objects."""

    def __init__(self, depth: int, opener: str) -> None:
        self.depth, self.opener = depth, opener

    def text(self) -> str:
        if self.opener == "[":
            return "[" * self.depth + "]" * self.depth
        return '{"a":' * self.depth + "1" + "}" * self.depth


class Huge:
    """A string of ``size`` characters of ``char``: near, at or over the frame limit once framed."""

    def __init__(self, size: int, char: str) -> None:
        self.size, self.char = size, char

    def text(self) -> str:
        return json.dumps(self.char * self.size)


deep_values = st.builds(Deep, st.integers(min_value=50, max_value=3_000), st.sampled_from(["[", "{"]))
huge_values = st.builds(
    Huge,
    st.sampled_from([1_000, 1_001, 16_384, 40_000, 65_000, 65_600, 70_000, 200_000]),
    st.sampled_from(["x", "é", "\U0001f44d", " "]),
)


def any_value(specific: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly the field's own kind of value, sometimes anything at all."""
    return st.one_of(specific, specific, specific, json_values, deep_values, huge_values)


@dataclass
class World:
    """What exists on the server: names and ids worth aiming at."""

    own: str
    other: str
    message_ids: list[str]


def field_strategies(world: World) -> dict[str, st.SearchStrategy]:
    names = st.sampled_from(
        [None, world.own, world.own.upper(), world.other, "missing-channel", "", "x" * 65, "a\x00b", "\ud800"]
    ) | st.text(max_size=70)
    ids = st.sampled_from(world.message_ids) | st.uuids().map(str) | st.text(max_size=40)
    contents = (
        edgy_text
        | st.sampled_from(["hi", " ", "x" * 1000, "x" * 1001, "\x00", "<b>x</b>", "@" + world.own])
        | st.integers(min_value=0, max_value=1001).map(lambda n: "y" * n)
    )
    emoji = (
        st.sampled_from(["\U0001f44d", ":ok:", "a" * 33, " ", "\x00", "\U0001f44d\U0001f3fd", ""]) | edgy_text
    )
    positions = st.integers(min_value=-2, max_value=2**63) | big_ints
    after = st.dictionaries(names.filter(lambda n: n is not None) | st.just(""), positions, max_size=4)
    return {
        "channel": any_value(names),
        "content": any_value(contents),
        "client_id": any_value(st.uuids().map(str) | edgy_text),
        "reply_to": any_value(ids),
        "id": any_value(ids),
        "emoji": any_value(emoji),
        "before": any_value(ids),
        "limit": any_value(st.integers(min_value=-2, max_value=500) | big_ints),
        "after": any_value(after),
        "seq": any_value(positions),
    }


FIELDS = {
    "message": ["channel", "content", "client_id", "reply_to"],
    "edit": ["id", "content", "client_id"],
    "delete": ["id", "client_id"],
    "react": ["id", "emoji", "client_id"],
    "unreact": ["id", "emoji", "client_id"],
    "join": ["channel"],
    "leave": ["channel"],
    "typing": ["channel"],
    "history": ["channel", "before", "limit"],
    "sync": ["after"],
    "read": ["channel", "seq"],
    "ping": [],
}


@dataclass
class Wire:
    """One frame as sent: text (possibly not UTF-8) or binary bytes."""

    payload: bytes
    text: bool
    label: str

    @property
    def too_big(self) -> bool:
        return len(self.payload) > MAX_BYTES

    @property
    def valid_utf8(self) -> bool:
        try:
            self.payload.decode()
        except UnicodeDecodeError:
            return False
        return True


def serialize(value) -> str:
    if isinstance(value, Deep | Huge):
        return value.text()
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{serialize(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(serialize(v) for v in value) + "]"
    return json.dumps(value)


def object_frames(world: World) -> st.SearchStrategy[Wire]:
    fields = field_strategies(world)

    def frame_for(kind: str) -> st.SearchStrategy[dict]:
        wanted = FIELDS[kind]
        # Required and optional alike may be left out; the type is sometimes wrong.
        return st.fixed_dictionaries(
            {"type": st.just(kind) | st.just(kind) | st.just(kind) | any_value(st.sampled_from(TYPES))},
            optional={name: fields[name] for name in wanted} | {"extra": json_values, "type2": json_values},
        )

    frames = st.sampled_from(TYPES).flatmap(frame_for) | st.dictionaries(edgy_text, json_values, max_size=4)
    return st.builds(
        lambda frame, ascii_only: Wire(
            serialize(frame).encode("utf-8", "surrogatepass")
            if not ascii_only
            else _ascii(serialize(frame)).encode(),
            text=True,
            label=f"object {frame.get('type')!r}"[:60],
        ),
        frames,
        st.booleans(),
    )


def _ascii(text: str) -> str:
    """Escape every non-ASCII character the way JSON allows (lone surrogates become \\udXXX)."""
    return "".join(c if ord(c) < 128 else "".join(f"\\u{u:04x}" for u in _utf16(c)) for c in text)


def _utf16(char: str) -> list[int]:
    data = char.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def raw_frames() -> st.SearchStrategy[Wire]:
    text = st.one_of(
        edgy_text,
        st.sampled_from(["", " ", "hello", "42", '"hi"', "{broken", "null", "[]", "{}", '{"type":null}']),
        deep_values.map(lambda d: d.text()),
        deep_values.map(lambda d: '{"type":"message","channel":null,"content":' + d.text() + "}"),
        huge_values.map(lambda h: '{"type":"message","channel":null,"content":' + h.text() + "}"),
        huge_values.map(lambda h: h.text()),
    )
    return st.one_of(
        text.map(lambda t: Wire(t.encode("utf-8", "surrogatepass"), text=True, label="text")),
        st.binary(max_size=64).map(lambda b: Wire(b, text=True, label="bytes as text")),
        st.binary(max_size=64).map(lambda b: Wire(b, text=False, label="binary")),
        st.sampled_from([MAX_BYTES, MAX_BYTES + 1]).map(
            lambda n: Wire(b"x" * n, text=False, label=f"binary of {n}")
        ),
    )


# --- the run --------------------------------------------------------------------------------


@dataclass
class Tally:
    frames: int = 0
    closes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)


class FuzzSocket:
    """One socket of the fuzzing user, reopened after a legitimate close."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ws = None
        self.previous: Wire | None = None
        self.markers = 0

    async def open(self) -> None:
        """Connect and read ``ready`` and ``history``; a refusal (4429 while the old socket is
        still counted) is retried for a while."""
        for attempt in range(50):
            self.ws = await websockets.connect(self.url, max_size=None, open_timeout=20)
            try:
                for expected in ("ready", "history"):
                    frame = json.loads(await asyncio.wait_for(self.ws.recv(), 20))
                    assert frame["type"] == expected, frame
                return
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                print(f"reconnect refused with {code} (attempt {attempt})")
                await asyncio.sleep(0.2)
        raise AssertionError("could not reconnect")

    async def exchange(self, wire: Wire, tally: Tally) -> None:
        """Send one frame, then a ping and a marker; read up to the marker's error frame, which must
        come after a pong. A close is checked, then the socket reopened."""
        tally.frames += 1
        self.previous, previous = wire, self.previous
        # The fuzzed frame may be a ping itself: the marker (an unknown type, named uniquely) ends the reply.
        self.markers += 1
        marker = f"marker-{self.markers}"
        try:
            await self.ws.send(wire.payload, text=wire.text)
            await self.ws.send('{"type":"ping"}')
            await self.ws.send(json.dumps({"type": marker}))
            pongs = 0
            while True:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
                if frame["type"] == "pong":
                    pongs += 1
                elif frame["type"] == "error" and marker in frame["detail"]:
                    if pongs == 0:
                        tally.problems.append(f"no pong after {wire.label}: {wire.payload[:200]!r}")
                    return
                elif frame["type"] == "error":
                    tally.errors[frame["code"]] += 1
                    if frame["code"] in FAILURE_CODES:
                        tally.problems.append(f"{frame} after {wire.label}: {wire.payload[:200]!r}")
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            tally.closes[code] += 1
            # A frame too big or not UTF-8 may also see the connection drop before the close is read.
            legitimate = (code in (1009, None) and wire.too_big) or (
                code in (1007, None) and wire.text and not wire.valid_utf8
            )
            if not legitimate:
                tally.problems.append(
                    f"close {code} after {wire.label} ({len(wire.payload)} bytes): {wire.payload[:200]!r}"
                    f" (the previous frame: {previous.label if previous else None})"
                )
            await self.open()
        except TimeoutError:
            tally.problems.append(f"no pong within 30 s after {wire.label}: {wire.payload[:200]!r}")
            await self.ws.close()
            await self.open()


def prepare_world(base: str, account: dict) -> World:
    """A channel of the user's, one of another user's, and a few messages to aim edits at."""
    other = register_and_login(base, prefix="fuzzo")
    own_name, other_name = f"f{uuid.uuid4().hex[:10]}", f"g{uuid.uuid4().hex[:10]}"
    for who, name in ((account, own_name), (other, other_name)):
        response = requests.post(
            f"{base}/api/channels/", json={"name": name}, headers=bearer(who), timeout=30
        )
        assert response.status_code == 201, response.text
    ids = []
    for who, channel in ((account, None), (account, own_name), (other, other_name), (other, None)):
        response = requests.post(
            f"{base}/api/messages",
            json={"channel": channel, "content": "seed"},
            headers=bearer(who),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return World(own=own_name, other=other_name, message_ids=ids)


def test_fuzzed_frames_never_break_the_server(postgres_server):
    server = postgres_server()
    account = register_and_login(server.base_url, prefix="fuzz")
    world = prepare_world(server.base_url, account)
    url = f"{server.ws_base}/api/ws/{account['username']}?token={account['access']}"
    loop = asyncio.new_event_loop()
    sockets = [FuzzSocket(url) for _ in range(SOCKETS)]
    tally = Tally()

    def run(*coroutines) -> None:
        async def together() -> None:
            await asyncio.gather(*coroutines)

        loop.run_until_complete(together())

    wires = object_frames(world) | object_frames(world) | object_frames(world) | raw_frames()

    @hypothesis.given(batch=st.lists(wires, min_size=BATCH, max_size=BATCH))
    @hypothesis.settings(
        max_examples=FRAMES // BATCH,
        derandomize=True,  # the same frames on every run
        database=None,
        deadline=None,
        phases=[hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def send(batch: list[Wire]) -> None:
        async def over(socket: FuzzSocket, share: list[Wire]) -> None:
            for wire in share:
                await socket.exchange(wire, tally)

        run(*(over(socket, batch[i::SOCKETS]) for i, socket in enumerate(sockets)))

    try:
        run(*(socket.open() for socket in sockets))
        send()
        run(*(socket.ws.close() for socket in sockets))
    finally:
        loop.close()
    print(f"fuzzed {tally.frames} frames; closes {dict(tally.closes)}; errors {dict(tally.errors)}")
    assert tally.frames >= FRAMES * 0.9, tally.frames
    assert not tally.problems, "\n".join(tally.problems[:30])
    assert tally.closes[1011] == 0
    assert server_failures(server) == []
