"""Publishing envelopes (``realtime.envelopes``): only from services, only after commit.

Every event travels as one envelope per group, its frames encoded once by the
publisher, and each process's hub (``realtime.hub``) hands the same text to
all of its local sockets in that group.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from core import metrics
from realtime.envelopes import close_envelope

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None


def set_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the event loop the sockets live on (called when its hub starts)."""
    global _server_loop
    _server_loop = loop


def publish(group: str, event: dict[str, Any]) -> None:
    """Send an envelope now; call from sync code, outside any open transaction.

    From a worker thread of the server, the send is handed to the event loop
    without waiting for it: the thread (the one that serializes database work)
    is free at once, and envelopes still leave in the order they were handed
    over. Elsewhere (management commands, sync tests) it waits as usual.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    message = {**event, "group": group}
    loop = _server_loop
    if loop is not None and loop.is_running() and not _on_loop(loop):
        future = asyncio.run_coroutine_threadsafe(layer.group_send(group, message), loop)
        future.add_done_callback(_log_failure)
        return
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        # Delivery is best effort by design: the database is the source of
        # truth and connections fill gaps from it, so a lost envelope must
        # never fail the write that produced it.
        metrics.LAYER_ERRORS.inc()
        logger.exception("publishing to %s failed", group)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _log_failure(future) -> None:
    if not future.cancelled() and future.exception() is not None:
        metrics.LAYER_ERRORS.inc()
        logger.error("publishing an envelope failed", exc_info=future.exception())


def broadcast_on_commit(group: str, event: dict[str, Any]) -> None:
    """Publish once the current transaction commits, so no client sees a rolled-back row."""
    transaction.on_commit(lambda: publish(group, event))


def broadcast_all_on_commit(envelopes: list[tuple[str, dict[str, Any]]]) -> None:
    """Publish ``(group, envelope)`` pairs in order once the transaction commits: one callback
    for a whole batch rather than one per envelope."""
    if envelopes:
        transaction.on_commit(lambda: _publish_all(envelopes))


def _publish_all(envelopes: list[tuple[str, dict[str, Any]]]) -> None:
    for group, event in envelopes:
        publish(group, event)


def close_group_on_commit(group: str, code: int) -> None:
    """Close every socket of ``group`` (a user's or a session's) once the transaction commits."""
    broadcast_on_commit(group, close_envelope(code))


async def apublish(group: str, event: dict[str, Any]) -> None:
    """Send an envelope from async code (no transaction involved: nothing is stored)."""
    layer = get_channel_layer()
    if layer is not None:
        try:
            await layer.group_send(group, {**event, "group": group})
        except Exception:
            metrics.LAYER_ERRORS.inc()
            raise
