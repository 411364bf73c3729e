"""Stream positions: each stream's counter, the one place that hands positions out.

A stream is the lobby (``""``) or one chat channel (its id's hex). Taking a
position increments the stream's ``StreamSequence`` row inside the caller's
transaction, which holds its row lock (PostgreSQL) or the write lock (SQLite,
IMMEDIATE) until commit: position n commits before n+1 can be taken, so
positions are gapless and become visible in order. The message service takes
one at a time, seeding takes a block; both through ``positions_take``.
"""

from __future__ import annotations

from django.db import connection

from messaging.models import Message, StreamSequence
from realtime.groups import LOBBY_STREAM


def positions_take(stream: str, count: int = 1) -> int:
    """Take the stream's next ``count`` positions and return the last of them.

    Precondition: an open transaction; the lock is held until it ends.
    """
    table = StreamSequence._meta.db_table
    sql = f"UPDATE {table} SET last_seq = last_seq + %s WHERE stream = %s RETURNING last_seq"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [count, stream])
        row = cursor.fetchone()
        if row is None:
            StreamSequence.objects.get_or_create(stream=stream)
            cursor.execute(sql, [count, stream])
            row = cursor.fetchone()
    return row[0]


def last_positions(streams: list[str]) -> dict[str, int]:
    """The last committed position of each stream (its counter never runs ahead of a commit)."""
    last = dict.fromkeys(streams, 0)
    last.update(StreamSequence.objects.filter(stream__in=streams).values_list("stream", "last_seq"))
    return last


# --- what chatrooms needs of a channel's stream (``chatrooms.streams``) ------


def stream_created(stream: str) -> None:
    StreamSequence.objects.create(stream=stream)


def last_position(stream: str) -> int:
    return last_positions([stream])[stream]


def stream_removed(stream: str) -> None:
    """Delete a channel stream's messages (one DELETE, not the ORM's row-by-row cascade) and counter."""
    if stream == LOBBY_STREAM:
        raise ValueError("The lobby's stream is never removed.")
    Message.objects.filter(channel_id=stream).delete()
    StreamSequence.objects.filter(stream=stream).delete()
