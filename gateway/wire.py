"""A broadcast's frame written straight to each socket's transport, below ASGI.

One message reaches every subscriber of its stream, and the bytes on the
wire are the same for all of them: server frames are not masked, and
``bin/server`` turns compression off. Through ASGI each delivery costs a
``websocket.send`` dict, a coroutine, the text encoded to UTF-8 again and a
WebSocket frame serialized again, socket by socket. Here the frame is built
once per envelope (``wire_frame``) and each socket's ``DirectLine`` writes it
to the transport, as the ``websockets`` library's own ``broadcast`` does.

Only uvicorn's ``websockets-sansio`` protocol (``bin/server``'s default) is
known well enough to write below: anything else (daphne, another
implementation, a negotiated extension) gets no direct line, and every send
goes through ASGI as before. A direct write is refused, and the caller falls
back to the ASGI send, whenever that send would not write at once: the
transport is paused (the peer reads slowly), closing, or the connection is
no longer open.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

try:  # uvicorn is the default server, not a requirement of every deployment (daphne)
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State
except ImportError:  # pragma: no cover - uvicorn and websockets are in requirements.txt
    WebSocketsSansIOProtocol = None
    State = None

_TEXT_FIN = 0x81  # FIN set, opcode 1 (text); no RSV bits: no extension is in use


def wire_frame(text: str) -> bytes:
    """The unmasked, unfragmented WebSocket text frame carrying ``text`` (RFC 6455, section 5.2)."""
    payload = text.encode()
    length = len(payload)
    if length < 126:
        head = bytes((_TEXT_FIN, length))
    elif length < 65536:
        head = struct.pack("!BBH", _TEXT_FIN, 126, length)
    else:
        head = struct.pack("!BBQ", _TEXT_FIN, 127, length)
    return head + payload


class DirectLine:
    """One socket's transport, written to directly while its protocol would write at once."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def write(self, frame: bytes) -> bool:
        """Write an encoded frame (``wire_frame``); False when the ASGI send must carry it instead."""
        protocol = self._protocol
        conn = protocol.conn
        if (
            protocol.close_sent
            or protocol.disconnected
            or not protocol.writable.is_set()
            or conn.state is not State.OPEN
            or conn.expect_continuation_frame
            or protocol.transport.is_closing()
        ):
            return False
        protocol.transport.write(frame)
        return True


def direct_line(send: Callable[..., Any]) -> DirectLine | None:
    """A direct line for a socket whose ASGI ``send`` is uvicorn's sansio protocol, else None."""
    protocol = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is None or not isinstance(protocol, WebSocketsSansIOProtocol):
        return None
    if protocol.conn.extensions:  # e.g. permessage-deflate: frames differ per socket
        return None
    return DirectLine(protocol)


def handshake_forgotten(send: Callable[..., Any]) -> None:
    """Let go of the handshake once it is over, on uvicorn's sansio protocol (else nothing).

    The protocol keeps the parsed request and the response (their headers) and
    the scope (with the request's headers again) for the whole life of the
    socket, though after the handshake nothing reads the headers: its access
    log lines read the client, path and query. Measured with 2,000 idle sockets
    of a trivial application: 1.3 KiB of RSS per socket less.
    """
    protocol = getattr(send, "__self__", None)
    if WebSocketsSansIOProtocol is None or not isinstance(protocol, WebSocketsSansIOProtocol):
        return
    if not protocol.handshake_complete:
        return
    protocol.request = None
    protocol.response = None
    scope = getattr(protocol, "scope", None)
    if scope is not None:
        scope["headers"] = []
