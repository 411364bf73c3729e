"""Per-socket delivery: one inbox, positions per stream, gap fill, subscriptions.

Each socket receives envelopes from its process's hub (``realtime.hub``) and
keeps the last position it delivered per stream. One rule decides what a
message envelope means (``_message_step``): already delivered or not
subscribed (skip), the next position (send), or past a gap (fill the gap from
the database first). The fast path applies it inline when nothing is queued
and the envelope needs no database; anything else goes through the inbox,
which a pump task drains in order, so frames never overtake each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from core import metrics
from core.database_thread import db
from gateway import database
from gateway.wire import DirectLine, wire_frame
from messaging.selectors import GAP_FILL_MAX
from realtime import frames
from realtime.eager import start_eagerly
from realtime.envelopes import (
    KIND_CHANNEL_DELETED,
    KIND_CLOSE,
    KIND_FRAME,
    KIND_MESSAGE,
    KIND_RESYNC,
    KIND_SUBSCRIBE,
    KIND_UNSUBSCRIBE,
    PRIORITY_LOSSY,
    envelope_priority,
)
from realtime.groups import LOBBY_STREAM, stream_group
from realtime.hub import Hub

logger = logging.getLogger(__name__)

MAX_BACKLOG = 2_000  # queued envelopes before a socket counts as too slow (1013)
LOSSY_BACKLOG = 100  # queued envelopes past which typing and presence are dropped, not queued
SKIP, SEND, FILL = "skip", "send", "fill"
WIRE_KEY = "_wire"  # an envelope's frame encoded for the wire once, shared by its local sockets
# What the ASGI server raises on a send to a socket that is gone: the peer left (uvicorn's
# ClientDisconnected is an OSError), or the server closed it itself (1009, 1007) and
# refuses any message after its close (RuntimeError).
SOCKET_GONE = (OSError, RuntimeError)


class DeliveringSocket:
    """Mixin for the consumer: take hub envelopes and deliver them in order.

    Slots, and an inbox made only once something must wait in it: most
    sockets sit idle, or take every envelope on the fast path.
    """

    __slots__ = ("inbox", "pump", "live", "closing", "streams", "last_seqs", "server_close_code", "line")

    user: Any
    user_hex: str
    hub: Hub | None
    base_send: Callable[[dict[str, Any]], Awaitable[None]]

    def start_delivery(self) -> None:
        """Set the socket's delivery state (called when the socket is made)."""
        self.inbox: deque[dict[str, Any]] | None = None  # made by the first envelope that waits
        self.pump: asyncio.Task | None = None
        self.live = False
        self.closing = False
        self.streams: dict[str, str | None] = {}  # stream -> channel name (None: the lobby)
        self.last_seqs: dict[str, int] = {}
        self.server_close_code: int | None = None  # the code this server closed the socket with
        self.line: DirectLine | None = None  # the transport below ASGI, when the server allows (gateway.wire)

    async def close_socket(self, code: int) -> None:
        """Close once, dropping whatever is still queued."""
        if not self.closing:
            self.server_close_code = code
            self.closing = True
            self.inbox = None
            await self._close(code)

    async def _close(self, code: int) -> None:
        try:
            await self.close(code=code)
        except SOCKET_GONE as exc:
            logger.info("closing a socket that was gone already: %r", exc)

    async def send_text(self, text: str) -> None:
        """Send one text frame; a socket already gone is no error.

        The server's ``websocket.disconnect`` comes next and runs ``disconnect``,
        which raising here would skip (leaving presence and hub entries behind).
        """
        # Below ASGI when the socket's line takes it (the handshake's ``ready`` and history, acks,
        # errors), unless a send is pending in the pump: this frame must not overtake it.
        line = self.line
        if line is not None and self.pump is None and line.write(wire_frame(text)):
            return
        try:
            await self.base_send({"type": "websocket.send", "text": text})
        except SOCKET_GONE as exc:
            logger.info("send to a closed socket dropped: %r", exc)
            self.closing = True

    # --- the one delivery rule ----------------------------------------------------

    def _message_step(self, event: dict[str, Any]) -> str:
        last = self.last_seqs.get(event["stream"])
        if last is None or event["seq"] <= last:
            return SKIP  # not subscribed, or already delivered
        return SEND if event["seq"] == last + 1 else FILL

    def _frame_wanted(self, event: dict[str, Any]) -> bool:
        return event.get("exclude_user") != self.user_hex

    # --- the hub's entry point ------------------------------------------------------

    def hub_event(self, event: dict[str, Any]) -> None:
        """Take one envelope: apply it at once when nothing is queued and it needs no database.

        Under pressure the priority is explicit: a close goes ahead of
        everything queued (nothing queued matters to a closing socket), lossy
        frames (typing, presence) are dropped once the socket is behind, and
        any other envelope is queued; past ``MAX_BACKLOG`` the socket is
        closed with 1013, so no control envelope is ever lost unnoticed.
        """
        if self.closing:
            return
        if event["kind"] == KIND_CLOSE:
            self._close_soon(event["code"])
            return
        inbox = self.inbox
        if self.live and self.pump is None and not inbox and self._apply_inline(event):
            return
        if inbox is None:
            inbox = self.inbox = deque()
        if len(inbox) >= LOSSY_BACKLOG and envelope_priority(event) == PRIORITY_LOSSY:
            return
        inbox.append(event)
        if len(inbox) > MAX_BACKLOG:
            logger.info("closing a socket that fell %d events behind", len(inbox))
            self._close_soon(frames.CLOSE_TRY_AGAIN)
            return
        self.start_pump()

    def _close_soon(self, code: int) -> None:
        """Close from the hub's synchronous dispatch: closing from now on (later envelopes are
        dropped, not queued), the close frame itself sent by a task."""
        if self.closing:
            return
        self.server_close_code = code
        self.closing = True
        self.inbox = None
        asyncio.ensure_future(self._close(code)).add_done_callback(_ignore_gone)

    def _apply_inline(self, event: dict[str, Any]) -> bool:
        """Apply a plain frame or an in-order message now; False when the pump must."""
        kind = event["kind"]
        if kind == KIND_FRAME:
            if self._frame_wanted(event):
                self._send_now(event)
            return True
        if kind != KIND_MESSAGE:
            return False
        step = self._message_step(event)
        if step == FILL:
            return False
        if step == SEND:
            self.last_seqs[event["stream"]] = event["seq"]
            self._send_now(event)
            metrics.DELIVERIES.inc()
        return True

    def _send_now(self, event: dict[str, Any]) -> None:
        """Send the envelope's frame inline: written below ASGI when the socket's line takes it,
        else the ASGI send started inline; if that must wait, the pump finishes it before anything else.
        """
        line = self.line
        if line is not None:
            wire = event.get(WIRE_KEY)
            if wire is None:  # the first of the envelope's sockets encodes it for all of them
                wire = event[WIRE_KEY] = wire_frame(event["frame"])
            if line.write(wire):
                metrics.DIRECT_WRITES.inc()
                return
        try:
            # base_send directly: one coroutine per delivery, not a wrapper around it.
            waiting = start_eagerly(self.base_send({"type": "websocket.send", "text": event["frame"]}))
        except Exception as exc:
            logger.info("send to a closing socket failed: %r", exc)
            self.closing = True
            return
        if waiting is not None:
            self.pump = asyncio.ensure_future(self._drain(waiting))

    def start_pump(self) -> None:
        if self.live and self.pump is None and self.inbox:
            self.pump = asyncio.ensure_future(self._drain())

    async def _drain(self, waiting: asyncio.Future | None = None) -> None:
        try:
            if waiting is not None:
                try:
                    await waiting
                except SOCKET_GONE as exc:  # closed while the send waited for the peer to read
                    logger.info("send to a closed socket dropped: %r", exc)
                    self.closing = True
                    return
            while self.inbox and not self.closing:
                event = self.inbox.popleft()
                await self.appliers[event["kind"]](self, event)
            self.inbox = None  # drained: an idle socket keeps no empty deque
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("applying a hub event failed; closing the socket")
            await self.close_socket(frames.CLOSE_TRY_AGAIN)
        finally:
            self.pump = None

    # --- the pump's appliers, one per envelope kind ---------------------------------------

    async def apply_message(self, event: dict[str, Any]) -> None:
        step = self._message_step(event)
        if step == SKIP:
            return
        stream, seq = event["stream"], event["seq"]
        if step == FILL:
            last = self.last_seqs[stream]
            if seq - last > GAP_FILL_MAX:
                await self.close_socket(frames.CLOSE_TRY_AGAIN)
                return
            missed = await db(database.gap_fill)(stream=stream, after=last, before=seq)
            metrics.GAP_FILLS.inc()
            for text in missed:
                await self.send_text(text)
            metrics.DELIVERIES.inc(len(missed))
        self.last_seqs[stream] = seq
        await self.send_text(event["frame"])
        metrics.DELIVERIES.inc()

    async def apply_frame(self, event: dict[str, Any]) -> None:
        if self._frame_wanted(event):
            await self.send_text(event["frame"])

    async def apply_subscribe(self, event: dict[str, Any]) -> None:
        stream = event["stream"]
        if stream in self.streams:
            return  # already subscribed (a membership re-sync got here first)
        await self.subscribe_stream(stream, event["channel"])
        last = event.get("last_seq")
        if last is None:
            last = (await db(database.stream_positions)(streams=[stream]))[stream]
        self.last_seqs[stream] = last
        for text in event["frames"]:
            await self.send_text(text)

    async def apply_unsubscribe(self, event: dict[str, Any]) -> None:
        if event["stream"] not in self.streams:
            return  # already unsubscribed (a membership re-sync got here first)
        for text in event["frames"]:
            await self.send_text(text)
        await self.unsubscribe_stream(event["stream"])

    async def apply_resync(self, event: dict[str, Any]) -> None:
        """Make one stream's subscription match the database, had an envelope been lost.

        Membership is read again here, in the socket's own order of events, so
        a re-sync never undoes a change that happened after it was planned.
        """
        stream = event["stream"]
        member = await db(database.stream_membership)(user=self.user, stream=stream)
        if member is not None and stream not in self.streams:
            await self.subscribe_stream(stream, member)
            self.last_seqs[stream] = (await db(database.stream_positions)(streams=[stream]))[stream]
            await self.send_text(frames.encode(frames.subscription_frame("subscribed", channel=member)))
        elif member is None and stream in self.streams:
            name = self.streams[stream]
            await self.unsubscribe_stream(stream)
            await self.send_text(frames.encode(frames.subscription_frame("unsubscribed", channel=name)))

    async def apply_channel_deleted(self, event: dict[str, Any]) -> None:
        if event["stream"] in self.streams:
            await self.send_text(event["frame"])
            await self.unsubscribe_stream(event["stream"])

    async def apply_close(self, event: dict[str, Any]) -> None:
        await self.close_socket(event["code"])

    async def server_close(self, code: int) -> None:
        """Close now, ahead of any queued events (the process is stopping, or a session was revoked)."""
        await self.close_socket(code)

    appliers: dict[str, Callable[[DeliveringSocket, dict[str, Any]], Awaitable[None]]] = {
        KIND_MESSAGE: apply_message,
        KIND_FRAME: apply_frame,
        KIND_SUBSCRIBE: apply_subscribe,
        KIND_UNSUBSCRIBE: apply_unsubscribe,
        KIND_CHANNEL_DELETED: apply_channel_deleted,
        KIND_CLOSE: apply_close,
        KIND_RESYNC: apply_resync,
    }

    # --- subscriptions ----------------------------------------------------------------

    async def join_group(self, group: str) -> None:
        await self.hub.join(group, self)

    async def subscribe_stream(self, stream: str, name: str | None) -> None:
        self.streams[stream] = name
        await self.join_group(stream_group(stream))

    async def unsubscribe_stream(self, stream: str) -> None:
        if stream == LOBBY_STREAM or stream not in self.streams:
            return
        del self.streams[stream]
        self.last_seqs.pop(stream, None)
        await self.hub.leave(stream_group(stream), self)

    def stream_named(self, name: str) -> str | None:
        """The subscribed stream of the channel called ``name`` (ignoring case), or None."""
        wanted = name.lower()
        for stream, stream_name in self.streams.items():
            if stream_name is not None and stream_name.lower() == wanted:
                return stream
        return None


def _ignore_gone(task: asyncio.Future) -> None:
    if task.cancelled() or task.exception() is None:
        return
    if isinstance(task.exception(), OSError):
        logger.debug("closing a socket whose client was gone already")
    else:
        logger.error("closing a socket failed", exc_info=task.exception())
