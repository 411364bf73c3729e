"""Handshakes over a raw TCP socket, aborted (a RST, no close frame) at a chosen point."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

# Where a handshake is cut: before the 101 arrives, right after it, after the
# ``ready`` frame, or in the middle of the ``history`` frame.
ABORT_POINTS = ("before_101", "after_101", "after_ready", "mid_history")


async def _frame_header(reader: asyncio.StreamReader) -> int:
    """Read a server frame's header; return its payload length (server frames are unmasked)."""
    _first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return length


async def aborted_handshake(port: int, username: str, token: str, point: str) -> None:
    """Open a WebSocket to the chat server, then vanish at ``point`` with a TCP reset."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /api/ws/{username}?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    try:
        if point != "before_101":
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.split(b"\r\n", 1)[0].split()[1] == b"101", head
        if point in ("after_ready", "mid_history"):
            await reader.readexactly(await asyncio.wait_for(_frame_header(reader), 10))
        if point == "mid_history":
            length = await asyncio.wait_for(_frame_header(reader), 10)
            await reader.readexactly(length // 2)
    finally:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
