"""A lean chat client on picows: one listener object per WebSocket, callbacks only.

Each frame is parsed once with orjson in ``on_ws_frame`` and handled there,
with no task or future per frame, so one load-tool core can follow tens of
thousands of deliveries per second. Scenarios attach ``on_message`` and
``on_ack`` hooks; the run's own messages are recognised by a ``client_id``
prefix (the run tag) and recorded in the client's per-stream ``Track``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.accounting import Ledger, Track

CLOSE_TOO_MANY = 4429


class ConnectError(Exception):
    pass


def ws_url(base: str, username: str, token: str) -> str:
    return f"{base}/api/ws/{quote(username)}?token={quote(token)}"


def stream_of(channel: str | None) -> str:
    return channel or ""


class ChatClient(WSListener):
    """One user's connection; ``ready`` resolves after the ``ready`` and ``connect`` history frames."""

    def __init__(self, username: str, tag: str, ledger: Ledger | None = None) -> None:
        self.username = username
        self.tag = tag
        self.ledger = ledger
        self.transport: WSTransport | None = None
        self.channels: list[str] = []
        self.tracks: dict[str, Track] = {}
        self.close_code: int | None = None
        self.errors: list[dict] = []
        self.frames = 0
        self.sent = 0
        self.on_message: Callable[[ChatClient, dict, float], None] | None = None
        self.on_ack: Callable[[ChatClient, dict], None] | None = None
        self._fragments: bytearray | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._got_ready = False

    # --- picows callbacks ---------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            if frame.fin:
                self.on_text(frame.get_payload_as_bytes())
            else:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
        elif kind == WSMsgType.CONTINUATION and self._fragments is not None:
            self._fragments += frame.get_payload_as_memoryview()
            if frame.fin:
                data, self._fragments = bytes(self._fragments), None
                self.on_text(data)
        elif kind == WSMsgType.CLOSE:
            payload = frame.get_payload_as_bytes()
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            transport.send_close()
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectError(f"{self.username}: closed with {self.close_code}"))
        if not self.closed.done():
            self.closed.set_result(None)

    # --- protocol -----------------------------------------------------------

    def on_text(self, data: bytes) -> None:
        """Handle one server frame; public so tests can feed synthetic frames."""
        self.frames += 1
        frame = orjson.loads(data)
        kind = frame.get("type")
        if kind == "message":
            message = frame["message"]
            client_id = message.get("client_id")
            if client_id and client_id.startswith(self.tag):
                stream = stream_of(message.get("channel"))
                track = self.tracks.get(stream)
                if track is None:
                    track = self.subscribe(stream)
                track.record(message["seq"])
                if self.on_message is not None:
                    self.on_message(self, message, time.perf_counter())
        elif kind == "ack":
            client_id = frame.get("client_id")
            if client_id and client_id.startswith(self.tag) and self.on_ack is not None:
                self.on_ack(self, frame)
        elif kind == "ready":
            self.channels = frame.get("channels", [])
            self._got_ready = True
        elif kind == "history":
            if frame.get("reason") == "connect" and self._got_ready and not self.ready.done():
                self.ready.set_result(None)
        elif kind == "error":
            self.errors.append(frame)

    def subscribe(self, stream: str) -> Track:
        track = self.ledger.subscribe(self, stream) if self.ledger is not None else Track()
        self.tracks[stream] = track
        return track

    def send_message(self, channel: str | None, content: str, client_id: str) -> None:
        payload = {"type": "message", "channel": channel, "content": content, "client_id": client_id}
        self.transport.send(WSMsgType.TEXT, orjson.dumps(payload))
        self.sent += 1

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_disconnected:
            self.transport.send_close()
            self.transport.disconnect()


async def connect(
    base: str, username: str, token: str, *, tag: str, ledger: Ledger | None = None, timeout: float = 30.0
) -> ChatClient:
    """Open one WebSocket and wait for ``ready`` and the connect ``history``."""
    try:
        _, client = await ws_connect(
            lambda: ChatClient(username, tag, ledger),
            ws_url(base, username, token),
            websocket_handshake_timeout=timeout,
            max_frame_size=16 * 1024 * 1024,
        )
    except Exception as exc:
        raise ConnectError(f"{username}: {exc!r}") from exc
    try:
        await asyncio.wait_for(asyncio.shield(client.ready), timeout)
    except Exception:
        client.close()
        raise
    return client


async def connect_many(
    base: str,
    users: Iterable[tuple[str, str]],
    *,
    tag: str,
    ledger: Ledger | None = None,
    concurrency: int = 50,
) -> list[ChatClient]:
    """Connect every ``(username, token)``, ``concurrency`` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(username: str, token: str) -> ChatClient:
        async with gate:
            return await connect(base, username, token, tag=tag, ledger=ledger)

    results = await asyncio.gather(*(one(u, t) for u, t in users), return_exceptions=True)
    clients = [r for r in results if isinstance(r, ChatClient)]
    failures = [r for r in results if not isinstance(r, ChatClient)]
    if failures:
        await close_all(clients)
        raise ConnectError(f"{len(failures)} of {len(results)} connections failed; first: {failures[0]!r}")
    return clients


async def close_all(clients: Iterable[ChatClient], timeout: float = 10.0) -> None:
    clients = list(clients)
    for client in clients:
        client.close()
    waits = [client.closed for client in clients if not client.closed.done()]
    if waits:
        await asyncio.wait(waits, timeout=timeout)


async def quiet(clients: list[ChatClient], *, settle: float = 0.5, limit: float = 60.0) -> None:
    """Wait until no client has received a frame for ``settle`` seconds (presence storms end)."""
    deadline = time.monotonic() + limit
    last = -1
    while time.monotonic() < deadline:
        total = sum(client.frames for client in clients)
        if total == last:
            return
        last = total
        await asyncio.sleep(settle)


def parse_sent_at(content: str) -> float:
    """The send time embedded as the last word of a run message's content."""
    return float(content.rsplit(" ", 1)[1])


def make_content(tag: str, number: int, sent_at: float) -> str:
    return f"{tag} {number} {sent_at:.6f}"


def tokens_for(tokens: dict[str, str], prefix: str, count: int) -> list[tuple[str, str]]:
    """The first ``count`` users of a seeded prefix (``PREFIX_000000``...), with their tokens."""
    names = sorted(name for name in tokens if name.startswith(f"{prefix}_"))
    if len(names) < count:
        raise ValueError(f"tokens hold {len(names)} users of prefix {prefix!r}, {count} needed")
    return [(name, tokens[name]) for name in names[:count]]


def any_value(mapping: dict[str, Any]) -> Any:
    return next(iter(mapping.values()))
