"""Frames the WebSocket fuzzer (tests/fuzz/test_ws_fuzz.py) found ending a socket with 1011, kept as cases.

Each was a value echoed back (a ``client_id`` nested too deep) that could not
be encoded as JSON, or a send to a socket the ASGI
server had already closed: the exception left the consumer, the socket closed
with 1011, and ``disconnect`` never ran, so the user kept a connection slot
(4429 after ten of them).
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from gateway.delivery import DeliveringSocket

pytestmark = pytest.mark.django_db(transaction=True)

NESTED = "[" * 300 + "]" * 300  # deeper than orjson encodes (it stops at 255 levels)


@pytest.mark.parametrize(
    "text",
    [
        '{"type": "dance", "client_id": ' + NESTED + "}",
        '{"type": "message", "channel": null, "content": "", "client_id": ' + NESTED + "}",
    ],
)
async def test_refusals_that_echo_unencodable_values_still_answer(make_user, ws_connect, text):
    client = await ws_connect(await database_sync_to_async(make_user)())
    await client.send(text)
    error = await client.recv_type("error")
    assert "client_id" not in error  # not a valid client_id, so not echoed
    await client.send({"type": "ping"})
    assert await client.recv_type("pong") == {"type": "pong"}


async def test_a_change_with_an_invalid_client_id_is_refused_before_it_is_applied(make_user, ws_connect):
    client = await ws_connect(await database_sync_to_async(make_user)())
    await client.send({"type": "message", "channel": None, "content": "hello"})
    ack = (await client.collect("ack", "message"))["ack"]
    await client.send(
        '{"type": "edit", "id": "' + ack["id"] + '", "content": "changed", "client_id": ' + NESTED + "}"
    )
    error = await client.recv_type("error")
    assert error["code"] == "invalid_message"
    await client.send({"type": "edit", "id": ack["id"], "content": "changed", "client_id": "e1"})
    assert (await client.collect("ack", "message_updated"))["ack"]["client_id"] == "e1"


async def test_a_send_to_a_socket_the_server_closed_is_dropped_not_raised():
    """uvicorn refuses a send after it closed a socket itself (1009, 1007) with RuntimeError, and
    raises ClientDisconnected (an OSError) once the peer is gone; neither may escape."""

    class Socket(DeliveringSocket):
        def __init__(self, error: Exception) -> None:
            self.error = error
            self.start_delivery()

        async def base_send(self, message):
            raise self.error

        async def close(self, code=None):
            raise self.error

    for error in (RuntimeError("Unexpected ASGI message 'websocket.send'"), ConnectionResetError()):
        socket = Socket(error)
        await socket.send_text("{}")
        assert socket.closing
        await Socket(error).close_socket(1013)


def test_a_text_frame_that_is_not_utf8_is_one_info_line_not_an_error_with_a_traceback(caplog):
    """uvicorn logs it at ERROR with a traceback; any client could fill the log with those."""
    import logging

    from gateway.lifespan import ClientFaultFilter, install_log_filters

    install_log_filters()
    install_log_filters()  # once only
    uvicorn_errors = logging.getLogger("uvicorn.error")
    assert sum(isinstance(each, ClientFaultFilter) for each in uvicorn_errors.filters) == 1
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        uvicorn_errors.exception("Invalid UTF-8 sequence received from client.")
    uvicorn_errors.error("Exception in ASGI application\n")
    (invalid, other) = caplog.records
    assert (invalid.levelname, invalid.exc_info) == ("INFO", None)
    assert other.levelname == "ERROR"
