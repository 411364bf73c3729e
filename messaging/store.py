"""The SQL of a group commit of new messages: one statement per table, whatever the batch's size.

``message_send_batch`` (``messaging.services``) decides; these write and look
up in raw SQL, because building ORM queries and model instances cost more
than the database's own work for each message (``docs/performance.md``).
Values are turned into what each database stores (a UUID is its hex on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connection

from core.sql import uuid_param, values_list
from messaging.models import Message

# The columns ``messages_insert`` writes, in the order of ``NewMessage.values``.
_INSERT_COLUMNS = (
    "id",
    "seq",
    "rev",
    "channel_id",
    "user_id",
    "content",
    "created_at",
    "client_id",
    "reply_to_id",
    "edited_at",
    "deleted",
)


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One row for ``messages_insert``: a message as first stored (``rev`` is its ``seq``)."""

    id: UUID
    seq: int
    channel_id: UUID | None
    user_id: UUID
    content: str
    created_at: datetime
    client_id: str | None
    reply_to: UUID | None


def messages_insert(rows: list[NewMessage]) -> None:
    """Store new messages with one multi-row INSERT (no model instances, no ORM compiler).

    Precondition: each ``seq`` taken in this transaction (``positions_take_many``).
    """
    if not rows:
        return
    if connection.vendor == "postgresql":
        _messages_insert_arrays(rows)
        return
    uuid = uuid_param()
    when = connection.ops.adapt_datetimefield_value
    params: list[Any] = []
    for row in rows:
        params += (
            uuid(row.id),
            row.seq,
            row.seq,
            uuid(row.channel_id),
            uuid(row.user_id),
            row.content,
            when(row.created_at),
            row.client_id,
            uuid(row.reply_to),
            None,
            False,
        )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Message._meta.db_table} ({', '.join(_INSERT_COLUMNS)})"  # noqa: S608
            f" VALUES {values_list(len(rows), len(_INSERT_COLUMNS))}",
            params,
        )


# One statement text whatever the batch's size: psycopg converts a query's placeholders once per
# text and caches it, so a VALUES list that grows with the batch was converted again each time
# (a tenth of the PostgreSQL write path's CPU); columns go as arrays instead.
_INSERT_ARRAYS = (
    f"INSERT INTO {Message._meta.db_table} ({', '.join(_INSERT_COLUMNS)})"  # noqa: S608
    " SELECT id, seq, seq, channel_id, user_id, content, created_at, client_id, reply_to_id, NULL, FALSE"
    " FROM unnest(%s::uuid[], %s::bigint[], %s::uuid[], %s::uuid[], %s::text[], %s::timestamptz[],"
    " %s::text[], %s::uuid[]) AS new (id, seq, channel_id, user_id, content, created_at, client_id,"
    " reply_to_id)"
)


def _messages_insert_arrays(rows: list[NewMessage]) -> None:
    """``messages_insert`` on PostgreSQL: each column as one array parameter."""
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_ARRAYS,
            [
                [row.id for row in rows],
                [row.seq for row in rows],
                [row.channel_id for row in rows],
                [row.user_id for row in rows],
                [row.content for row in rows],
                [row.created_at for row in rows],
                [row.client_id for row in rows],
                [row.reply_to for row in rows],
            ],
        )


def client_ids_first(keys: Iterable[tuple[UUID, str]], *, since: datetime) -> dict[tuple[UUID, str], UUID]:
    """``{(user id, client_id): id}`` of the first message each user sent with that client_id
    since ``since``, for those of ``keys`` that have one: one query for a whole batch.

    Each key is looked up in the ``(user, client_id)`` index (SQLite is told
    not to walk the user's messages by time instead).
    """
    as_db = uuid_param()
    asked = {(as_db(user_id), client_id): (user_id, client_id) for user_id, client_id in keys}
    if not asked:
        return {}
    native = connection.features.has_native_uuid_field
    created_at = "m.created_at" if native else "+m.created_at"  # "+": not an index term, on SQLite
    params: list[Any] = [value for key in asked for value in key]
    params.append(connection.ops.adapt_datetimefield_value(since))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.user_id, m.client_id, m.id FROM (VALUES {values_list(len(asked), 2)}) AS v"  # noqa: S608
            f" JOIN {Message._meta.db_table} m ON m.user_id = v.column1 AND m.client_id = v.column2"
            f" WHERE m.client_id IS NOT NULL AND {created_at} >= %s ORDER BY {created_at}",
            params,
        )
        rows = cursor.fetchall()
    first: dict[tuple[UUID, str], UUID] = {}
    for user_id, client_id, message_id in rows:
        first.setdefault(asked[(user_id, client_id)], message_id if native else UUID(message_id))
    return first
