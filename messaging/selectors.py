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
from django.db.models.expressions import RawSQL

from accounts.models import User
from chatrooms.models import Channel, Membership
from chatrooms.selectors import access_channel
from core.errors import InvalidInput, MessageNotFound
from core.pagination import DEFAULT_LIMIT as PAGE_DEFAULT
from core.pagination import MAX_LIMIT as PAGE_MAX
from core.userlimits import enforce_user_rate
from messaging.models import Message
from messaging.pages import MessagePage, Order, cut
from messaging.payloads import MESSAGE_COLUMNS, message_payloads, row_payloads
from realtime.groups import LOBBY_STREAM, channel_stream

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


def read_request_count(*, user: User) -> None:
    """Count one read request (a message list, search, ``history`` or ``sync`` frame) against
    ``CHAT_READ_RATE``; past it ``RateLimited`` (429, or a ``rate_limited`` error frame)."""
    enforce_user_rate("read", user.id)


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
    must name a message ``user`` can read in that scope, else 400. Each call
    is one read request (``read_request_count``).
    """
    read_request_count(user=user)
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

# Every connection of a process reads the same lobby history on connect, and
# a user who reconnects reads the same channels again, so each stream's
# newest payloads are kept here, valid while the stream's last position is
# unchanged (exact across processes: positions are read from the database)
# and for at most RECENT_CACHE_SECONDS (so a moderator's deletion shows soon).
RECENT_CACHE_SECONDS = 5.0
RECENT_CACHE_STREAMS = 2_000
# Up to this many uncached channel streams are read whole (a page each) and
# cached; more are read merged to one page, which is not cached (a page per
# stream of a user in 200 channels would be 10,000 payloads to build).
RECENT_FILL_STREAMS = 8
_recent_cache: dict[str, tuple[int, float, list[dict[str, Any]]]] = {}
_recent_cache_lock = threading.Lock()


def _recent_rows(stream: str, last_seq: int, limit: int, columns=MESSAGE_COLUMNS) -> QuerySet[Message]:
    """One stream's newest ``limit`` rows up to position ``last_seq``: a (channel, seq) index scan."""
    return _stream_messages(stream).filter(seq__lte=last_seq).order_by("-seq").values_list(*columns)[:limit]


def _millisecond_sql(column: str) -> str:
    """SQL for a timestamp cut to the millisecond, as payloads show it.

    SQLite stores text, without the fraction when it is zero: ``.000`` is
    appended so that such a time sorts with the rest of its millisecond.
    """
    if connection.vendor == "postgresql":
        return f"date_trunc('milliseconds', {column})"
    return f"substr({column} || '.000', 1, 23)"


def _union_of_streams(
    last_seqs: dict[str, int], limit: int, columns: tuple[str, ...]
) -> tuple[str, list, Any]:
    """``(sql, params, compiler)``: a UNION ALL of each channel stream's ``_recent_rows`` with a
    ``stream_order`` column (the stream's index in ``last_seqs``).

    Each part is wrapped in its own ``SELECT * FROM (…)``, as SQLite refuses
    ORDER BY and LIMIT directly in a compound's parts. The part's SQL is
    compiled once and repeated with each stream's parameters: compiling 200
    querysets would cost more than the query.
    """
    streams = list(last_seqs)
    first = _recent_rows(streams[0], last_seqs[streams[0]], limit, columns)
    compiler = first.query.get_compiler(connection=connection)
    part_sql, part_params = compiler.as_sql()
    channel_param = Message._meta.get_field("channel").get_db_prep_value
    if list(part_params) != [channel_param(uuid.UUID(streams[0]), connection), last_seqs[streams[0]]]:
        raise AssertionError(f"Unexpected parameters of the per-stream query: {part_params!r}")
    parts: list[str] = []
    params: list[Any] = []
    for n, stream in enumerate(streams):
        parts.append(f"SELECT s{n}.*, {n} AS stream_order FROM ({part_sql}) AS s{n}")  # noqa: S608
        params += [channel_param(uuid.UUID(stream), connection), last_seqs[stream]]
    return " UNION ALL ".join(parts), params, compiler


def _channels_pages(last_seqs: dict[str, int], limit: int) -> list[tuple[str, tuple]]:
    """``(stream, row)``: each channel stream's whole page (newest ``limit`` rows), in ONE query."""
    union, params, compiler = _union_of_streams(last_seqs, limit, MESSAGE_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM ({union}) AS u", params)  # noqa: S608
        fetched = cursor.fetchall()
    # Every part selects the same columns: the ORM's own converters (ids,
    # times, booleans per database) apply to the merged rows alike.
    rows = compiler.results_iter(results=[[row[:-1] for row in fetched]], tuple_expected=True)
    streams = list(last_seqs)
    return [(streams[row[-1]], converted) for row, converted in zip(fetched, rows, strict=True)]


def _newest_ids_sql(last_seqs: dict[str, int], limit: int) -> tuple[str, list[Any]]:
    """SQL selecting the ids of the newest ``limit`` rows of these channel streams together.

    Ordered as ``connect_history`` orders payloads: by time to the
    millisecond, then seq, then the streams' order. PostgreSQL walks each
    stream's index from a LATERAL join over arrays of the streams: one small
    plan, where planning a UNION of 200 parts would cost more than running
    it. SQLite, which has no LATERAL, plans the UNION quickly.
    """
    order = f"ORDER BY {_millisecond_sql('r.created_at')} DESC, r.seq DESC, r.stream_order LIMIT %s"
    if connection.vendor == "postgresql":
        table = Message._meta.db_table
        sql = (
            "SELECT r.id FROM (SELECT m.id, m.created_at, m.seq, s.stream_order"  # noqa: S608
            " FROM unnest(%s::uuid[], %s::bigint[]) WITH ORDINALITY AS s(channel_id, last_seq, stream_order)"
            f" CROSS JOIN LATERAL (SELECT id, created_at, seq FROM {table} WHERE channel_id = s.channel_id"
            " AND seq <= s.last_seq ORDER BY seq DESC LIMIT %s) AS m) AS r " + order
        )
        streams = list(last_seqs)
        return sql, [[uuid.UUID(stream) for stream in streams], [last_seqs[s] for s in streams], limit, limit]
    union, params, _compiler = _union_of_streams(last_seqs, limit, ("id", "created_at", "seq"))
    return f"SELECT r.id FROM (SELECT * FROM ({union}) AS r {order}) AS r", [*params, limit]  # noqa: S608


def _channels_newest(last_seqs: dict[str, int], limit: int) -> list[tuple[str, tuple]]:
    """``(stream, row)``: the newest ``limit`` rows of all these channel streams together, in ONE query.

    The streams are searched reading only each candidate's id, time and seq
    (``_newest_ids_sql``); the full row, with its channel and author, is read
    for the ``limit`` chosen.
    """
    newest, params = _newest_ids_sql(last_seqs, limit)
    # The SQL is built here from the model's own table and columns; values are parameters.
    chosen = RawSQL(newest, params)  # noqa: S611
    rows = Message.objects.filter(id__in=chosen).values_list(*MESSAGE_COLUMNS, "channel_id")
    return [(channel_stream(row[-1]), row[:-1]) for row in rows]


def _streams_recent(last_seqs: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    """Each stream's newest payloads up to its given position, newest first (a stream read merged
    with many others holds only those of its payloads that are among the newest of them all).

    Streams whose cached page is current come from the cache. The lobby is
    read alone and cached; the other missing streams are read in ONE query,
    whole and cached when few, merged to one page when many. With their
    reactions and mentions (one query each for all), a connect costs the same
    number of queries in 2 channels as in 200.
    """
    now = time.monotonic()
    limit = PAGE_DEFAULT + 1
    pages: dict[str, list[dict[str, Any]]] = {}
    with _recent_cache_lock:
        for stream, last_seq in last_seqs.items():
            cached = _recent_cache.get(stream)
            if cached is not None and cached[0] == last_seq and now - cached[1] < RECENT_CACHE_SECONDS:
                pages[stream] = cached[2]
    missing = {stream: seq for stream, seq in last_seqs.items() if stream not in pages}
    rows: list[tuple[str, tuple]] = []
    if LOBBY_STREAM in missing:
        lobby_seq = missing.pop(LOBBY_STREAM)
        rows += [(LOBBY_STREAM, row) for row in _recent_rows(LOBBY_STREAM, lobby_seq, limit)]
        fresh = [LOBBY_STREAM]
    else:
        fresh = []
    merged = len(missing) > RECENT_FILL_STREAMS
    if missing:
        rows += (_channels_newest if merged else _channels_pages)(missing, limit)
    if not merged:
        fresh += list(missing)
    for stream in (*fresh, *missing):
        pages[stream] = []
    for (stream, _row), payload in zip(rows, row_payloads([row for _stream, row in rows]), strict=True):
        pages[stream].append(payload)
    with _recent_cache_lock:
        if len(_recent_cache) + len(fresh) > RECENT_CACHE_STREAMS:
            _recent_cache.clear()
        for stream in fresh:
            _recent_cache[stream] = (last_seqs[stream], now, pages[stream])
    return pages


def reset_recent_cache() -> None:
    """Forget cached histories (tests reuse seqs across databases)."""
    with _recent_cache_lock:
        _recent_cache.clear()


def connect_history(*, last_seqs: dict[str, int], limit: int = PAGE_DEFAULT) -> StreamPage:
    """The newest ``limit`` messages across streams (each up to its given seq), oldest first.

    Timestamps have one fixed width, so their strings sort in time order; within
    one stream, seq breaks ties between messages of the same millisecond, and
    exact ties across streams keep the streams' order (the sort is stable).
    """
    pages = _streams_recent(last_seqs)
    candidates = [payload for stream in last_seqs for payload in pages.get(stream, [])[: limit + 1]]
    candidates.sort(key=lambda payload: (payload["created_at"], payload["seq"]), reverse=True)
    return StreamPage(channel=None, messages=candidates[:limit][::-1], has_more=len(candidates) > limit)


# --- history and sync frames, gap fill ----------------------------------------


def history_page(*, user: User, name: str | None, before: Any, limit: int = PAGE_DEFAULT) -> StreamPage:
    """Up to ``limit`` messages of one stream, those just before the message ``before`` (or the newest).

    Each call is one read request (``read_request_count``): the ``history`` frame's.
    """
    read_request_count(user=user)
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
