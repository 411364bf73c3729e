"""The chat WebSocket: protocol work only.

The handshake's token was resolved by ``gateway.auth.TokenAuthMiddleware``
into ``scope``; ``connect`` counts the connection, subscribes and sends the
initial state. Client frames go through a table from ``type`` to a short
handler; each handler is one service or database step, and every exception
becomes an ``error`` frame through ``gateway.errors``. Delivery of hub
envelopes is ``gateway.delivery``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chatrooms import services as channel_services
from core import metrics
from core.errors import ChatError, InvalidInput, NotAMember
from gateway import database, errors, housekeeping, protocol
from gateway.database import bulk_db, db
from gateway.delivery import DeliveringSocket
from gateway.wire import direct_line
from messaging import changes
from messaging.writer import get_writer
from realtime import frames
from realtime.envelopes import frame_envelope
from realtime.groups import LOBBY_GROUP, LOBBY_STREAM, session_group, stream_group, user_group
from realtime.publish import apublish
from realtime.typing_throttle import get_typing_throttle

logger = logging.getLogger(__name__)

Handler = Callable[["ChatConsumer", dict[str, Any]], Awaitable[None]]

# chat_ws_closes_total's code label: the contract's codes and the protocol's
# common ones; any other code a client sends counts as "other", so clients
# cannot add a series per code they make up.
COUNTED_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013}
    | {frames.CLOSE_UNAUTHORIZED, frames.CLOSE_FORBIDDEN, frames.CLOSE_TOO_MANY}
)


class ChatConsumer(DeliveringSocket, AsyncWebsocketConsumer):
    # No per-socket layer channel: the hub is this process's one layer member.
    channel_layer_alias = "chat.none"

    user = None
    session = None
    hub = None
    counted_open = False  # accepted, so counted in chat_connections until it ends
    client_close_code: int | None = None
    frame_arrived = 0.0  # perf_counter() when the frame being handled arrived
    released = False

    async def __call__(self, scope, receive, send) -> None:
        """Run the socket; however its instance ends, count its close once."""
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._count_closed()

    def _count_closed(self) -> None:
        if self.counted_open:
            self.counted_open = False
            metrics.CONNECTIONS.dec()
            # The server's code when it closed first, else the client's (1006: no close frame).
            code = self.server_close_code or self.client_close_code or 1006
            metrics.WS_CLOSES.labels(code=str(code) if code in COUNTED_CLOSE_CODES else "other").inc()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Dispatch without Channels' per-event hop to the sync thread.

        Channels closes stale database connections before every handler; every
        database step here goes through ``database_sync_to_async``, which
        already does that, so the hop would only cost time.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- lifecycle ------------------------------------------------------------

    async def connect(self) -> None:
        """Accept, then refuse with a close code or open: count, subscribe, send ``ready`` and history.

        Once the connection is counted, every way out of the handshake (the
        client dropping mid-send, an outage, a cancellation) releases what it
        took: presence entry and hub memberships. A client that drops right
        after the 101 must not leave a ghost behind (4429 after ten of them).
        """
        self.connection_id = uuid4().hex
        self.start_delivery()
        await self.accept()
        self.line = direct_line(self.base_send)  # after the handshake: its extensions are known
        self.counted_open = True
        metrics.CONNECTIONS.inc()
        try:
            streams = await self._open()
            await self._start(streams)
        except Exception as exc:
            try:
                if not isinstance(exc, OSError):  # ASGI servers raise an OSError once the client is gone
                    await self._close_quietly(errors.handshake_close_code(exc))
            finally:
                await asyncio.shield(self.release())
            return
        except BaseException:  # cancelled (the server is stopping): release, then go on stopping
            # In a context of its own: the cancelled one may hold a sync executor that is quitting
            # ("CurrentThreadExecutor already quit"), and the release's database step would fail.
            release = asyncio.get_running_loop().create_task(self.release(), context=contextvars.Context())
            await asyncio.shield(release)
            raise

    async def _start(self, streams: dict[str, str | None]) -> None:
        """Subscribe, then send ``ready`` and the connect history (what can fail midway)."""
        self.hub = await housekeeping.process_started()
        for group in (LOBBY_GROUP, user_group(self.user.id), session_group(self.session.id)):
            await self.join_group(group)
        for stream, name in streams.items():
            await self.subscribe_stream(stream, name)
        state = await db(database.initial_state)(user=self.user, streams=dict(self.streams))
        self.last_seqs.update(state.last_seqs)
        await self.send_frame(state.ready)
        await self.send_frame(state.history)
        self.live = True
        self.start_pump()

    async def _close_quietly(self, code: int) -> None:
        """Close with ``code``; a client that is gone already needs no close frame."""
        with contextlib.suppress(OSError):
            await self.close_socket(code)

    async def _open(self) -> dict[str, str | None]:
        """Check the identity the middleware found, then count the connection; Refused or an outage raise."""
        refusal = self.scope.get("refusal")
        if refusal is not None:
            raise refusal
        user = self.scope["user"]
        if user.username.lower() != self.scope["url_route"]["kwargs"]["username"].lower():
            raise database.Refused(frames.CLOSE_FORBIDDEN)
        # Set before counting: cancelled while the count is under way, release() still undoes it.
        self.user, self.session, self.user_hex = user, self.scope["session"], user.id.hex
        try:
            return await db(database.connection_open)(
                user=user, connection_id=self.connection_id, limit=settings.CHAT_MAX_CONNECTIONS_PER_USER
            )
        except Exception:
            self.user = None  # not counted: nothing to release
            raise

    async def disconnect(self, code: int) -> None:
        self.client_close_code = code
        await self.release()

    async def release(self) -> None:
        """Give back what the connection holds: hub memberships and its presence entry (once)."""
        self.closing = True
        if self.pump is not None:
            self.pump.cancel()
        if self.user is None or self.released:
            return
        self.released = True
        if self.hub is not None:
            await self.hub.leave_all(self.hub_groups, self)
            self.hub_groups.clear()
        try:
            await db(database.connection_close)(user_id=self.user.id, connection_id=self.connection_id)
        except Exception as exc:
            logger.warning("could not record disconnect of %s: %s", self.user.id, exc)

    # --- client frames ----------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.frame_arrived = time.perf_counter()
        if self.user is None or self.closing:
            return
        if not text_data:
            await self.send_frame(
                frames.error_frame(code="invalid_message", detail="Send non-empty text frames.")
            )
            return
        if protocol.too_big(text_data):
            await self.close_socket(frames.CLOSE_TOO_BIG)
            return
        frame = protocol.parse_frame(text_data)
        try:
            if frame is None:  # plain text: a lobby message
                await self._send_message(channel=None, content=text_data, client_id=None)
                return
            kind = protocol.frame_type(frame)
            handler = self.handlers.get(kind)
            if handler is None:
                raise InvalidInput(f"Unknown frame type {kind[:64]!r}.", code="unknown_type")
            await handler(self, frame)
        except Exception as exc:
            await self.send_frame(errors.error_frame(exc, frame=frame))

    async def on_message(self, frame: dict[str, Any]) -> None:
        await self._send_message(
            channel=protocol.channel_field(frame, lobby=True),
            content=protocol.content_field(frame),
            client_id=frame.get("client_id"),
            reply_to=frame.get("reply_to"),
        )

    async def _send_message(
        self, *, channel: str | None, content: Any, client_id: Any, reply_to: Any = None
    ) -> None:
        # Through the process's writer: messages waiting together share one commit. A channel
        # this socket is subscribed to goes by its id; the write still checks the membership.
        stream = None if channel is None else self.stream_named(channel)
        result = await get_writer().send(
            user=self.user,
            channel_name=channel,
            content=content,
            client_id=client_id,
            reply_to=reply_to,
            channel_id=None if stream is None else UUID(hex=stream),
        )
        await self.send_frame(
            frames.ack_frame(
                client_id=result.client_id, message_id=result.payload["id"], seq=result.seq, rev=result.rev
            )
        )
        metrics.ACK_SECONDS.observe(time.perf_counter() - self.frame_arrived)

    async def _ack(self, message: Any, *, client_id: Any) -> None:
        await self.send_frame(
            frames.ack_frame(
                client_id=client_id, message_id=str(message.id), seq=message.seq, rev=message.rev
            )
        )

    async def _change(self, frame: dict[str, Any], change: Callable[..., Any], **fields: Any) -> None:
        """Apply one change to the frame's message (``changes.*``) and acknowledge it with its ``rev``."""
        client_id = protocol.client_id_field(frame)
        result = await db(change)(user=self.user, message_id=frame.get("id"), **fields)
        await self._ack(result.message, client_id=client_id)

    async def on_edit(self, frame: dict[str, Any]) -> None:
        await self._change(frame, changes.message_edit, content=protocol.content_field(frame))

    async def on_delete(self, frame: dict[str, Any]) -> None:
        await self._change(frame, changes.message_delete)

    async def on_react(self, frame: dict[str, Any]) -> None:
        await self._change(frame, changes.reaction_add, emoji=frame.get("emoji"))

    async def on_unreact(self, frame: dict[str, Any]) -> None:
        await self._change(frame, changes.reaction_remove, emoji=frame.get("emoji"))

    async def on_join(self, frame: dict[str, Any]) -> None:
        name = protocol.channel_field(frame, lobby=False)
        await db(channel_services.channel_join)(user=self.user, name=name)

    async def on_leave(self, frame: dict[str, Any]) -> None:
        name = protocol.channel_field(frame, lobby=False)
        await db(channel_services.channel_leave)(user=self.user, name=name)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        name = protocol.channel_field(frame, lobby=True)
        stream = LOBBY_STREAM if name is None else self.stream_named(name)
        throttle = get_typing_throttle()
        if stream is None:
            # The refusal costs a database trip: it too is answered once per 2 s, the rest dropped.
            if not throttle.allowed_here(self.user_hex, f"?{name}"):
                return
            await db(database.channel_problem)(user=self.user, name=name)
            raise NotAMember("You are not a member of this channel.")
        if not await throttle.allow(self.user_hex, stream):
            return  # within 2 s of this user's last typing event here: dropped silently
        typing = frames.encode(frames.typing_frame(channel=self.streams[stream], username=self.user.username))
        await apublish(stream_group(stream), frame_envelope(typing, exclude_user_id=self.user.id, lossy=True))

    async def on_history(self, frame: dict[str, Any]) -> None:
        reply = await db(database.history)(
            user=self.user,
            name=protocol.channel_field(frame, lobby=True),
            before=frame.get("before"),
            limit=protocol.limit_field(frame),
        )
        await self.send_frame(reply)

    async def on_sync(self, frame: dict[str, Any]) -> None:
        """Each stream's missed changes, page by page; a stream refused (404, not a member) gets its
        own error frame. At most ``CHAT_SYNC_MAX`` per stream: its last frame then has ``has_more``."""
        after_positions = protocol.after_field(frame)
        await db(database.sync_start)(user=self.user)
        for name, after in after_positions.items():
            try:
                await self._sync_stream(name, after)
            except ChatError as exc:
                await self.send_frame(errors.error_frame(exc, prefix=f"{name}: "))
        await self.send_frame(frames.SYNCED_FRAME)

    async def _sync_stream(self, name: str, after: int) -> None:
        # Pages come from the bulk-read threads (``database.bulk_db``): a large
        # backlog never holds up the shared database thread other sockets use.
        left = settings.CHAT_SYNC_MAX
        while left > 0:
            step = await bulk_db(database.sync_step)(user=self.user, name=name, after=after, left=left)
            if step.text is None:
                return
            await self.send_text(step.text)
            if not step.more:
                return
            left -= step.count
            after = step.last_rev

    async def on_read(self, frame: dict[str, Any]) -> None:
        name = protocol.channel_field(frame, lobby=True)
        await db(database.read)(user=self.user, name=name, seq=frame.get("seq"))

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_frame(frames.PONG_FRAME)

    handlers: dict[str, Handler] = {
        "message": on_message,
        "edit": on_edit,
        "delete": on_delete,
        "react": on_react,
        "unreact": on_unreact,
        "join": on_join,
        "leave": on_leave,
        "typing": on_typing,
        "history": on_history,
        "sync": on_sync,
        "read": on_read,
        "ping": on_ping,
    }

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send_text(frames.encode(frame))
