"""Process-wide work for the sockets of one server process, started once per process.

``process_started`` creates the process's hub, wraps the stop signals so every
socket closes with 1001, and starts the housekeeping loop. The ASGI lifespan
startup calls it before the first connection (``gateway.lifespan``); servers
without lifespan events, and tests, reach it through the first ``connect``.
Every ``CHAT_HOUSEKEEPING_SECONDS`` the loop renews presence, closes sockets
of revoked sessions and re-syncs subscriptions with stored memberships: each
step repairs what a lost envelope or a Redis outage left behind. On SQLite it
also starts the write-ahead log's checkpointer (``core.sqlite_wal``), so that no
message's commit pays for a checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings

from core.database_thread import db
from core.sqlite_wal import start_wal_checkpointer
from gateway import database
from realtime.envelopes import resync_envelope
from realtime.groups import LOBBY_STREAM
from realtime.hub import Hub, get_hub
from realtime.shutdown import install_graceful_close

logger = logging.getLogger(__name__)

_housekeepers: dict[int, asyncio.Task] = {}


async def process_started() -> Hub:
    """The running process's hub, with housekeeping and graceful close in place (idempotent)."""
    hub = await get_hub()
    task = _housekeepers.get(id(hub))
    if task is None or task.done():
        _housekeepers[id(hub)] = asyncio.ensure_future(_housekeep(hub))
        start_wal_checkpointer(settings.CHAT_SQLITE_CHECKPOINT_SECONDS)
    install_graceful_close(hub.close_all)
    return hub


async def _housekeep(hub: Hub) -> None:
    while True:
        await asyncio.sleep(settings.CHAT_HOUSEKEEPING_SECONDS)
        sockets = [s for s in hub.subscribers() if getattr(s, "user", None) is not None and not s.closing]
        for step in (_renew_presence, _close_revoked_sessions, _resync_memberships):
            try:
                await step(sockets)
            except Exception as exc:
                logger.warning("housekeeping step %s failed: %s", step.__name__, exc)
        try:
            await hub.repair()  # groups an outage kept this process out of
        except Exception as exc:
            logger.warning("hub repair failed: %s", exc)


async def _renew_presence(sockets: list[Any]) -> None:
    """Renew, and re-register what the store lost (a Redis restart empties it)
    while still open here; then sweep dead processes' users."""
    live = {(socket.user.id, socket.connection_id): socket for socket in sockets}
    await db(database.presence_heartbeat)(live, still_open=lambda socket: not socket.closing)


async def _close_revoked_sessions(sockets: list[Any]) -> None:
    """Close sockets whose session ended or whose user was deactivated, had the close envelope been lost."""
    by_session: dict = {}
    for socket in sockets:
        by_session.setdefault(socket.session_id, []).append(socket)
    if not by_session:
        return
    revoked = await db(database.revoked_sessions)(session_ids=list(by_session))
    for session_id, code in revoked.items():
        for socket in by_session[session_id]:
            await socket.server_close(code)


async def _resync_memberships(sockets: list[Any]) -> None:
    """Queue a re-sync for every stream where a socket and the database disagree (a lost envelope)."""
    if not sockets:
        return
    memberships = await db(database.memberships_by_user)(user_ids=list({s.user.id for s in sockets}))
    for socket in sockets:
        wanted = memberships.get(socket.user.id, {})
        held = {stream for stream in socket.streams if stream != LOBBY_STREAM}
        for stream in held.symmetric_difference(wanted):
            socket.hub_event(resync_envelope(stream))
