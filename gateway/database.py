"""Every database step the gateway takes: sync functions, each called once through ``db()``.

The consumer is async; the apps' selectors and services are sync and own their
transactions. This module is the one place where the gateway meets them: each
function below is one trip to the database thread (``db``, from
``core.database_thread``: the thread ``database_sync_to_async`` uses), never a
row-by-row loop across the line, and it returns plain values or frames.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from channels.db import database_sync_to_async
from django.conf import settings

from accounts import presence
from accounts.models import LoginSession, User
from accounts.selectors import sessions_revoked
from accounts.tokens import InactiveUser, InvalidToken, authenticate_access_token
from chatrooms import selectors as channel_selectors
from core.userlimits import user_rate_allows
from messaging import reads
from messaging import selectors as message_selectors
from messaging.positions import last_positions
from messaging.selectors import StreamPage
from realtime import frames
from realtime.groups import LOBBY_STREAM, channel_stream
from realtime.presence_store import presence_renew

_bulk_executor: ThreadPoolExecutor | None = None
_bulk_lock = threading.Lock()


def bulk_db(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run one long read (a page of ``sync``) on the bulk-read threads, not the shared one.

    Every handshake, send and change waits its turn on the shared thread; a
    client syncing a large backlog from 0 on ten sockets would queue them all
    behind its pages. Its pages run here instead, on ``CHAT_SYNC_THREADS``
    threads (their connections, on PostgreSQL, from the process's pool), so
    they wait for each other, never for anyone else's handshake or send.
    """
    global _bulk_executor
    if _bulk_executor is None:
        with _bulk_lock:
            if _bulk_executor is None:
                _bulk_executor = ThreadPoolExecutor(
                    max_workers=settings.CHAT_SYNC_THREADS, thread_name_prefix="chat-sync"
                )
    return database_sync_to_async(function, thread_sensitive=False, executor=_bulk_executor)


class Refused(Exception):
    """The handshake is refused with a close ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class InitialState:
    ready: dict[str, Any]
    history: dict[str, Any]
    last_seqs: dict[str, int]


@dataclass
class Opening:
    """Who opened the socket and the streams to subscribe it to (stream -> channel name)."""

    user: User
    session_id: UUID
    streams: dict[str, str | None]


# --- opening and closing ----------------------------------------------------


def handshake_identity(token: str | None) -> tuple[User, LoginSession]:
    """The user and open session of an access token, or Refused (4401, 4403 inactive)."""
    if not token:
        raise Refused(frames.CLOSE_UNAUTHORIZED)
    try:
        return authenticate_access_token(token)
    except InvalidToken as exc:
        raise Refused(frames.CLOSE_UNAUTHORIZED) from exc
    except InactiveUser as exc:
        raise Refused(frames.CLOSE_FORBIDDEN) from exc


def handshake_open(*, token: str | None, username: str, connection_id: str, limit: int) -> Opening:
    """The handshake's first step, in one trip to the database thread: authenticate (4401, 4403),
    check the name in the URL (4403), count the connection (4429) and read its channels.

    The refusals come in the contract's order: the token, the name, the
    connect rate, the connection limit. The status epoch is read before the
    user's status (``presence.connection_opened``).
    """
    epoch = presence.status_epoch()
    user, session = handshake_identity(token)
    if user.username.lower() != username.lower():
        raise Refused(frames.CLOSE_FORBIDDEN)
    streams = connection_open(user=user, connection_id=connection_id, limit=limit, epoch=epoch)
    return Opening(user=user, session_id=session.id, streams=streams)


def connection_open(*, user: User, connection_id: str, limit: int, epoch: int) -> dict[str, str | None]:
    """Count the handshake against ``CHAT_CONNECT_RATE`` and the connection against ``limit`` (either
    refused with 4429); return its streams -> channel names. ``epoch``: the status epoch, read before
    ``user`` was."""
    if not user_rate_allows("connect", user.id):
        raise Refused(frames.CLOSE_TOO_MANY)
    if not presence.connection_opened(user=user, connection_id=connection_id, limit=limit, epoch=epoch):
        raise Refused(frames.CLOSE_TOO_MANY)
    streams: dict[str, str | None] = {LOBBY_STREAM: None}
    for channel_id, name in channel_selectors.channel_streams_for_user(user=user).items():
        streams[channel_stream(channel_id)] = name
    return streams


def initial_state(*, user: User, streams: dict[str, str | None]) -> InitialState:
    """``ready`` and the connect ``history``; call only once subscribed to ``streams``."""
    # Positions first, history second: a message committed between the two
    # reads is then delivered live (its seq is above), never lost between them.
    # The positions come with the read counts, in one statement: the counts
    # cover exactly the messages up to each ``last_seq``, and whatever comes
    # after arrives live.
    states = {
        channel_stream(channel_id): state for channel_id, state in reads.read_states(user_id=user.id).items()
    }
    last_seqs = {stream: states[stream].last_seq for stream in streams if stream in states}
    if len(last_seqs) < len(streams):  # left since subscribing: its unsubscribe is on its way
        last_seqs.update(last_positions([stream for stream in streams if stream not in states]))
    recent = message_selectors.connect_history(last_seqs=last_seqs)
    names = sorted((name for name in streams.values() if name is not None), key=str.lower)
    unread = {
        name or "": {"last_seq": state.last_seq, **state.counts()}
        for stream, name in streams.items()
        if (state := states.get(stream)) is not None
    }
    ready = frames.ready_frame(
        user=presence.user_payload(user, connected=True, own=True),
        channels=names,
        # Who others see online, from the presence store: this user is in it
        # already (counted by ``handshake_open``) when visible.
        online=list(presence.online_usernames()),
        unread=unread,
    )
    history = frames.history_frame(
        reason="connect", messages=recent.messages, has_more=recent.has_more, with_channel=False
    )
    return InitialState(ready=ready, history=history, last_seqs=last_seqs)


def connection_close(*, user_id: UUID, connection_id: str) -> None:
    presence.connection_closed(user_id=user_id, connection_id=connection_id)


# --- frames -------------------------------------------------------------------


def history(*, user: User, name: str | None, before: Any, limit: int) -> dict[str, Any]:
    page = message_selectors.history_page(user=user, name=name, before=before, limit=limit)
    return frames.history_frame(
        reason="request",
        channel=page.channel,
        messages=page.messages,
        has_more=page.has_more,
        with_channel=True,
    )


def sync_start(*, user: User) -> None:
    """Count one ``sync`` frame, however many streams and pages it covers, as one read request."""
    message_selectors.read_request_count(user=user)


def sync_page(*, user: User, name: str, after: int, limit: int) -> StreamPage:
    """Up to ``limit`` messages of one stream ('' the lobby) changed after position ``after``."""
    return message_selectors.sync_page(user=user, name=name or None, after=after, limit=limit)


@dataclass
class SyncStep:
    text: str | None  # the encoded ``history`` frame (None: nothing more)
    count: int
    last_rev: int
    more: bool  # another page follows within the cap


def sync_step(*, user: User, name: str, after: int, left: int) -> SyncStep:
    """One page of a ``sync`` (at most ``left`` more of ``CHAT_SYNC_MAX``), encoded in this thread.

    Its last frame has ``has_more`` only when the cap cut the stream short.
    """
    page = sync_page(user=user, name=name, after=after, limit=min(left, message_selectors.PAGE_MAX))
    if not page.messages:
        return SyncStep(text=None, count=0, last_rev=after, more=False)
    left -= len(page.messages)
    text = frames.encode(
        frames.history_frame(
            reason="sync",
            channel=page.channel,
            messages=page.messages,
            has_more=page.has_more and left <= 0,
            with_channel=True,
        )
    )
    return SyncStep(
        text=text,
        count=len(page.messages),
        last_rev=page.messages[-1]["rev"],
        more=page.has_more and left > 0,
    )


def read(*, user: User, name: str | None, seq: Any) -> None:
    """Move the user's read position; the ``read`` frame to all their sockets is the only answer."""
    reads.read_mark(user=user, channel_name=name, seq=seq)


def channel_problem(*, user: User, name: str) -> None:
    """Raise the refusal a frame naming channel ``name`` deserves (404, or not a member)."""
    channel_selectors.access_channel(user=user, name=name)


# --- delivery -----------------------------------------------------------------


def gap_fill(*, stream: str, after: int, before: int) -> list[str]:
    """Encoded frames of what a socket missed between positions ``after`` and ``before``.

    A message the socket never saw (posted after ``after``) comes as ``message``
    in its current state; one it saw comes as ``message_updated``.
    """
    return [
        frames.encode(
            frames.message_frame(p) if p["seq"] > after else frames.message_updated_frame(_change(p), p)
        )
        for p in message_selectors.gap_fill(stream=stream, after=after, before=before)
    ]


def _change(payload: dict[str, Any]) -> str:
    if payload["deleted"]:
        return "deleted"
    return "edited" if payload["edited_at"] is not None else "reactions"


def stream_positions(*, streams: list[str]) -> dict[str, int]:
    return last_positions(streams)


def stream_membership(*, user: User, stream: str) -> str | None:
    """The channel's name when ``user`` is a member of ``stream``'s channel, else None."""
    return channel_selectors.membership_channel_name(user=user, channel_id=UUID(stream))


# --- housekeeping -------------------------------------------------------------


def presence_heartbeat(live: Mapping[tuple[UUID, str], Any], *, still_open: Callable[[Any], bool]) -> None:
    """Renew this process's connections (re-opening those a Redis restart lost, and recording again
    how others see their users), then sweep dead ones."""
    presence.connections_reopened(user_ids=presence_renew(live, still_open=still_open))
    presence.connections_swept()


def revoked_sessions(*, session_ids: list[UUID]) -> dict[UUID, int]:
    """The close code each revoked session's sockets deserve: 4403 inactive user, 4401 ended."""
    return {
        session_id: frames.CLOSE_UNAUTHORIZED if active else frames.CLOSE_FORBIDDEN
        for session_id, active in sessions_revoked(session_ids=session_ids).items()
    }


def memberships_by_user(*, user_ids: list[UUID]) -> dict[UUID, dict[str, str]]:
    """``{user id: {stream: channel name}}`` of these users' channels."""
    return {
        user_id: {channel_stream(channel_id): name for channel_id, name in channels.items()}
        for user_id, channels in channel_selectors.memberships_by_user(user_ids=user_ids).items()
    }
