"""The chat WebSocket: protocol work only.

An ASGI application per socket (``ChatConsumer.serve``), without Channels'
consumer machinery: no layer channel per socket (the process's hub is the one
layer member), no task per received message, no copy of the scope per
middleware. ``connect`` authenticates, counts the connection and reads its
channels in one database step, subscribes, then sends the initial state read
in a second step. Client frames go through a table from ``type`` to a short
handler; each handler is one service or database step, and every exception
becomes an ``error`` frame through ``gateway.errors``. Delivery of hub
envelopes is ``gateway.delivery``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs
from uuid import UUID, uuid4

from django.conf import settings

from accounts import presence
from chatrooms import services as channel_services
from core import metrics
from core.database_thread import db
from core.errors import ChatError, InvalidInput, NotAMember
from gateway import database, errors, housekeeping, protocol
from gateway.database import bulk_db
from gateway.delivery import DeliveringSocket
from gateway.wire import direct_line, handshake_forgotten
from messaging import changes
from messaging.writer import get_writer
from realtime import frames
from realtime.envelopes import frame_envelope
from realtime.groups import LOBBY_STREAM, session_group, stream_group, user_group
from realtime.publish import apublish
from realtime.typing_throttle import get_typing_throttle

logger = logging.getLogger(__name__)

Handler = Callable[["ChatConsumer", dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# chat_ws_closes_total's code label: the contract's codes and the protocol's
# common ones; any other code a client sends counts as "other", so clients
# cannot add a series per code they make up.
COUNTED_CLOSE_CODES = frozenset(
    {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013}
    | {frames.CLOSE_UNAUTHORIZED, frames.CLOSE_FORBIDDEN, frames.CLOSE_TOO_MANY}
)


class ChatConsumer(DeliveringSocket):
    """One socket. Slots, not an instance dict: thousands sit idle in one process."""

    __slots__ = (
        "base_send",
        "username",
        "token",
        "connection_id",
        "user",
        "user_hex",
        "session_id",
        "hub",
        "counted_open",
        "client_close_code",
        "frame_arrived",
        "released",
    )

    def __init__(self, send: Send, *, username: str, token: str | None) -> None:
        self.base_send = send
        self.username = username  # from the URL, checked against the token's user
        self.token = token  # dropped once the handshake has read it
        self.connection_id = ""
        self.user: Any = None
        self.user_hex = ""
        self.session_id: UUID | None = None
        self.hub = None
        self.counted_open = False  # accepted, so counted in chat_connections until it ends
        self.client_close_code: int | None = None
        self.frame_arrived = 0.0  # perf_counter() when the frame being handled arrived
        self.released = False
        self.start_delivery()

    @classmethod
    def serve(cls, scope: dict[str, Any], receive: Receive, send: Send, *, username: str) -> Awaitable[None]:
        """The socket's ASGI coroutine (``gateway.routing``): the scope is read here and not kept."""
        return cls(send, username=username, token=_query_token(scope)).run(receive)

    async def run(self, receive: Receive) -> None:
        """Take the server's events until the socket ends; however it ends, count its close once.

        One event at a time, each handled before the next is read (as
        Channels' consumers do, without a task per event).
        """
        try:
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    await self.receive(text_data=message.get("text"), bytes_data=message.get("bytes"))
                elif kind == "websocket.connect":
                    await self.connect()
                elif kind == "websocket.disconnect":
                    await self.disconnect(message.get("code", 1005))
                    return
                else:
                    raise ValueError(f"No handler for message type {kind}")
        finally:
            self._count_closed()

    def _count_closed(self) -> None:
        if self.counted_open:
            self.counted_open = False
            metrics.CONNECTIONS.dec()
            # The server's code when it closed first, else the client's (1006: no close frame).
            code = self.server_close_code or self.client_close_code or 1006
            metrics.WS_CLOSES.labels(code=str(code) if code in COUNTED_CLOSE_CODES else "other").inc()

    async def accept(self) -> None:
        await self.base_send({"type": "websocket.accept", "subprotocol": None})

    async def close(self, code: int) -> None:
        await self.base_send({"type": "websocket.close", "code": code})

    # --- lifecycle ------------------------------------------------------------

    async def connect(self) -> None:
        """Accept, then refuse with a close code or open: count, subscribe, send ``ready`` and history.

        Once the connection is counted, every way out of the handshake (the
        client dropping mid-send, an outage, a cancellation) releases what it
        took: presence entry and hub memberships. A client that drops right
        after the 101 must not leave a ghost behind (4429 after ten of them).
        """
        self.connection_id = uuid4().hex
        await self.accept()
        self.line = direct_line(self.base_send)  # after the handshake: its extensions are known
        handshake_forgotten(self.base_send)  # the server's copies of its headers, kept for nothing
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

    async def _open(self) -> dict[str, str | None]:
        """Authenticate, count the connection and read its streams in one step; Refused or an outage raise.

        Cancelled while the step runs in its thread, the step still finishes
        there: its outcome is awaited (shielded) so that a connection it
        counted is known, and released, before the cancellation goes on.
        """
        token, self.token = self.token, None
        step = _own_context(
            db(database.handshake_open)(
                token=token,
                username=self.username,
                connection_id=self.connection_id,
                limit=settings.CHAT_MAX_CONNECTIONS_PER_USER,
            )
        )
        try:
            opening = await asyncio.shield(step)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                self._opened(await step)
            raise
        self._opened(opening)
        return opening.streams

    def _opened(self, opening: database.Opening) -> None:
        self.user, self.session_id, self.user_hex = opening.user, opening.session_id, opening.user.id.hex

    async def _start(self, streams: dict[str, str | None]) -> None:
        """Subscribe, then send ``ready`` and the connect history (what can fail midway)."""
        self.hub = await housekeeping.process_started()
        for group in (user_group(self.user.id), session_group(self.session_id)):
            await self.join_group(group)
        for stream, name in streams.items():
            await self.subscribe_stream(stream, name)
        state = await _own_context(db(database.initial_state)(user=self.user, streams=dict(self.streams)))
        self.last_seqs.update(state.last_seqs)
        await self.send_frame(state.ready)
        await self.send_frame(state.history)
        self.live = True
        self.start_pump()

    async def _close_quietly(self, code: int) -> None:
        """Close with ``code``; a client that is gone already needs no close frame."""
        with contextlib.suppress(OSError):
            await self.close_socket(code)

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
            await self.hub.leave_all(self.hub_groups(), self)
        user_id = self.user.id
        try:
            if not presence.forgets_in_process():  # Redis: the store's round trip off the loop
                await db(database.connection_close)(user_id=user_id, connection_id=self.connection_id)
            elif presence.connection_forgotten(user_id=user_id, connection_id=self.connection_id):
                await db(presence.user_went_offline)(user_id=user_id)
        except Exception as exc:
            logger.warning("could not record disconnect of %s: %s", user_id, exc)

    def hub_groups(self) -> list[str]:
        """The hub groups this socket may be in: its user's, its session's and its streams'."""
        groups = [stream_group(stream) for stream in self.streams]
        if self.user is not None:
            groups.append(user_group(self.user.id))
        if self.session_id is not None:
            groups.append(session_group(self.session_id))
        return groups

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


def _query_token(scope: dict[str, Any]) -> str | None:
    """The ``token`` query parameter (the first one), as ``parse_qs`` reads it.

    A query of that one parameter and nothing to unquote (a JWT is base64url
    and dots) is read as it is: ``parse_qs`` cost as much as the origin check.
    """
    query = scope.get("query_string", b"").decode("latin-1")
    if query.startswith("token=") and not _NEEDS_PARSING.search(query):
        return query[len("token=") :] or None
    tokens = parse_qs(query).get("token")
    return tokens[0] if tokens else None


_NEEDS_PARSING = re.compile(r"[&;%+]")


def _own_context(step: Awaitable[Any]) -> asyncio.Task:
    """Run a handshake's trip to the database thread as a task in a copy of the socket's context.

    asgiref sets its own context variables around the trip (``deadlock_context``);
    set in the socket's context they would stay there for its whole life, on
    every idle socket (see ``core.database_thread.db`` for those set in the thread).
    """
    return asyncio.get_running_loop().create_task(step, context=contextvars.copy_context())
