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
from realtime.eager import start_eagerly
from realtime.envelopes import close_envelope
from realtime.layers import LocalChannelLayer, PubSubLayer

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None


def set_server_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Remember the event loop the sockets live on (called when its hub starts)."""
    global _server_loop
    _server_loop = loop


def publish(group: str, event: dict[str, Any]) -> None:
    """Send an envelope now; call from sync code, outside any open transaction (``publish_all``)."""
    publish_all([(group, event)])


def publish_all(envelopes: list[tuple[str, dict[str, Any]]]) -> None:
    """Send ``(group, envelope)`` pairs now, in order; call from sync code, outside any open
    transaction.

    From a worker thread of the server, the sends are handed to the event loop
    in one call without waiting for them: the thread (the one that serializes
    database work) is free at once, and envelopes still leave in the order
    they were handed over. On the loop each send starts at once and becomes a
    task only if it has to wait (the in-process layer never does). Elsewhere
    (management commands, sync tests) each send waits as usual.
    """
    layer = get_channel_layer()
    if layer is None or not envelopes:
        return
    loop = _server_loop
    if loop is not None and loop.is_running() and not _on_loop(loop):
        loop.call_soon_threadsafe(_start_all, layer, envelopes)
        return
    for group, event in envelopes:
        try:
            async_to_sync(layer.group_send)(group, {**event, "group": group})
        except Exception:
            # Delivery is best effort by design: the database is the source of
            # truth and connections fill gaps from it, so a lost envelope must
            # never fail the write that produced it.
            metrics.LAYER_ERRORS.inc()
            logger.exception("publishing to %s failed", group)


def _start_all(layer: Any, envelopes: list[tuple[str, dict[str, Any]]]) -> None:
    """On the loop: start each send in order.

    The in-process layer's sends never wait, so they run here and need no
    task; any other layer's (Redis) each get a task, as their clients expect
    to run inside one (their timeouts do).
    """
    eager = isinstance(layer, LocalChannelLayer)
    if isinstance(layer, PubSubLayer):  # the whole batch in one round trip
        messages = [(group, {**event, "group": group}) for group, event in envelopes]
        asyncio.ensure_future(layer.group_send_many(messages)).add_done_callback(_log_failure)
        return
    for group, event in envelopes:
        sending = layer.group_send(group, {**event, "group": group})
        if not eager:
            asyncio.ensure_future(sending).add_done_callback(_log_failure)
            continue
        try:
            waiting = start_eagerly(sending)
        except Exception:
            metrics.LAYER_ERRORS.inc()
            logger.exception("publishing to %s failed", group)
            continue
        if waiting is not None:
            waiting.add_done_callback(_log_failure)


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
    and one hand-over to the event loop for a whole batch, rather than one per envelope."""
    if envelopes:
        transaction.on_commit(lambda: publish_all(envelopes))


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
