"""``gateway.wire``: the frame written below ASGI is byte for byte the one websockets would write."""

from __future__ import annotations

import asyncio

import pytest
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode

from gateway.wire import direct_line, wire_frame


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70_000])
@pytest.mark.parametrize("head", ["", "é€😀"])
def test_wire_frame_is_the_frame_websockets_serializes(length, head):
    # ``length`` bytes of UTF-8 exactly: the header's three length encodings and their edges.
    text = head + "x" * max(0, length - len(head.encode()))
    expected = Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])
    assert wire_frame(text) == expected


class Transport:
    """What a socket's transport received (the protocol under test is uvicorn's own)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


def open_protocol(**config) -> tuple[WebSocketsSansIOProtocol, Transport]:
    """uvicorn's sansio protocol past a real handshake, as the server runs it."""

    async def app(scope, receive, send):  # pragma: no cover - never called: the handshake is driven here
        pass

    protocol = WebSocketsSansIOProtocol(
        Config(app, ws_per_message_deflate=False, **config), ServerState(), {}, asyncio.get_event_loop()
    )
    transport = Transport()
    protocol.transport = transport
    protocol.conn.receive_data(
        b"GET /api/ws/a HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    request = protocol.conn.events_received()[0]
    protocol.conn.send_response(protocol.conn.accept(request))
    protocol.conn.data_to_send()
    protocol.handshake_complete = True
    return protocol, transport


async def test_a_direct_write_equals_the_asgi_send():
    protocol, transport = open_protocol()
    line = direct_line(protocol.send)
    assert line is not None
    await protocol.send({"type": "websocket.send", "text": '{"type":"message","é":1}'})
    assert line.write(wire_frame('{"type":"message","é":1}'))
    assert transport.written[0] == transport.written[1]


async def test_no_direct_write_while_the_asgi_send_would_wait_or_could_not_write():
    protocol, transport = open_protocol()
    line = direct_line(protocol.send)
    protocol.pause_writing()  # the peer reads slowly: the ASGI send waits, so must every frame after it
    assert not line.write(wire_frame("a"))
    protocol.resume_writing()
    assert line.write(wire_frame("a"))
    transport.closing = True
    assert not line.write(wire_frame("a"))
    transport.closing = False
    protocol.close_sent = True
    assert not line.write(wire_frame("a"))
    assert transport.written == [wire_frame("a")]


async def test_no_direct_line_for_other_servers_or_with_compression():
    async def send(message):  # daphne's, or any other ASGI server's send
        pass

    assert direct_line(send) is None
    protocol, _ = open_protocol()
    protocol.conn.extensions = [object()]  # e.g. permessage-deflate: frames differ per socket
    assert direct_line(protocol.send) is None
