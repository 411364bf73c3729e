"""Keyset pages of messages: cut at a message, never by offset.

One stream (a channel, or the lobby) is ordered by ``seq``; several streams
together by ``(created_at, id)``. A page boundary cut at a message holds while
new messages arrive. ``messaging.selectors.message_page`` is the entry point.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from messaging.models import Message


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


class Order:
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


def cut(
    rows: QuerySet[Message],
    scope: QuerySet[Message],
    order: Order,
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
    scope: QuerySet[Message], order: Order, *, anchor: Message, direction: str, limit: int
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
