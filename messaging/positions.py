"""Stream positions: each stream's counter, the one place that hands positions out.

A stream is the lobby (``""``) or one chat channel (its id's hex). Taking a
position increments the stream's ``StreamSequence`` row inside the caller's
transaction, which holds its row lock (PostgreSQL) or the write lock (SQLite,
IMMEDIATE) until commit: position n commits before n+1 can be taken, so
positions are gapless and become visible in order. Changes take one at a
time and seeding takes a block through ``positions_take``; a batch of new
messages takes every stream's block in one statement (``positions_take_many``).
"""

from __future__ import annotations

from django.db import connection

from core.sql import values_list
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


# The first key of the advisory locks that order a batch's streams (the second: the stream's hash).
_ADVISORY_CLASS = 0x5E0


def positions_take_many(counts: dict[str, int]) -> dict[str, int]:
    """Take ``counts[stream]`` positions in each stream at once; return each stream's last one.

    One ``UPDATE … RETURNING`` for every stream of a group commit. On
    PostgreSQL a batch first takes a transaction-level advisory lock per
    stream, in the order of their names, so two processes' batches over the
    same streams queue instead of deadlocking: the UPDATE's own row locks come
    in whatever order its plan meets the rows (and ``SELECT … ORDER BY …
    FOR UPDATE`` first was seen to deadlock all the same, the rows being
    re-found in another version). SQLite's IMMEDIATE transaction holds the
    whole database already. Precondition: an open transaction; the locks are
    held until it ends.
    """
    if not counts:
        return {}
    streams = sorted(counts)
    if connection.vendor == "postgresql" and len(streams) > 1:
        names = values_list(len(streams), 1)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT pg_advisory_xact_lock(%s, hashtext(stream)) FROM (VALUES {names})"  # noqa: S608
                " AS v (stream) ORDER BY stream",
                [_ADVISORY_CLASS, *streams],
            )
    last = _shift({stream: counts[stream] for stream in streams})
    for stream in streams:
        if stream not in last:  # a stream without its counter row yet: created here, as one at a time
            last[stream] = positions_take(stream, counts[stream])
    return last


def positions_give_back(counts: dict[str, int]) -> None:
    """Return the last ``counts[stream]`` positions just taken in each stream, unused.

    Precondition: taken in this transaction, whose locks still keep every other
    writer out, so nobody can have taken a position after them: no gap is left.
    """
    if counts:
        _shift({stream: -count for stream, count in sorted(counts.items())})


def _shift(deltas: dict[str, int]) -> dict[str, int]:
    """Add each delta to its stream's counter in one statement; the new values of the rows found."""
    table = StreamSequence._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS s SET last_seq = s.last_seq + v.column2"  # noqa: S608
            f" FROM (VALUES {values_list(len(deltas), 2)}) AS v"
            " WHERE s.stream = v.column1 RETURNING stream, last_seq",
            [value for item in deltas.items() for value in item],
        )
        return dict(cursor.fetchall())


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
