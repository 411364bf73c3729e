"""A message as the contract shows it, for REST and the WebSocket alike.

Rows are read as tuples (``MESSAGE_COLUMNS``), several times cheaper than model
instances; a page's reactions and mentions are read in one query each.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from core.timestamps import format_timestamp
from messaging.models import Mention, Message, Reaction

MESSAGE_COLUMNS = (
    "id",
    "seq",
    "rev",
    "channel__name",
    "user__username",
    "user_id",
    "content",
    "created_at",
    "client_id",
    "reply_to_id",
    "edited_at",
    "deleted",
)


def message_row_payload(
    row: tuple, *, reactions: list[dict[str, Any]] | None = None, mentions: list[str] | None = None
) -> dict[str, Any]:
    """A message from a ``MESSAGE_COLUMNS`` row and its reactions and mentions."""
    (
        message_id,
        seq,
        rev,
        channel,
        username,
        user_id,
        content,
        created_at,
        client_id,
        reply_to,
        edited_at,
        deleted,
    ) = row
    return {
        "id": str(message_id),
        "seq": seq,
        "rev": rev,
        "channel": channel,
        "username": username,
        "user_id": str(user_id),
        "content": content,
        "created_at": format_timestamp(created_at),
        "client_id": client_id,
        "reply_to": None if reply_to is None else str(reply_to),
        "edited_at": format_timestamp(edited_at),
        "deleted": deleted,
        "reactions": reactions or [],
        "mentions": mentions or [],
    }


def message_payload(message: Message, *, mentions: list[str] | None = None) -> dict[str, Any]:
    """A Message model (``channel`` and ``user`` loaded). ``mentions``: already known (a send), else read."""
    if mentions is not None:
        return _model_row_payload(message, reactions=[], mentions=mentions)
    return model_payloads([message])[0]


def _model_row_payload(message: Message, **extra: Any) -> dict[str, Any]:
    row = (
        message.id,
        message.seq,
        message.rev,
        message.channel.name if message.channel_id else None,
        message.user.username,
        message.user_id,
        message.content,
        message.created_at,
        message.client_id,
        message.reply_to_id,
        message.edited_at,
        message.deleted,
    )
    return message_row_payload(row, **extra)


def model_payloads(messages: list[Message]) -> list[dict[str, Any]]:
    """Payloads of Message models (``channel`` and ``user`` loaded): two queries, however many."""
    ids = [message.id for message in messages if not message.deleted]
    reactions, mentions = (reactions_of(ids), mentions_of(ids)) if ids else ({}, {})
    return [
        _model_row_payload(m, reactions=reactions.get(m.id), mentions=mentions.get(m.id)) for m in messages
    ]


def message_payloads(rows: Any) -> list[dict[str, Any]]:
    """Payloads of a Message queryset, in its order: three queries, however many messages."""
    return row_payloads(list(rows.values_list(*MESSAGE_COLUMNS)))


def row_payloads(tuples: list[tuple]) -> list[dict[str, Any]]:
    """Payloads of ``MESSAGE_COLUMNS`` rows, in order; their reactions and mentions in one query each."""
    ids = [row[0] for row in tuples if not row[-1]]  # a tombstone has no reactions or mentions
    reactions, mentions = (reactions_of(ids), mentions_of(ids)) if ids else ({}, {})
    return [
        message_row_payload(row, reactions=reactions.get(row[0]), mentions=mentions.get(row[0]))
        for row in tuples
    ]


def reactions_of(message_ids: Iterable[UUID]) -> dict[UUID, list[dict[str, Any]]]:
    """Each message's reactions: one entry per emoji in order of first use, usernames sorted ignoring case."""
    by_message: dict[UUID, dict[str, list[str]]] = {}
    rows = Reaction.objects.filter(message_id__in=message_ids).order_by("id")
    for message_id, emoji, username in rows.values_list("message_id", "emoji", "user__username"):
        by_message.setdefault(message_id, {}).setdefault(emoji, []).append(username)
    return {
        message_id: [
            {"emoji": emoji, "usernames": sorted(names, key=str.lower)} for emoji, names in emojis.items()
        ]
        for message_id, emojis in by_message.items()
    }


def mentions_of(message_ids: Iterable[UUID]) -> dict[UUID, list[str]]:
    """Each message's mentioned usernames, sorted ignoring case."""
    by_message: dict[UUID, list[str]] = {}
    rows = Mention.objects.filter(message_id__in=message_ids).values_list("message_id", "user__username")
    for message_id, username in rows:
        by_message.setdefault(message_id, []).append(username)
    return {message_id: sorted(names, key=str.lower) for message_id, names in by_message.items()}
