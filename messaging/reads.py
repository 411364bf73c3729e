"""Read state: each user's read position per stream, and the unread and mention counts above it.

A channel member's position is ``Membership.last_read_seq``; the lobby's is
``LobbyRead.last_read_seq`` (a missing row counts as 0). ``read_mark`` is the
one write path for reads (``POST /api/read``, the ``read`` frame);
``sender_reads_move`` moves a sender's position in the same commit as their
messages (``message_send_batch``). Every move is told to all of the user's
connections as a ``read`` frame, after commit.

Counts are read in one statement for any number of streams
(``read_states``): per stream, correlated ``COUNT`` subqueries over the
``(channel, seq)`` index, bounded by the stream's last position read in the
same statement, so ``last_seq`` and the counts describe one moment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db import IntegrityError, connection, transaction

from accounts.models import User
from chatrooms.models import Membership
from chatrooms.selectors import access_channel
from core.errors import InvalidInput
from core.prepared import fetch_all
from core.sql import uuid_param, values_list
from core.userlimits import user_rate_allows
from messaging.models import LobbyRead, Mention, Message, StreamSequence
from messaging.positions import last_position
from realtime import frames
from realtime.envelopes import frame_envelope
from realtime.groups import LOBBY_STREAM, channel_stream, user_group
from realtime.publish import broadcast_all_on_commit, broadcast_on_commit

logger = logging.getLogger(__name__)

# A read past CHAT_READ_RATE is kept (the highest per user and stream) and
# applied this long after the first one kept, so the latest position still
# lands within a second while the writes and ``read`` frames stay bounded.
READ_DEFER_SECONDS = 0.5


@dataclass(frozen=True)
class ReadState:
    """One stream's read state for one user (``channel_id`` None: the lobby)."""

    channel_id: UUID | None
    last_read_seq: int
    last_seq: int
    unread: int
    mentions: int

    def counts(self) -> dict[str, int]:
        return {"last_read_seq": self.last_read_seq, "unread": self.unread, "mentions": self.mentions}


@dataclass(frozen=True)
class ReadResult:
    """What ``POST /api/read`` answers: the stream's name (None: the lobby) and its state."""

    channel: str | None
    state: ReadState


# --- selectors ------------------------------------------------------------------


def _stream_key_sql(column: str) -> str:
    """SQL turning a channel id column into its stream name (the id's hex), per database.

    SQLite stores a UUID as its 32-digit hex already; PostgreSQL as ``uuid``.
    """
    if connection.vendor == "postgresql":
        return f"replace({column}::text, '-', '')"
    return column


# A user mentioned at most this often in all is counted from their mentions;
# more, from the stream's unread messages (either way the same count).
MENTION_FIRST_MAX = 500


def _counts_sql(where_stream: str) -> tuple[str, str]:
    """The two correlated subqueries (unread, mentions) for one stream row ``r`` joined to ``s``.

    Unread walks the ``(channel, seq, deleted, user)`` index from the read
    position up to the stream's last position, reading no table row. Mentions
    start from the user's own mentions (``(user, message)`` index, then each
    message by key) while they are few: a read position far behind then costs
    nothing extra. Past ``MENTION_FIRST_MAX`` mentions in all they are found
    from the unread messages instead, meeting ``Mention``'s (message, user)
    unique index. (SQLite takes ``CROSS JOIN``'s order as written; PostgreSQL
    plans it as any join.) Parameters: ``_counts_params``.
    """
    message = Message._meta.db_table
    mention = Mention._meta.db_table
    above = (
        f"{where_stream} AND m.seq > r.last_read_seq AND m.seq <= COALESCE(s.last_seq, 0)"
        " AND m.deleted = %s AND m.user_id <> %s"
    )
    unread = f"(SELECT COUNT(*) FROM {message} m WHERE {above})"  # noqa: S608
    mentions = (
        f"(CASE WHEN (SELECT COUNT(*) FROM {mention} WHERE user_id = %s) <= {int(MENTION_FIRST_MAX)}"  # noqa: S608
        f" THEN (SELECT COUNT(*) FROM {mention} n CROSS JOIN {message} m"
        f" WHERE n.user_id = %s AND m.id = n.message_id AND {above})"
        f" ELSE (SELECT COUNT(*) FROM {message} m JOIN {mention} n ON n.message_id = m.id"
        f" WHERE {above} AND n.user_id = %s) END)"
    )
    return unread, mentions


def _counts_params(user_param: Any) -> list[Any]:
    """The parameters of ``_counts_sql``'s two subqueries, in order."""
    above = [False, user_param]
    return [*above, user_param, user_param, *above, *above, user_param]


def _db_id(model: Any, field: str, value: UUID) -> Any:
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def read_states(
    *, user_id: UUID, channel_ids: Iterable[UUID] | None = None, lobby: bool = True
) -> dict[UUID | None, ReadState]:
    """The read state of the user's channels (all, or those of ``channel_ids`` they belong to)
    and of the lobby (``lobby``), keyed by channel id (None: the lobby). One query, however many.

    Channels the user is not a member of are absent.
    """
    membership = Membership._meta.db_table
    sequence = StreamSequence._meta.db_table
    lobby_read = LobbyRead._meta.db_table
    user_param = _db_id(Message, "user", user_id)
    count_params = _counts_params(user_param)
    parts: list[str] = []
    params: list[Any] = []
    ids = None if channel_ids is None else list(channel_ids)
    if ids is None or ids:
        unread, mentions = _counts_sql("m.channel_id = r.channel_id")
        only = ""
        if ids:
            only = f" AND r.channel_id IN ({', '.join(['%s'] * len(ids))})"
        parts.append(
            f"SELECT r.channel_id, r.last_read_seq, COALESCE(s.last_seq, 0), {unread}, {mentions}"  # noqa: S608
            f" FROM {membership} r LEFT JOIN {sequence} s ON s.stream = {_stream_key_sql('r.channel_id')}"
            f" WHERE r.user_id = %s{only}"
        )
        params += [*count_params, _db_id(Membership, "user", user_id)]
        params += [_db_id(Membership, "channel", channel_id) for channel_id in ids or ()]
    if lobby:
        unread, mentions = _counts_sql("m.channel_id IS NULL")
        parts.append(
            f"SELECT NULL, r.last_read_seq, COALESCE(s.last_seq, 0), {unread}, {mentions}"  # noqa: S608
            f" FROM (SELECT COALESCE(MAX(last_read_seq), 0) AS last_read_seq FROM {lobby_read}"
            f" WHERE user_id = %s) r LEFT JOIN {sequence} s ON s.stream = %s"
        )
        params += [*count_params, _db_id(LobbyRead, "user", user_id), LOBBY_STREAM]
    if not parts:
        return {}
    to_uuid = Membership._meta.get_field("channel").target_field.to_python
    rows = fetch_all(" UNION ALL ".join(parts), params)
    states: dict[UUID | None, ReadState] = {}
    for channel_id, last_read_seq, last_seq, unread_count, mention_count in rows:
        key = None if channel_id is None else to_uuid(channel_id)
        states[key] = ReadState(key, last_read_seq, last_seq, unread_count, mention_count)
    return states


def channel_read_counts(*, user_id: UUID, channel_ids: list[UUID]) -> dict[UUID, dict[str, int]]:
    """``{channel id: {"last_read_seq", "unread", "mentions"}}``: what ``chatrooms.streams`` asks
    for ``GET /api/channels/me``. One query for the whole page."""
    if not channel_ids:
        return {}
    states = read_states(user_id=user_id, channel_ids=channel_ids, lobby=False)
    return {channel_id: state.counts() for channel_id, state in states.items() if channel_id is not None}


# --- services ---------------------------------------------------------------------


def clean_seq(raw: Any) -> int:
    """A read position from client input: a non-negative integer (booleans are not)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise InvalidInput("seq must be a non-negative integer.", field="seq")
    return raw


def _pointer_move(*, user_id: UUID, channel_id: UUID | None, seq: int) -> bool:
    """Move the read position up to ``seq``, never down: one UPDATE … WHERE last_read_seq < seq.

    The lobby's row may be missing (a user created before read state existed):
    it is created then, under a savepoint in case another request does too.
    """
    if channel_id is not None:
        rows = Membership.objects.filter(user_id=user_id, channel_id=channel_id, last_read_seq__lt=seq)
        return rows.update(last_read_seq=seq) > 0
    if LobbyRead.objects.filter(user_id=user_id, last_read_seq__lt=seq).update(last_read_seq=seq):
        return True
    if seq <= 0 or LobbyRead.objects.filter(user_id=user_id).exists():
        return False
    try:
        with transaction.atomic():
            LobbyRead.objects.create(user_id=user_id, last_read_seq=seq)
    except IntegrityError:  # created meanwhile: move it like any other
        return LobbyRead.objects.filter(user_id=user_id, last_read_seq__lt=seq).update(last_read_seq=seq) > 0
    return True


def _read_envelope(*, user_id: UUID, channel: str | None, state: ReadState) -> tuple[str, dict[str, Any]]:
    """The ``read`` frame telling every connection of the user the new position and counts."""
    frame = frames.read_frame(
        channel=channel, last_read_seq=state.last_read_seq, unread=state.unread, mentions=state.mentions
    )
    return user_group(user_id), frame_envelope(frames.encode(frame))


def _announce_read_on_commit(*, user_id: UUID, channel: str | None, state: ReadState) -> None:
    """Tell every connection of the user the new position and counts, once committed."""
    broadcast_on_commit(*_read_envelope(user_id=user_id, channel=channel, state=state))


def read_mark(*, user: User, channel_name: str | None, seq: Any) -> ReadResult:
    """Move ``user``'s read position in a channel (None: the lobby) to ``seq``, clamped to the
    stream's last position and never backwards; announce it when it moved.

    Raises ``invalid_message`` (400) for a bad ``seq``, ``channel_not_found``
    (404) and ``not_a_member`` (403) through ``access_channel``. Past
    ``CHAT_READ_RATE`` the move is not refused but deferred (``deferred_reads``):
    the answer is then the position as it stands, and the move lands within a
    second, announced as usual.
    """
    wanted = clean_seq(seq)
    channel = None if channel_name is None else access_channel(user=user, name=channel_name)
    channel_id = channel.id if channel is not None else None
    name = channel.name if channel is not None else None
    if not user_rate_allows("read", user.id):
        deferred_reads.keep(user_id=user.id, channel_id=channel_id, channel=name, seq=wanted)
        return ReadResult(channel=name, state=_read_state(user_id=user.id, channel_id=channel_id, target=0))
    return ReadResult(
        channel=name, state=_read_move(user_id=user.id, channel_id=channel_id, channel=name, seq=wanted)
    )


def _read_state(*, user_id: UUID, channel_id: UUID | None, target: int) -> ReadState:
    states = read_states(
        user_id=user_id, channel_ids=[] if channel_id is None else [channel_id], lobby=channel_id is None
    )
    return states.get(channel_id) or ReadState(channel_id, target, target, 0, 0)


def _read_move(*, user_id: UUID, channel_id: UUID | None, channel: str | None, seq: int) -> ReadState:
    """Move the position to ``seq`` (clamped, never back) and announce it when it moved."""
    with transaction.atomic():
        target = min(seq, last_position(channel_stream(channel_id)))
        moved = _pointer_move(user_id=user_id, channel_id=channel_id, seq=target)
        state = _read_state(user_id=user_id, channel_id=channel_id, target=target)
        if moved:
            _announce_read_on_commit(user_id=user_id, channel=channel, state=state)
    return state


class DeferredReads:
    """Reads dropped by ``CHAT_READ_RATE``, the highest per user and stream, applied by a timer.

    Dropping them silently must not lose the reader's place: the last
    position sent still applies, ``READ_DEFER_SECONDS`` after the first read
    kept since the last flush, on a short-lived thread with its own database
    connection. Reads kept in a process that dies before the flush are lost,
    as an unsent read would be.
    """

    def __init__(self, delay: float = READ_DEFER_SECONDS) -> None:
        self.delay = delay
        self._lock = threading.Lock()
        self._pending: dict[tuple[UUID, UUID | None], tuple[str | None, int]] = {}
        self._timer: threading.Timer | None = None

    def keep(self, *, user_id: UUID, channel_id: UUID | None, channel: str | None, seq: int) -> None:
        with self._lock:
            kept = self._pending.get((user_id, channel_id))
            if kept is None or kept[1] < seq:
                self._pending[(user_id, channel_id)] = (channel, seq)
            if self._timer is None:
                self._timer = threading.Timer(self.delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Apply every kept read (each in its own transaction); called by the timer, or by tests."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._timer = None
        try:
            for (user_id, channel_id), (channel, seq) in pending.items():
                try:
                    _read_move(user_id=user_id, channel_id=channel_id, channel=channel, seq=seq)
                except Exception:
                    logger.exception("a deferred read of %s could not be applied", user_id)
        finally:
            if isinstance(threading.current_thread(), threading.Timer):
                connection.close()  # the timer's thread ends here; so does its connection

    def reset(self) -> None:
        """Forget what is kept and stop the timer (tests)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._pending, self._timer = {}, None


deferred_reads = DeferredReads()


@dataclass(frozen=True)
class Posted:
    """One message stored in a batch, as the sender's read move needs it."""

    user_id: UUID
    channel_id: UUID | None
    channel: str | None
    seq: int
    mentioned: frozenset[UUID]


def sender_reads_move(posted: list[Posted]) -> None:
    """Move each sender's read position to their last message in each stream of one batch.

    Called inside the batch's transaction, after every message took its
    position (the stream locks are held until commit), so the only messages
    above a sender's last one are later ones of the same batch: its unread and
    mention counts come from the batch itself, with no count query. One
    UPDATE for every channel position of the batch and one for the lobby's,
    then one ``read`` frame per (sender, stream) that moved.
    """
    last: dict[tuple[UUID, UUID | None], Posted] = {}
    for item in posted:
        key = (item.user_id, item.channel_id)
        if key not in last or item.seq > last[key].seq:
            last[key] = item
    moved = _channel_reads_move([own for (_, channel_id), own in last.items() if channel_id is not None])
    lobby = [own for (_, channel_id), own in last.items() if channel_id is None]
    moved |= _lobby_reads_move(lobby)
    by_stream: dict[UUID | None, list[Posted]] = {}
    for item in posted:
        by_stream.setdefault(item.channel_id, []).append(item)
    envelopes = []
    for (user_id, channel_id), own in last.items():
        if (user_id, channel_id) not in moved:
            continue
        stream = by_stream[channel_id]
        above = [item for item in stream if item.seq > own.seq and item.user_id != user_id]
        state = ReadState(
            channel_id,
            own.seq,
            max(item.seq for item in stream),
            len(above),
            sum(1 for item in above if user_id in item.mentioned),
        )
        envelopes.append(_read_envelope(user_id=user_id, channel=own.channel, state=state))
    broadcast_all_on_commit(envelopes)


def _values_update(table: str, *, where: str, rows: list[tuple], returning: str) -> list[tuple]:
    """``UPDATE table SET last_read_seq = v.<last column> FROM (VALUES rows) AS v WHERE …``: the
    rows moved (``returning``), in one statement however many."""
    width = len(rows[0])
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET last_read_seq = v.column{width}"  # noqa: S608
            f" FROM (VALUES {values_list(len(rows), width)}) AS v"
            f" WHERE {where} AND r.last_read_seq < v.column{width} RETURNING {returning}",
            [value for row in rows for value in row],
        )
        return cursor.fetchall()


def _channel_reads_move(own: list[Posted]) -> set[tuple[UUID, UUID | None]]:
    """Move the members' positions up to their own last messages; the (user, channel) pairs moved."""
    if not own:
        return set()
    as_db = uuid_param()
    asked = {(as_db(item.user_id), as_db(item.channel_id)): item for item in own}
    found = _values_update(
        Membership._meta.db_table,
        where="r.user_id = v.column1 AND r.channel_id = v.column2",
        rows=[(*key, item.seq) for key, item in asked.items()],
        returning="user_id, channel_id",
    )
    return {(asked[row].user_id, asked[row].channel_id) for row in found}


def _lobby_reads_move(own: list[Posted]) -> set[tuple[UUID, UUID | None]]:
    """As ``_channel_reads_move`` for the lobby; a user without a lobby row gets one (rare)."""
    if not own:
        return set()
    as_db = uuid_param()
    asked = {as_db(item.user_id): item for item in own}
    found = _values_update(
        LobbyRead._meta.db_table,
        where="r.user_id = v.column1",
        rows=[(key, item.seq) for key, item in asked.items()],
        returning="user_id",
    )
    moved = {(asked[user_id].user_id, None) for (user_id,) in found}
    for item in own:
        if (item.user_id, None) not in moved and _pointer_move(
            user_id=item.user_id, channel_id=None, seq=item.seq
        ):
            moved.add((item.user_id, None))
    return moved


def lobby_read_start(*, user_id: UUID) -> None:
    """Give a new user a lobby read position at the lobby's current position (nothing unread)."""
    LobbyRead.objects.get_or_create(user_id=user_id, defaults={"last_read_seq": last_position(LOBBY_STREAM)})
