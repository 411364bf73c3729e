"""Reads for messages: the keyset pages behind ``GET /api/messages`` and ``/messages/me``.

One stream (a channel, or the lobby) is ordered by ``seq``; several streams
together by ``(created_at, id)``. Pages are cut at a message (``before`` or
``after`` its id), never by offset, so a page boundary holds while new
messages arrive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from accounts.models import User
from chatrooms.models import Membership
from chatrooms.selectors import access_channel
from chatsite.errors import InvalidInput
from messaging.models import Message


class AllStreams:
    """Sentinel for "no ``channel`` filter": the lobby and every channel of the user."""

    def __repr__(self) -> str:
        return "ALL_STREAMS"


ALL_STREAMS = AllStreams()


@dataclass(frozen=True)
class MessagePage:
    """Messages in ascending order, and the cursor of the pages around them.

    ``older``/``newer`` are the query parameters of the neighbouring page
    (``{"before": id}``, ``{"after": id}``, or ``{}`` for the newest page), or
    None when there is no such page.
    """

    messages: list[Message]
    older: dict[str, str] | None
    newer: dict[str, str] | None


def readable_filter(*, user: User) -> Q:
    """Messages ``user`` may read now: the lobby and the channels they belong to."""
    return Q(channel__isnull=True) | Q(
        channel_id__in=Membership.objects.filter(user=user).values("channel_id")
    )


class _Order:
    """Comparisons and orderings for one key: ``seq`` in one stream, ``(created_at, id)`` across."""

    def __init__(self, *, by_seq: bool) -> None:
        self.by_seq = by_seq

    def asc(self) -> list[str]:
        return ["seq"] if self.by_seq else ["created_at", "id"]

    def desc(self) -> list[str]:
        return ["-seq"] if self.by_seq else ["-created_at", "-id"]

    def older(self, anchor: Message, *, inclusive: bool = False) -> Q:
        if self.by_seq:
            return Q(seq__lte=anchor.seq) if inclusive else Q(seq__lt=anchor.seq)
        same = Q(created_at=anchor.created_at) & (Q(id__lte=anchor.id) if inclusive else Q(id__lt=anchor.id))
        return Q(created_at__lt=anchor.created_at) | same

    def newer(self, anchor: Message, *, inclusive: bool = False) -> Q:
        if self.by_seq:
            return Q(seq__gte=anchor.seq) if inclusive else Q(seq__gt=anchor.seq)
        same = Q(created_at=anchor.created_at) & (Q(id__gte=anchor.id) if inclusive else Q(id__gt=anchor.id))
        return Q(created_at__gt=anchor.created_at) | same


def _parse_id(raw: str, *, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput("Must be a message id (a UUID).", field=field) from exc


def message_page(
    *,
    user: User,
    channel_name: str | None | AllStreams = ALL_STREAMS,
    before: str | None = None,
    after: str | None = None,
    limit: int,
    author: User | None = None,
) -> MessagePage:
    """One page of the messages ``user`` may read, optionally only one stream and one author.

    ``channel_name``: ALL_STREAMS, None for the lobby, or a channel name
    (404 unknown, 403 not a member). ``before``/``after`` must name a message
    ``user`` can read in that scope, else 400.
    """
    if before is not None and after is not None:
        raise InvalidInput("Give before or after, not both.", field="after")
    if isinstance(channel_name, AllStreams):
        scope = Message.objects.filter(readable_filter(user=user))
        order = _Order(by_seq=False)
    elif channel_name is None:
        scope = Message.objects.filter(channel__isnull=True)
        order = _Order(by_seq=True)
    else:
        channel = access_channel(user=user, name=channel_name)
        scope = Message.objects.filter(channel=channel)
        order = _Order(by_seq=True)

    anchor = None
    field = "before" if before is not None else "after"
    raw = before if before is not None else after
    if raw is not None:
        anchor = scope.filter(id=_parse_id(raw, field=field)).only("id", "seq", "created_at").first()
        if anchor is None:
            raise InvalidInput("No message with this id that you can read here.", field=field)

    if author is not None:
        scope = scope.filter(user=author)
    streams = _stream_filters(user=user) if isinstance(channel_name, AllStreams) and author is None else None
    rows = scope.select_related("user", "channel")
    return _cut(rows, scope, order, anchor=anchor, direction=field, limit=limit, streams=streams)


def _stream_filters(*, user: User) -> list[Q]:
    """One filter per stream the user reads: the lobby, then each of their channels."""
    channel_ids = Membership.objects.filter(user=user).values_list("channel_id", flat=True)
    return [Q(channel__isnull=True), *(Q(channel_id=channel_id) for channel_id in channel_ids)]


def _window(
    rows: QuerySet[Message], ordering: list[str], n: int, *, where: Q | None, streams: list[Q] | None
) -> list[Message]:
    """The first ``n`` rows of ``rows`` in ``ordering``, optionally merged stream by stream.

    Across streams, one query with ``lobby OR channel IN (...)`` makes SQLite
    gather and sort every readable row; one short index scan per stream
    (``messaging_by_stream_time``) and a merge reads only what the page needs.
    """
    if where is not None:
        rows = rows.filter(where)
    if streams is None:
        return list(rows.order_by(*ordering)[:n])
    keys = [
        key
        for stream in streams
        for key in rows.filter(stream).order_by(*ordering).values_list("created_at", "id")[:n]
    ]
    keys.sort(reverse=ordering[0].startswith("-"))
    chosen = [message_id for _created, message_id in keys[:n]]
    by_id = {message.id: message for message in rows.filter(id__in=chosen)}
    return [by_id[message_id] for message_id in chosen if message_id in by_id]


def _ids(queryset: QuerySet[Message], n: int) -> list[uuid.UUID]:
    return list(queryset.values_list("id", flat=True)[:n])


def _cut(
    rows: QuerySet[Message],
    scope: QuerySet[Message],
    order: _Order,
    *,
    anchor: Message | None,
    direction: str,
    limit: int,
    streams: list[Q] | None = None,
) -> MessagePage:
    """Fetch ``limit + 1`` rows to learn whether more lie beyond, then name the neighbours."""
    if anchor is None or direction == "before":
        where = None if anchor is None else order.older(anchor)
        window = _window(rows, order.desc(), limit + 1, where=where, streams=streams)
        messages = window[:limit][::-1]
        has_older = len(window) > limit
        has_newer = anchor is not None and bool(messages) and scope.filter(order.newer(messages[-1])).exists()
    else:
        window = _window(rows, order.asc(), limit + 1, where=order.newer(anchor), streams=streams)
        messages = window[:limit]
        has_newer = len(window) > limit
        has_older = bool(messages) and scope.filter(order.older(messages[0])).exists()

    older = {"before": str(messages[0].id)} if has_older else None
    newer = {"after": str(messages[-1].id)} if has_newer else None
    if not messages and anchor is not None:
        older, newer = _around_empty(scope, order, anchor=anchor, direction=direction, limit=limit)
    return MessagePage(messages=messages, older=older, newer=newer)


def _around_empty(
    scope: QuerySet[Message], order: _Order, *, anchor: Message, direction: str, limit: int
) -> tuple[dict[str, str] | None, dict[str, str] | None]:
    """Neighbours of an empty page: the ``limit`` messages on the anchor's other side, anchor included.

    An empty ``before`` page means nothing is older, so the newer page starts
    at the anchor; an empty ``after`` page means nothing is newer.
    """
    if direction == "before":
        ids = _ids(scope.filter(order.newer(anchor, inclusive=True)).order_by(*order.asc()), limit + 1)
        if not ids:
            return None, None
        # ``before`` the (limit+1)th gives exactly the limit messages from the
        # anchor on; with fewer, the newest page already holds them all.
        return None, ({"before": str(ids[limit])} if len(ids) > limit else {})
    ids = _ids(scope.filter(order.older(anchor, inclusive=True)).order_by(*order.desc()), limit + 1)
    if not ids:
        return None, None
    return ({"after": str(ids[limit])} if len(ids) > limit else {}), None
