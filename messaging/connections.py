"""The WebSocket's data layer: every database step a connection takes.

Each public function here is sync and is called from the consumer exactly once
per step through ``database_sync_to_async`` (see ``ChatConsumer``), so the
sync/async line is drawn in one place and no loop crosses it row by row.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from accounts.models import LoginSession, User
from accounts.presence import get_presence_store
from accounts.services import presence_broadcast_on_commit
from accounts.tokens import InactiveUser, InvalidToken, authenticate_access_token
from chatrooms.models import Channel, Membership
from chatrooms.selectors import access_channel, channel_streams_for_user
from chatsite.errors import InvalidInput
from messaging import events
from messaging.groups import LOBBY_STREAM, channel_stream
from messaging.models import Message, StreamSequence

CONNECT_HISTORY = 50
HISTORY_DEFAULT = 50
HISTORY_MAX = 200


class Refused(Exception):
    """The handshake is refused with a close ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class OpenedConnection:
    user: User
    session: LoginSession
    streams: dict[str, str | None]  # stream -> channel name (None: the lobby)


@dataclass
class InitialState:
    ready: dict[str, Any]
    history: dict[str, Any]
    last_seqs: dict[str, int] = field(default_factory=dict)


def _payloads(rows) -> list[dict[str, Any]]:
    return [events.message_row_payload(row) for row in rows.values_list(*events.MESSAGE_COLUMNS)]


# --- opening and closing ----------------------------------------------------


def connection_open(*, token: str | None, username: str, connection_id: str, limit: int) -> OpenedConnection:
    """Authenticate the handshake and count the connection, or raise Refused.

    The user's first visible connection announces them online.
    """
    if not token:
        raise Refused(events.CLOSE_UNAUTHORIZED)
    try:
        user, session = authenticate_access_token(token)
    except InvalidToken as exc:
        raise Refused(events.CLOSE_UNAUTHORIZED) from exc
    except InactiveUser as exc:
        raise Refused(events.CLOSE_FORBIDDEN) from exc
    if user.username.lower() != username.lower():
        raise Refused(events.CLOSE_FORBIDDEN)
    count = get_presence_store().open(user.id, connection_id, limit=limit)
    if count is None:
        raise Refused(events.CLOSE_TOO_MANY)
    if count == 1 and user.status != User.Status.OFFLINE:
        presence_broadcast_on_commit(events.user_payload(user, connected=True))
    streams: dict[str, str | None] = {LOBBY_STREAM: None}
    for channel_id, name in channel_streams_for_user(user=user).items():
        streams[channel_stream(channel_id)] = name
    return OpenedConnection(user=user, session=session, streams=streams)


def connection_initial_state(*, user: User, streams: dict[str, str | None]) -> InitialState:
    """Read ``ready`` and the connect ``history``; call only once subscribed to ``streams``."""
    # Seqs first, history second: a message committed between the two reads
    # is then delivered live (its seq is above), never lost between them.
    last_seqs = stream_last_seqs(streams=list(streams))
    recent, has_more = recent_messages(last_seqs=last_seqs, limit=CONNECT_HISTORY)
    online = sorted(
        User.objects.filter(id__in=get_presence_store().all_connected())
        .exclude(status=User.Status.OFFLINE)
        .values_list("username", flat=True),
        key=str.lower,
    )
    names = sorted((name for name in streams.values() if name is not None), key=str.lower)
    return InitialState(
        ready=events.ready_frame(
            user=events.user_payload(user, connected=True, own=True), channels=names, online=online
        ),
        history=events.history_frame(
            reason="connect",
            messages=recent,
            has_more=has_more,
            with_channel=False,
        ),
        last_seqs=last_seqs,
    )


def _stream_filter(stream: str) -> Q:
    return Q(channel__isnull=True) if stream == LOBBY_STREAM else Q(channel_id=UUID(stream))


# Every connection of a process reads the same lobby history on connect, so
# each stream's newest payloads are kept here, valid while the stream's last
# seq is unchanged (exact across processes: the seq is read from the database)
# and for at most RECENT_CACHE_SECONDS (so a moderator's deletion shows soon).
RECENT_CACHE_SECONDS = 5.0
RECENT_CACHE_STREAMS = 2_000
_recent_cache: dict[str, tuple[int, float, list[dict[str, Any]]]] = {}
_recent_cache_lock = threading.Lock()


def _stream_recent(stream: str, *, last_seq: int, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` payloads of one stream, newest first."""
    now = time.monotonic()
    with _recent_cache_lock:
        cached = _recent_cache.get(stream)
    if cached is not None and cached[0] == last_seq and now - cached[1] < RECENT_CACHE_SECONDS:
        return cached[2][:limit]
    rows = Message.objects.filter(_stream_filter(stream), seq__lte=last_seq).order_by("-seq")
    payloads = _payloads(rows[: CONNECT_HISTORY + 1])
    with _recent_cache_lock:
        if len(_recent_cache) >= RECENT_CACHE_STREAMS:
            _recent_cache.clear()
        _recent_cache[stream] = (last_seq, now, payloads)
    return payloads[:limit]


def reset_recent_cache() -> None:
    """Forget cached histories (tests reuse seqs across databases)."""
    with _recent_cache_lock:
        _recent_cache.clear()


def recent_messages(*, last_seqs: dict[str, int], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest ``limit`` messages across streams (up to each given seq), oldest first, and whether
    there are more.

    Timestamps have one fixed width, so their strings sort in time order; within
    one stream, seq breaks ties between messages of the same millisecond.
    """
    candidates = [
        payload
        for stream, last_seq in last_seqs.items()
        for payload in _stream_recent(stream, last_seq=last_seq, limit=limit + 1)
    ]
    candidates.sort(key=lambda payload: (payload["created_at"], payload["seq"]), reverse=True)
    return candidates[:limit][::-1], len(candidates) > limit


def connection_close(*, user_id: UUID, connection_id: str) -> None:
    """Forget the connection; the user's last visible one announces them offline."""
    if get_presence_store().close(user_id, connection_id) == 0:
        user_went_offline(user_id=user_id)


def user_went_offline(*, user_id: UUID) -> None:
    """Record ``last_seen`` and tell everyone, unless the user was invisible anyway."""
    status = User.objects.filter(id=user_id).values_list("status", flat=True).first()
    if status is None or status == User.Status.OFFLINE:
        return  # invisible (or deleted): others saw nothing come or go
    user = User.objects.get(id=user_id)
    user.last_seen = timezone.now()
    User.objects.filter(id=user_id).update(last_seen=user.last_seen)
    presence_broadcast_on_commit(events.user_payload(user, connected=False))


def presence_sweep() -> None:
    """Announce users whose every connection expired (their process died)."""
    for user_id in get_presence_store().sweep():
        user_went_offline(user_id=user_id)


def revoked_sessions(*, session_ids: list[UUID]) -> dict[UUID, int]:
    """The close code each of these sessions' sockets now deserves: 4403 for an
    inactive user, 4401 for an ended session; sessions still valid are left out.

    Logout and deactivation close sockets by an envelope; this re-check catches
    those an outage of the channel layer lost.
    """
    rows = LoginSession.objects.filter(id__in=session_ids).filter(
        Q(ended_at__isnull=False) | Q(user__is_active=False)
    )
    return {
        session_id: events.CLOSE_UNAUTHORIZED if active else events.CLOSE_FORBIDDEN
        for session_id, active in rows.values_list("id", "user__is_active")
    }


def memberships_by_user(*, user_ids: list[UUID]) -> dict[UUID, dict[str, str]]:
    """``{user id: {stream: channel name}}`` of these users' channels."""
    memberships: dict[UUID, dict[str, str]] = {}
    rows = Membership.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "channel_id", "channel__name"
    )
    for user_id, channel_id, name in rows:
        memberships.setdefault(user_id, {})[channel_stream(channel_id)] = name
    return memberships


def stream_membership(*, user: User, stream: str) -> str | None:
    """The channel's name when ``user`` is a member of ``stream``'s channel, else None."""
    return (
        Membership.objects.filter(user=user, channel_id=UUID(stream))
        .values_list("channel__name", flat=True)
        .first()
    )


# --- reads for live delivery ------------------------------------------------


def stream_last_seqs(*, streams: list[str]) -> dict[str, int]:
    """The last committed seq of each stream (its counter never runs ahead of a commit)."""
    last_seqs = dict.fromkeys(streams, 0)
    last_seqs.update(StreamSequence.objects.filter(stream__in=streams).values_list("stream", "last_seq"))
    return last_seqs


def messages_between(*, stream: str, after: int, before: int) -> list[str]:
    """Encoded ``message`` frames with ``after < seq < before``: a gap to fill."""
    rows = Message.objects.filter(_stream_filter(stream), seq__gt=after, seq__lt=before).order_by("seq")
    return [events.encode(events.message_frame(payload)) for payload in _payloads(rows)]


# --- history and sync ---------------------------------------------------------


def _resolve_stream(*, user: User, name: str | None) -> tuple[str, Channel | None]:
    if name is None:
        return LOBBY_STREAM, None
    channel = access_channel(user=user, name=name)
    return channel_stream(channel.id), channel


def history_request(*, user: User, name: str | None, before: Any, limit: Any) -> dict:
    """Answer a ``history`` frame: up to ``limit`` messages of one stream before a message."""
    if limit is None:
        limit = HISTORY_DEFAULT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInput("limit must be a positive integer.")
    limit = min(limit, HISTORY_MAX)
    stream, channel = _resolve_stream(user=user, name=name)
    rows = Message.objects.filter(channel=channel)
    if before is not None:
        try:
            before_id = UUID(before) if isinstance(before, str) else None
        except ValueError:
            before_id = None
        anchor = Message.objects.filter(id=before_id, channel=channel).values_list("seq", flat=True).first()
        if anchor is None:
            raise InvalidInput("before must be the id of a message in this channel.")
        rows = rows.filter(seq__lt=anchor)
    page = _payloads(rows.order_by("-seq")[: limit + 1])
    return events.history_frame(
        reason="request",
        channel=channel.name if channel else None,
        messages=page[:limit][::-1],
        has_more=len(page) > limit,
        with_channel=True,
    )


def sync_stream(*, user: User, name: str, after: int) -> list[dict]:
    """Every message of one stream after ``after``, as ``history`` frames of at most 200."""
    stream, channel = _resolve_stream(user=user, name=name or None)
    frames: list[dict] = []
    rows = Message.objects.filter(channel=channel).order_by("seq")
    while page := _payloads(rows.filter(seq__gt=after)[:HISTORY_MAX]):
        frames.append(_sync_frame(channel, page))
        after = page[-1]["seq"]
    return frames


def _sync_frame(channel: Channel | None, messages: list[dict]) -> dict:
    return events.history_frame(
        reason="sync",
        channel=channel.name if channel else None,
        messages=messages,
        has_more=False,
        with_channel=True,
    )


def channel_problem(*, user: User, name: str) -> None:
    """Raise the error a frame naming channel ``name`` deserves (404 or not a member)."""
    access_channel(user=user, name=name)
