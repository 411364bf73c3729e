"""The chat WebSocket: protocol work only.

Frames come in through ``receive`` and go to a small handler table; every
database step is one call into ``messaging.connections`` (or a service)
through ``db()``. Events go out through the process hub (``messaging.hub``):
each socket keeps an inbox of envelopes and the last seq it delivered per
stream, and fills any gap from the database before delivering.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs
from uuid import uuid4

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError
from redis.exceptions import RedisError

from accounts.presence import presence_renew
from chatsite.errors import ChatError, InvalidInput, NotAMember, RateLimited, ServiceUnavailable
from messaging import connections, events
from messaging.broadcast import (
    KIND_CHANNEL_DELETED,
    KIND_CLOSE,
    KIND_FRAME,
    KIND_MESSAGE,
    KIND_RESYNC,
    KIND_SUBSCRIBE,
    KIND_UNSUBSCRIBE,
    apublish,
    envelope,
)
from messaging.eager import start_eagerly
from messaging.groups import LOBBY_GROUP, LOBBY_STREAM, session_group, stream_group, user_group
from messaging.hub import Hub, get_hub
from messaging.shutdown import install_graceful_close
from messaging.writer import get_writer

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 65_536
MAX_BACKLOG = 2_000  # queued envelopes before a socket counts as too slow (1013)
MAX_GAP = 5_000  # missing seqs a socket will fill from the database before giving up (1013)
_NEEDS_PUMP = object()


def db(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run one sync database step in the shared sync thread."""
    return database_sync_to_async(function)


def parse_frame(text: str) -> dict[str, Any] | None:
    """A JSON object, or None for text that is a plain lobby message."""
    try:
        value = orjson.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def channel_field(frame: dict[str, Any], *, required: bool) -> str | None:
    if required and "channel" not in frame:
        raise InvalidInput("channel is required.")
    name = frame.get("channel")
    if name is not None and not isinstance(name, str):
        raise InvalidInput("channel must be a channel name or null.")
    if required and name is None:
        raise InvalidInput("channel must be a channel name.")
    return name


class ChatConsumer(AsyncWebsocketConsumer):
    # No per-socket layer channel: the hub is this process's one layer member.
    channel_layer_alias = "chat.none"

    user = None
    session = None
    hub: Hub | None = None

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
        self.connection_id = uuid4().hex
        self.inbox: deque[dict[str, Any]] = deque()
        self.pump: asyncio.Task | None = None
        self.live = False
        self.closing = False
        self.hub_groups: set[str] = set()
        self.streams: dict[str, str | None] = {}
        self.last_seqs: dict[str, int] = {}
        await self.accept()
        try:
            opened = await db(connections.connection_open)(
                token=self._query_token(),
                username=self.scope["url_route"]["kwargs"]["username"],
                connection_id=self.connection_id,
                limit=settings.CHAT_MAX_CONNECTIONS_PER_USER,
            )
        except connections.Refused as refused:
            await self._close(refused.code)
            return
        except (DatabaseError, ServiceUnavailable):
            logger.warning("handshake refused: database or Redis unavailable")
            await self._close(events.CLOSE_TRY_AGAIN)
            return
        self.user, self.session, self.user_hex = opened.user, opened.session, opened.user.id.hex
        self.hub = await get_hub()
        ensure_housekeeping(self.hub)
        install_graceful_close(self.hub.close_all)
        for group in (LOBBY_GROUP, user_group(self.user.id), session_group(self.session.id)):
            await self._join_group(group)
        for stream, name in opened.streams.items():
            await self._subscribe_stream(stream, name)
        state = await db(connections.connection_initial_state)(user=self.user, streams=dict(self.streams))
        self.last_seqs.update(state.last_seqs)
        await self.send_frame(state.ready)
        await self.send_frame(state.history)
        self.live = True
        self._start_pump()

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.pump is not None:
            self.pump.cancel()
        if self.user is None:
            return
        if self.hub is not None:
            await self.hub.leave_all(self.hub_groups, self)
        try:
            await db(connections.connection_close)(user_id=self.user.id, connection_id=self.connection_id)
        except (DatabaseError, ServiceUnavailable):
            logger.warning("could not record disconnect of %s", self.user.id)

    def _query_token(self) -> str | None:
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        tokens = query.get("token")
        return tokens[0] if tokens else None

    async def _close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            self.inbox.clear()
            await self.close(code=code)

    # --- client frames ----------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None or self.closing:
            return
        if text_data is None or text_data == "":
            await self.send_frame(
                events.error_frame(code="invalid_message", detail="Send non-empty text frames.")
            )
            return
        if len(text_data) > MAX_FRAME_BYTES // 4 and len(text_data.encode()) > MAX_FRAME_BYTES:
            await self._close(events.CLOSE_TOO_BIG)
            return
        frame = parse_frame(text_data)
        if frame is None:
            await self._guarded({}, self._send_message(channel=None, content=text_data, client_id=None))
            return
        kind = frame.get("type")
        if not isinstance(kind, str):
            await self._refuse(frame, InvalidInput("Frames need a string 'type'."))
            return
        handler = self.handlers.get(kind)
        if handler is None:
            await self._refuse(frame, InvalidInput(f"Unknown frame type {kind[:64]!r}.", code="unknown_type"))
            return
        await self._guarded(frame, handler(self, frame))

    async def _guarded(self, frame: dict[str, Any], work: Awaitable[None]) -> None:
        """Run one frame's handler; every refusal becomes an ``error`` frame, never a 1011."""
        try:
            await work
        except ChatError as error:
            await self._refuse(frame, error)
        except (DatabaseError, RedisError):
            logger.warning("frame refused: database or Redis unavailable", exc_info=True)
            await self._refuse(
                frame, ChatError("The database is unavailable; try again.", code="unavailable")
            )
        except Exception:
            logger.exception("frame handler failed")
            await self._refuse(
                frame, ChatError("The server could not handle this frame.", code="internal_error")
            )

    async def _refuse(self, frame: dict[str, Any], error: ChatError) -> None:
        await self.send_frame(
            events.error_frame(
                code=error.code,
                detail=error.detail,
                client_id=frame.get("client_id"),
                retry_after=error.retry_after if isinstance(error, RateLimited) else None,
            )
        )

    async def on_message(self, frame: dict[str, Any]) -> None:
        if "content" not in frame:
            raise InvalidInput("content is required.")
        await self._send_message(
            channel=channel_field(frame, required=False),
            content=frame["content"],
            client_id=frame.get("client_id"),
        )

    async def _send_message(self, *, channel: str | None, content: Any, client_id: Any) -> None:
        # Through the process's writer: messages waiting together share one commit.
        result = await get_writer().send(
            user=self.user, channel_name=channel, content=content, client_id=client_id
        )
        message = result.message
        await self.send_frame(
            events.ack_frame(client_id=message.client_id, message_id=str(message.id), seq=message.seq)
        )

    async def on_join(self, frame: dict[str, Any]) -> None:
        name = channel_field(frame, required=True)
        from chatrooms.services import channel_join

        await db(channel_join)(user=self.user, name=name)

    async def on_leave(self, frame: dict[str, Any]) -> None:
        name = channel_field(frame, required=True)
        from chatrooms.services import channel_leave

        await db(channel_leave)(user=self.user, name=name)

    async def on_typing(self, frame: dict[str, Any]) -> None:
        name = channel_field(frame, required=False)
        stream = LOBBY_STREAM if name is None else self._stream_named(name)
        if stream is None:
            await db(connections.channel_problem)(user=self.user, name=name)
            raise NotAMember("You are not a member of this channel.")
        typing = events.typing_frame(channel=self.streams[stream], username=self.user.username)
        await apublish(
            stream_group(stream),
            envelope(KIND_FRAME, frame=events.encode(typing), exclude_user=self.user_hex),
        )

    async def on_history(self, frame: dict[str, Any]) -> None:
        reply = await db(connections.history_request)(
            user=self.user,
            name=channel_field(frame, required=False),
            before=frame.get("before"),
            limit=frame.get("limit"),
        )
        await self.send_frame(reply)

    async def on_sync(self, frame: dict[str, Any]) -> None:
        after = frame.get("after")
        if not isinstance(after, dict) or not all(
            isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 for seq in after.values()
        ):
            raise InvalidInput("after must map channel names ('' for the lobby) to seqs.")
        for name, seq in after.items():
            try:
                replies = await db(connections.sync_stream)(user=self.user, name=name, after=seq)
            except ChatError as error:
                await self.send_frame(events.error_frame(code=error.code, detail=f"{name}: {error.detail}"))
                continue
            for reply in replies:
                await self.send_frame(reply)
        await self.send_frame(events.SYNCED_FRAME)

    async def on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_frame(events.PONG_FRAME)

    handlers: dict[str, Callable[[ChatConsumer, dict[str, Any]], Awaitable[None]]] = {
        "message": on_message,
        "join": on_join,
        "leave": on_leave,
        "typing": on_typing,
        "history": on_history,
        "sync": on_sync,
        "ping": on_ping,
    }

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self._send_text(events.encode(frame))

    # --- hub events -------------------------------------------------------------

    def hub_event(self, event: dict[str, Any]) -> None:
        """Take one envelope: send it at once when nothing is queued, else queue it in order."""
        if self.closing:
            return
        if self.live and self.pump is None and not self.inbox:
            text = self._immediate_frame(event)
            if text is not _NEEDS_PUMP:
                if text is not None:
                    self._send_now(text)
                return
        self.inbox.append(event)
        if len(self.inbox) > MAX_BACKLOG:
            logger.info("closing a socket that fell %d events behind", len(self.inbox))
            asyncio.ensure_future(self._close(events.CLOSE_TRY_AGAIN))
            return
        self._start_pump()

    def _immediate_frame(self, event: dict[str, Any]) -> Any:
        """The frame an in-order message or plain frame sends (None: nothing), or _NEEDS_PUMP."""
        kind = event["kind"]
        if kind == KIND_FRAME:
            return None if event.get("exclude_user") == self.user_hex else event["frame"]
        if kind == KIND_MESSAGE:
            stream, seq = event["stream"], event["seq"]
            last = self.last_seqs.get(stream)
            if last is None or seq <= last:
                return None  # not subscribed, or already delivered
            if seq == last + 1:
                self.last_seqs[stream] = seq
                return event["frame"]
        return _NEEDS_PUMP  # a gap to fill, or a subscription change

    def _send_now(self, text: str) -> None:
        """Start the send inline; if it must wait, the pump finishes it before anything else."""
        try:
            waiting = start_eagerly(self.base_send({"type": "websocket.send", "text": text}))
        except Exception:
            logger.info("send to a closing socket failed", exc_info=True)
            self.closing = True
            return
        if waiting is not None:
            self.pump = asyncio.ensure_future(self._drain(waiting))

    def _start_pump(self) -> None:
        if self.live and self.pump is None and self.inbox:
            self.pump = asyncio.ensure_future(self._drain())

    async def _drain(self, waiting: asyncio.Future | None = None) -> None:
        try:
            if waiting is not None:
                await waiting
            while self.inbox and not self.closing:
                event = self.inbox.popleft()
                await self.appliers[event["kind"]](self, event)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("applying a hub event failed; closing the socket")
            await self._close(events.CLOSE_TRY_AGAIN)
        finally:
            self.pump = None

    async def _send_text(self, text: str) -> None:
        await self.base_send({"type": "websocket.send", "text": text})

    async def apply_message(self, event: dict[str, Any]) -> None:
        stream, seq = event["stream"], event["seq"]
        last = self.last_seqs.get(stream)
        if last is None or seq <= last:
            return  # not subscribed, or already delivered
        if seq > last + 1:
            if seq - last > MAX_GAP:
                await self._close(events.CLOSE_TRY_AGAIN)
                return
            for text in await db(connections.messages_between)(stream=stream, after=last, before=seq):
                await self._send_text(text)
        self.last_seqs[stream] = seq
        await self._send_text(event["frame"])

    async def apply_frame(self, event: dict[str, Any]) -> None:
        if event.get("exclude_user") != self.user_hex:
            await self._send_text(event["frame"])

    async def apply_subscribe(self, event: dict[str, Any]) -> None:
        stream = event["stream"]
        if stream in self.streams:
            return  # already subscribed (a membership re-sync got here first)
        await self._subscribe_stream(stream, event["channel"])
        last = event.get("last_seq")
        if last is None:
            last = (await db(connections.stream_last_seqs)(streams=[stream]))[stream]
        self.last_seqs[stream] = last
        for text in event["frames"]:
            await self._send_text(text)

    async def apply_unsubscribe(self, event: dict[str, Any]) -> None:
        if event["stream"] not in self.streams:
            return  # already unsubscribed (a membership re-sync got here first)
        for text in event["frames"]:
            await self._send_text(text)
        await self._unsubscribe_stream(event["stream"])

    async def apply_resync(self, event: dict[str, Any]) -> None:
        """Make one stream's subscription match the database, had an envelope been lost.

        Membership is read again here, in the socket's own order of events, so
        a re-sync never undoes a change that happened after it was planned.
        """
        stream = event["stream"]
        member = await db(connections.stream_membership)(user=self.user, stream=stream)
        if member is not None and stream not in self.streams:
            await self._subscribe_stream(stream, member)
            self.last_seqs[stream] = (await db(connections.stream_last_seqs)(streams=[stream]))[stream]
            await self.send_frame(events.subscription_frame("subscribed", channel=member))
        elif member is None and stream in self.streams:
            name = self.streams[stream]
            await self._unsubscribe_stream(stream)
            await self.send_frame(events.subscription_frame("unsubscribed", channel=name))

    async def apply_channel_deleted(self, event: dict[str, Any]) -> None:
        if event["stream"] in self.streams:
            await self._send_text(event["frame"])
            await self._unsubscribe_stream(event["stream"])

    async def apply_close(self, event: dict[str, Any]) -> None:
        await self._close(event["code"])

    async def server_close(self, code: int) -> None:
        """Close now, ahead of any queued events (the process is stopping)."""
        await self._close(code)

    appliers: dict[str, Callable[[ChatConsumer, dict[str, Any]], Awaitable[None]]] = {
        KIND_MESSAGE: apply_message,
        KIND_FRAME: apply_frame,
        KIND_SUBSCRIBE: apply_subscribe,
        KIND_UNSUBSCRIBE: apply_unsubscribe,
        KIND_CHANNEL_DELETED: apply_channel_deleted,
        KIND_CLOSE: apply_close,
        KIND_RESYNC: apply_resync,
    }

    # --- subscriptions --------------------------------------------------------

    async def _join_group(self, group: str) -> None:
        self.hub_groups.add(group)
        await self.hub.join(group, self)

    async def _subscribe_stream(self, stream: str, name: str | None) -> None:
        self.streams[stream] = name
        await self._join_group(stream_group(stream))

    async def _unsubscribe_stream(self, stream: str) -> None:
        if stream == LOBBY_STREAM or stream not in self.streams:
            return
        del self.streams[stream]
        self.last_seqs.pop(stream, None)
        group = stream_group(stream)
        self.hub_groups.discard(group)
        await self.hub.leave(group, self)

    def _stream_named(self, name: str) -> str | None:
        wanted = name.lower()
        for stream, stream_name in self.streams.items():
            if stream_name is not None and stream_name.lower() == wanted:
                return stream
        return None


_housekeepers: dict[int, asyncio.Task] = {}


def ensure_housekeeping(hub: Hub) -> None:
    """Start the hub's presence heartbeat (renew TTLs, sweep dead processes' users) once."""
    task = _housekeepers.get(id(hub))
    if task is None or task.done():
        _housekeepers[id(hub)] = asyncio.ensure_future(_housekeep(hub))


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


async def _renew_presence(sockets: list[ChatConsumer]) -> None:
    """Renew, and re-register what the store lost (a Redis restart empties it)
    while still open here; then sweep dead processes' users."""
    live = {(socket.user.id, socket.connection_id): socket for socket in sockets}
    await db(presence_renew)(live, still_open=lambda consumer: not consumer.closing)
    await db(connections.presence_sweep)()


async def _close_revoked_sessions(sockets: list[ChatConsumer]) -> None:
    """Close sockets whose session ended or whose user was deactivated, had the close envelope been lost."""
    by_session: dict = {}
    for socket in sockets:
        by_session.setdefault(socket.session.id, []).append(socket)
    if not by_session:
        return
    revoked = await db(connections.revoked_sessions)(session_ids=list(by_session))
    for session_id, code in revoked.items():
        for socket in by_session[session_id]:
            await socket.server_close(code)


async def _resync_memberships(sockets: list[ChatConsumer]) -> None:
    """Queue a re-sync for every stream where a socket and the database disagree (a lost envelope)."""
    if not sockets:
        return
    memberships = await db(connections.memberships_by_user)(user_ids=list({s.user.id for s in sockets}))
    for socket in sockets:
        wanted = memberships.get(socket.user.id, {})
        held = {stream for stream in socket.streams if stream != LOBBY_STREAM}
        for stream in held.symmetric_difference(wanted):
            socket.hub_event(envelope(KIND_RESYNC, stream=stream))
