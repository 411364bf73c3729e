"""Every read of messages, under one set of limits.

REST pages (``message_page``), the history a socket gets on connect
(``connect_history``), ``history`` and ``sync`` frames (``history_page``,
``sync_page``) and a socket's gap fill (``gap_fill``) all read here. Pages
hold at most ``PAGE_MAX`` messages (``PAGE_DEFAULT`` unless asked), and a gap
of more than ``GAP_FILL_MAX`` positions is not filled (the socket reconnects
and syncs instead).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Q, QuerySet

from accounts.models import User
from chatrooms.models import Channel, Membership
from chatrooms.selectors import access_channel
from core.errors import InvalidInput, MessageNotFound
from core.pagination import DEFAULT_LIMIT as PAGE_DEFAULT
from core.pagination import MAX_LIMIT as PAGE_MAX
from messaging.models import Message
from messaging.pages import MessagePage, Order, cut
from messaging.payloads import MESSAGE_COLUMNS, message_payloads, row_payloads
from realtime.groups import LOBBY_STREAM

GAP_FILL_MAX = 5_000


class AllStreams:
    """Sentinel for "no ``channel`` filter": the lobby and every channel of the user."""

    def __repr__(self) -> str:
        return "ALL_STREAMS"


ALL_STREAMS = AllStreams()


@dataclass(frozen=True)
class StreamPage:
    """Message payloads in position order, from one stream (``channel`` None: the lobby) or several."""

    channel: str | None
    messages: list[dict[str, Any]]
    has_more: bool


def _stream_messages(stream: str) -> QuerySet[Message]:
    """The messages of one stream, by its name in the realtime core (``""``: the lobby)."""
    if stream == LOBBY_STREAM:
        return Message.objects.filter(channel__isnull=True)
    return Message.objects.filter(channel_id=uuid.UUID(stream))


def _channel_for(*, user: User, name: str | None) -> Channel | None:
    """The channel ``user`` reads by ``name`` (404 / not a member), or None for the lobby."""
    return None if name is None else access_channel(user=user, name=name)


def message_id_of(raw: Any) -> uuid.UUID | None:
    """A message id from client input (a UUID string), or None for anything else; never raises."""
    try:
        return uuid.UUID(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def access_message(*, user: User, message_id: Any) -> Message:
    """A message ``user`` can read (``channel`` and ``user`` loaded), or MessageNotFound (404).

    Not a UUID, no such message and a channel ``user`` cannot read are answered alike.
    """
    message_id = message_id_of(message_id)
    message = None
    if message_id is not None:
        readable = Message.objects.select_related("user", "channel").filter(readable_filter(user=user))
        message = readable.filter(id=message_id).first()
    if message is None:
        raise MessageNotFound("No such message.")
    return message


# --- REST pages ---------------------------------------------------------------


def readable_filter(*, user: User) -> Q:
    """Messages ``user`` may read now: the lobby and the channels they belong to."""
    return Q(channel__isnull=True) | Q(
        channel_id__in=Membership.objects.filter(user=user).values("channel_id")
    )


def _readable_streams(*, user: User) -> list[Q]:
    """One filter per stream the user reads (the lobby, then each channel), for merged pages."""
    channel_ids = Membership.objects.filter(user=user).values_list("channel_id", flat=True)
    return [Q(channel__isnull=True), *(Q(channel_id=channel_id) for channel_id in channel_ids)]


def _parse_id(raw: str, *, field: str) -> uuid.UUID:
    message_id = message_id_of(raw)
    if message_id is None:
        raise InvalidInput("Must be a message id (a UUID).", field=field)
    return message_id


def message_page(
    *,
    user: User,
    channel_name: str | None | AllStreams = ALL_STREAMS,
    before: str | None = None,
    after: str | None = None,
    limit: int,
    author: User | None = None,
    reply_to: str | None = None,
    within: QuerySet[Message] | None = None,
) -> MessagePage:
    """One page of the messages ``user`` may read, optionally only one stream, one author, the
    replies to one message, or those ``within`` a set (search results).

    ``channel_name``: ALL_STREAMS, None for the lobby, or a channel name
    (404 unknown, 403 not a member). ``before``/``after`` and ``reply_to``
    must name a message ``user`` can read in that scope, else 400.
    """
    if before is not None and after is not None:
        raise InvalidInput("Give before or after, not both.", field="after")
    across = isinstance(channel_name, AllStreams)
    if across:
        scope = Message.objects.filter(readable_filter(user=user))
    else:
        scope = Message.objects.filter(channel=_channel_for(user=user, name=channel_name))
    if reply_to is not None:
        target_id = _parse_id(reply_to, field="reply_to")
        target = list(scope.filter(id=target_id).values_list("channel_id", flat=True)[:1])
        if not target:
            raise InvalidInput("No message with this id that you can read here.", field="reply_to")
        scope = Message.objects.filter(channel_id=target[0], reply_to_id=target_id)
        across = False
    if within is not None:
        scope = scope.filter(id__in=within.values("id"))
    order = Order(by_seq=not across)

    anchor = None
    field = "before" if before is not None else "after"
    raw = before if before is not None else after
    if raw is not None:
        anchor = scope.filter(id=_parse_id(raw, field=field)).only("id", "seq", "created_at").first()
        if anchor is None:
            raise InvalidInput("No message with this id that you can read here.", field=field)

    if author is not None:
        scope = scope.filter(user=author)
    streams = _readable_streams(user=user) if across and author is None and within is None else None
    rows = scope.select_related("user", "channel")
    return cut(
        rows, scope, order, anchor=anchor, direction=field, limit=min(limit, PAGE_MAX), streams=streams
    )


# --- connect history ------------------------------------------------------------

# Every connection of a process reads the same lobby history on connect, so
# each stream's newest payloads are kept here, valid while the stream's last
# seq is unchanged (exact across processes: the seq is read from the database)
# and for at most RECENT_CACHE_SECONDS (so a moderator's deletion shows soon).
RECENT_CACHE_SECONDS = 5.0
RECENT_CACHE_STREAMS = 2_000
_recent_cache: dict[str, tuple[int, float, list[dict[str, Any]]]] = {}
_recent_cache_lock = threading.Lock()


def _recent_rows(stream: str, last_seq: int, limit: int) -> QuerySet[Message]:
    """One stream's newest ``limit`` rows up to position ``last_seq``: a (channel, seq) index scan."""
    return (
        _stream_messages(stream)
        .filter(seq__lte=last_seq)
        .order_by("-seq")
        .values_list(*MESSAGE_COLUMNS)[:limit]
    )


def _millisecond_sql(column: str) -> str:
    """SQL for a timestamp cut to the millisecond, as payloads show it.

    SQLite stores text, without the fraction when it is zero: ``.000`` is
    appended so that such a time sorts with the rest of its millisecond.
    """
    if connection.vendor == "postgresql":
        return f"date_trunc('milliseconds', {column})"
    return f"substr({column} || '.000', 1, 23)"


def _newest_across(last_seqs: dict[str, int], limit: int) -> list[tuple]:
    """The newest ``limit`` rows across several streams, each up to its given position: ONE query.

    Each stream is one ``ORDER BY seq DESC LIMIT`` index scan; a UNION ALL of
    them, each wrapped in its own ``SELECT * FROM (…)`` (SQLite refuses ORDER
    BY and LIMIT directly in a compound's parts), is ordered as
    ``connect_history`` orders payloads: by time to the millisecond, then seq.
    """
    parts: list[str] = []
    params: list[Any] = []
    compiler = None
    for n, (stream, last_seq) in enumerate(last_seqs.items()):
        compiler = _recent_rows(stream, last_seq, limit).query.get_compiler(connection=connection)
        sql, part_params = compiler.as_sql()
        # ``n`` orders exact ties (same millisecond and seq) by stream, as a
        # stable sort of the streams read one by one would.
        parts.append(f"SELECT s{n}.*, {n} AS stream_order FROM ({sql}) AS s{n}")  # noqa: S608
        params.extend(part_params)
    if compiler is None:
        return []
    created_at = _millisecond_sql("u.created_at")
    sql = (
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) AS u"  # noqa: S608
        f" ORDER BY {created_at} DESC, u.seq DESC, u.stream_order LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        rows = [row[:-1] for row in cursor.fetchall()]
    # Every part selects the same columns: the ORM's own converters (ids,
    # times, booleans per database) apply to the merged rows alike.
    return list(compiler.results_iter(results=[rows], tuple_expected=True))


def _streams_recent(last_seqs: dict[str, int]) -> list[list[tuple | dict[str, Any]]]:
    """Candidate payloads for the connect history, newest first per group.

    The lobby, which every connection reads, is served from its cached page
    while still current (else read with one index scan and cached); every
    other stream is read in ONE query (``_newest_across``), so a connect costs
    the same number of queries in 2 channels as in 200. Their reactions and
    mentions come with one query each for all of them together.
    """
    now = time.monotonic()
    limit = PAGE_DEFAULT + 1
    groups: list[list[dict[str, Any]]] = []
    lobby_rows: list[tuple] | None = None
    if LOBBY_STREAM in last_seqs:
        lobby_seq = last_seqs[LOBBY_STREAM]
        with _recent_cache_lock:
            cached = _recent_cache.get(LOBBY_STREAM)
        if cached is not None and cached[0] == lobby_seq and now - cached[1] < RECENT_CACHE_SECONDS:
            groups.append(cached[2])
        else:
            lobby_rows = list(_recent_rows(LOBBY_STREAM, lobby_seq, limit))
    others = {stream: seq for stream, seq in last_seqs.items() if stream != LOBBY_STREAM}
    other_rows = _newest_across(others, limit) if others else []
    payloads = row_payloads([*(lobby_rows or []), *other_rows])
    if lobby_rows is not None:
        lobby = payloads[: len(lobby_rows)]
        with _recent_cache_lock:
            if len(_recent_cache) >= RECENT_CACHE_STREAMS:
                _recent_cache.clear()
            _recent_cache[LOBBY_STREAM] = (last_seqs[LOBBY_STREAM], now, lobby)
        groups.append(lobby)
    groups.append(payloads[len(lobby_rows or []) :])
    return groups


def reset_recent_cache() -> None:
    """Forget cached histories (tests reuse seqs across databases)."""
    with _recent_cache_lock:
        _recent_cache.clear()


def connect_history(*, last_seqs: dict[str, int], limit: int = PAGE_DEFAULT) -> StreamPage:
    """The newest ``limit`` messages across streams (each up to its given seq), oldest first.

    Timestamps have one fixed width, so their strings sort in time order; within
    one stream, seq breaks ties between messages of the same millisecond.
    """
    candidates = [payload for payloads in _streams_recent(last_seqs) for payload in payloads[: limit + 1]]
    candidates.sort(key=lambda payload: (payload["created_at"], payload["seq"]), reverse=True)
    return StreamPage(channel=None, messages=candidates[:limit][::-1], has_more=len(candidates) > limit)


# --- history and sync frames, gap fill ----------------------------------------


def history_page(*, user: User, name: str | None, before: Any, limit: int = PAGE_DEFAULT) -> StreamPage:
    """Up to ``limit`` messages of one stream, those just before the message ``before`` (or the newest)."""
    limit = min(limit, PAGE_MAX)
    channel = _channel_for(user=user, name=name)
    rows = Message.objects.filter(channel=channel)
    if before is not None:
        before_id = message_id_of(before)
        anchor = (
            None if before_id is None else rows.filter(id=before_id).values_list("seq", flat=True).first()
        )
        if anchor is None:
            raise InvalidInput("before must be the id of a message in this channel.")
        rows = rows.filter(seq__lt=anchor)
    page = message_payloads(rows.order_by("-seq")[: limit + 1])
    return StreamPage(
        channel=channel and channel.name, messages=page[:limit][::-1], has_more=len(page) > limit
    )


def sync_page(*, user: User, name: str | None, after: int, limit: int = PAGE_MAX) -> StreamPage:
    """Up to ``limit`` messages of one stream changed after position ``after``, in their current
    state and in ``rev`` order; ``has_more`` when more lie beyond. One page, never the backlog."""
    channel = _channel_for(user=user, name=name)
    rows = Message.objects.filter(channel=channel, rev__gt=after).order_by("rev")
    messages = message_payloads(rows[: limit + 1])
    return StreamPage(
        channel=channel and channel.name, messages=messages[:limit], has_more=len(messages) > limit
    )


def gap_fill(*, stream: str, after: int, before: int) -> list[dict[str, Any]]:
    """The messages of ``stream`` whose latest change lies between positions ``after`` and ``before``,
    in their current state and position order: what a socket missed.

    A message changed again at or after ``before`` is not here: its later
    change comes after. The caller keeps the gap within ``GAP_FILL_MAX``.
    """
    rows = _stream_messages(stream).filter(rev__gt=after, rev__lt=before).order_by("rev")
    return message_payloads(rows)
