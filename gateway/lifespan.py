"""ASGI lifespan: start the process's realtime machinery before the first connection."""

from __future__ import annotations

import logging

from gateway.housekeeping import process_started

logger = logging.getLogger(__name__)


async def lifespan(scope, receive, send) -> None:
    """Answer ``lifespan.startup`` once the hub, housekeeping and graceful close are in place."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await process_started()
            except Exception as exc:
                # A channel layer that is away now (Redis) is joined later; serve anyway.
                logger.warning("realtime start-up deferred to the first connection: %s", exc)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
