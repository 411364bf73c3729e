"""Full-text search of messages, in the database's own index, never by scanning every message.

PostgreSQL matches ``to_tsvector('simple', content)`` (GIN-indexed) against
the words; SQLite asks its FTS5 table (``messaging_message_fts``), which
triggers keep in step with every insert, edit and deletion in the write's own
transaction (migration ``messaging/0005``). Both match whole words ignoring
case, every word required. Deleted messages are never found.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from accounts.models import User
from core.errors import InvalidInput
from messaging.models import Message
from messaging.pages import MessagePage
from messaging.selectors import ALL_STREAMS, AllStreams, message_page

QUERY_MAX_LENGTH = 200
_WORD = re.compile(r"\w+")


def clean_query(raw: Any) -> list[str]:
    """The words of ``q``: 1 to 200 characters with at least one word character, else 400."""
    if not isinstance(raw, str) or not 1 <= len(raw) <= QUERY_MAX_LENGTH or "\x00" in raw:
        raise InvalidInput(f"q must be 1 to {QUERY_MAX_LENGTH} characters.", field="q")
    words = _WORD.findall(raw.lower())
    if not words:
        raise InvalidInput("q needs at least one letter or digit.", field="q")
    return words


def _matching(words: list[str]) -> QuerySet[Message]:
    """Messages whose content holds every word, through the full-text index."""
    if connection.vendor == "postgresql":
        return Message.objects.extra(
            where=["to_tsvector('simple'::regconfig, content) @@ plainto_tsquery('simple'::regconfig, %s)"],
            params=[" ".join(words)],
        )
    phrase = " ".join(f'"{word}"' for word in words)  # \w+ words hold no quote
    ids = RawSQL(
        "SELECT message_id FROM messaging_message_fts WHERE messaging_message_fts MATCH %s", [phrase]
    )
    return Message.objects.filter(id__in=ids)


def message_search(
    *,
    user: User,
    q: Any,
    channel_name: str | None | AllStreams = ALL_STREAMS,
    before: str | None = None,
    after: str | None = None,
    limit: int,
) -> MessagePage:
    """One page of the messages ``user`` can read whose content has every word of ``q``, oldest first
    within the page (the view shows it newest first); cursors as in ``message_page``."""
    words = clean_query(q)
    return message_page(
        user=user,
        channel_name=channel_name,
        before=before,
        after=after,
        limit=limit,
        within=_matching(words).filter(deleted=False),
    )
