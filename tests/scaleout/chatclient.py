"""A resilient chat client for the fault tests: it fails over, syncs and resends.

It keeps what a careful real client keeps: per stream, every message it has
(seq -> id, from live frames and ``sync`` history), the acknowledgement of
each ``client_id`` it sent, and, per connection, the live seqs in arrival
order, so a test can check that each connection got each message once and in
order. After a reconnect it ignores the ``connect`` history (everything after
its last seq comes from ``sync``) and resends what was never acknowledged with
the same ``client_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from typing import Any

import websockets

WINDOW = 4  # unacknowledged messages in flight per client


class ChatClient:
    def __init__(self, account: dict, *, name: str) -> None:
        self.account = account
        self.name = name
        self.server = None
        self.ws = None
        self.reader: asyncio.Task | None = None
        self.closed = asyncio.Event()
        self.synced = asyncio.Event()
        self.acked_event = asyncio.Event()
        self.seen: dict[str, dict[int, str]] = defaultdict(dict)  # "" = the lobby
        self.live: list[dict[str, list[int]]] = []  # per connection: stream -> live seqs
        self.sent: dict[str, str | None] = {}  # client_id -> channel, in sending order
        self.acked: dict[str, tuple[str, int]] = {}  # client_id -> (id, seq)
        self.errors: list[dict] = []
        self.conflicts: list[str] = []
        self.connections = 0
        self.resent = 0  # messages sent again after a failover

    # --- connection ---------------------------------------------------------

    async def connect(self, server, *, resume: bool = False) -> None:
        url = f"{server.ws_base}/api/ws/{self.account['username']}?token={self.account['access']}"
        self.ws = await websockets.connect(url, max_size=None)
        self.server = server
        ready = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        assert ready["type"] == "ready", ready
        history = json.loads(await asyncio.wait_for(self.ws.recv(), 10))
        assert history["type"] == "history", history
        if not resume:
            for message in history["messages"]:
                self._have(message)
        self.closed.clear()
        self.synced.clear()
        self.live.append(defaultdict(list))
        self.connections += 1
        self.reader = asyncio.ensure_future(self._read(self.ws, self.live[-1]))
        if resume:
            after = {stream: max(seqs, default=0) for stream, seqs in self.seen.items()}
            await self.ws.send(json.dumps({"type": "sync", "after": after}))
            await asyncio.wait_for(self.synced.wait(), 30)
            for client_id in self.unacked():
                self.resent += 1
                await self._send(client_id)

    async def failover(self, server, attempts: int = 50) -> None:
        """Reconnect to ``server``, sync from the last seqs and resend what was never acknowledged."""
        for _ in range(attempts):
            try:
                await self.connect(server, resume=True)
                return
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} could not reconnect to {server.base_url}")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.reader is not None:
            await asyncio.gather(self.reader, return_exceptions=True)

    # --- frames -------------------------------------------------------------

    def _have(self, message: dict) -> None:
        stream = message["channel"] or ""
        known = self.seen[stream].get(message["seq"])
        if known is not None and known != message["id"]:
            self.conflicts.append(f"{stream}#{message['seq']}: {known} and {message['id']}")
        self.seen[stream][message["seq"]] = message["id"]

    async def _read(self, ws, live: dict[str, list[int]]) -> None:
        try:
            async for text in ws:
                frame = json.loads(text)
                kind = frame["type"]
                if kind == "message":
                    message = frame["message"]
                    live[message["channel"] or ""].append(message["seq"])
                    self._have(message)
                elif kind == "history" and frame["reason"] == "sync":
                    for message in frame["messages"]:
                        self._have(message)
                elif kind == "synced":
                    self.synced.set()
                elif kind == "ack":
                    self.acked[frame["client_id"]] = (frame["id"], frame["seq"])
                    self.acked_event.set()
                elif kind == "error":
                    self.errors.append(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()

    # --- sending ------------------------------------------------------------

    def unacked(self) -> list[str]:
        return [client_id for client_id in self.sent if client_id not in self.acked]

    async def _send(self, client_id: str) -> None:
        frame = {
            "type": "message",
            "channel": self.sent[client_id],
            "content": client_id,
            "client_id": client_id,
        }
        with contextlib.suppress(websockets.ConnectionClosed):  # resent after the failover
            await self.ws.send(json.dumps(frame))

    async def send_many(
        self, channels: list[str | None], count: int, *, fallback, pace: float = 0.01
    ) -> None:
        """Send ``count`` messages round-robin over ``channels``; fail over to ``fallback`` when cut off."""
        n = 0
        while n < count or self.unacked():
            if self.closed.is_set():
                await self.failover(fallback)
                continue
            if n >= count or len(self.unacked()) >= WINDOW:
                self.acked_event.clear()
                closed = asyncio.ensure_future(self.closed.wait())
                acked = asyncio.ensure_future(self.acked_event.wait())
                done, pending = await asyncio.wait({closed, acked}, timeout=30, return_when="FIRST_COMPLETED")
                for task in pending:
                    task.cancel()
                assert done, (
                    f"{self.name}: no ack or close within 30 s ({len(self.unacked())} unacknowledged)"
                )
                continue
            client_id = f"{self.name}-{len(self.sent)}"
            self.sent[client_id] = channels[n % len(channels)]
            await self._send(client_id)
            n += 1
            await asyncio.sleep(pace)

    # --- checks -------------------------------------------------------------

    def live_problems(self) -> list[str]:
        """Per connection and stream, live seqs must rise by exactly one each time."""
        problems = []
        for number, streams in enumerate(self.live):
            for stream, seqs in streams.items():
                for before, after in zip(seqs, seqs[1:], strict=False):
                    if after != before + 1:
                        problems.append(f"{self.name} connection {number} {stream!r}: {before} then {after}")
        return problems

    def as_dict(self) -> dict[str, Any]:
        return {stream: dict(seqs) for stream, seqs in self.seen.items()}
