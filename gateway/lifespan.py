"""ASGI lifespan: start the process's realtime machinery before the first connection."""

from __future__ import annotations

import logging

from gateway.housekeeping import process_started

logger = logging.getLogger(__name__)

INVALID_UTF8 = "Invalid UTF-8 sequence received from client."


class ClientFaultFilter(logging.Filter):
    """uvicorn logs a text frame that is not UTF-8 at ERROR with a traceback, then closes it with 1007.

    That is the client's fault, not the server's, and any client could fill the
    log with it: keep it as one INFO line (shown only at INFO), without the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != INVALID_UTF8:
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        record.msg = "closed a socket with 1007: a text frame was not UTF-8"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def install_log_filters() -> None:
    uvicorn_errors = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, ClientFaultFilter) for f in uvicorn_errors.filters):
        uvicorn_errors.addFilter(ClientFaultFilter())


async def lifespan(scope, receive, send) -> None:
    """Answer ``lifespan.startup`` once the hub, housekeeping and graceful close are in place."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            install_log_filters()
            try:
                await process_started()
            except Exception as exc:
                # A channel layer that is away now (Redis) is joined later; serve anyway.
                logger.warning("realtime start-up deferred to the first connection: %s", exc)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
