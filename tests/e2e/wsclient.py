"""A real WebSocket client (the ``websockets`` library) for end-to-end tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

from tests.servers import bearer, register_and_login  # noqa: F401  (re-exported for the tests)


class Socket:
    """One open connection; ``ready`` and ``history`` are read on open."""

    def __init__(self, ws, account: dict) -> None:
        self.ws = ws
        self.account = account
        self.ready: dict | None = None
        self.history: dict | None = None

    @classmethod
    async def open(cls, ws_base: str, account: dict, **kwargs) -> Socket:
        ws = await websockets.connect(
            f"{ws_base}/api/ws/{account['username']}?token={account['access']}", max_size=None, **kwargs
        )
        socket = cls(ws, account)
        socket.ready = await socket.recv()
        assert socket.ready["type"] == "ready", socket.ready
        socket.history = await socket.recv()
        assert socket.history["type"] == "history", socket.history
        return socket

    async def send(self, frame: dict | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def recv_type(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame

    async def messages(self, count: int, timeout: float = 10.0) -> list[dict]:
        """The next ``count`` ``message`` payloads, other frames skipped."""
        found = []
        while len(found) < count:
            frame = await self.recv(timeout)
            if frame["type"] == "message":
                found.append(frame["message"])
        return found

    async def quiet(self, seconds: float = 0.5, kinds: tuple[str, ...] = ("message", "typing")) -> list[dict]:
        """Frames of ``kinds`` received within ``seconds`` (expected: none)."""
        seen = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                frame = await self.recv(left)
            except TimeoutError:
                break
            if frame["type"] in kinds:
                seen.append(frame)
        return seen

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close; return its close code."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    async def close(self) -> None:
        await self.ws.close()
