"""Bulk demo and benchmark data: users, channels, memberships, messages and login tokens.

Called by ``manage.py seed_chat``. It writes rows in bulk instead of going
through the per-message service, but keeps the service's invariants:

- every seeded user shares one password hash, computed once (bcrypt is the
  slow part of creating a user);
- seqs continue each stream's counter gaplessly: each stream's block is taken
  through ``messaging.positions.positions_take``, as the message service
  takes its one, so the counters end at the last seq;
- each message is written by a member of its channel (anyone for the lobby),
  and ``created_at`` grows with seq, so time order and seq order agree;
- tokens come from real ``LoginSession`` rows and
  ``accounts.tokens.issue_token_pair``, as at login, only with a chosen lifetime.

Messages are written with one ``INSERT`` compiled once and sent with
``executemany``, values already in the database's form, without a model
instance per row: Django's ``bulk_create`` spent most of its time compiling
each batch and building models, and a benchmark's 1,000,000 messages of
history must seed in minutes.

Seeded messages are not broadcast: seeding is for a database no client is
reading yet. Re-running with the same prefix reuses the users and channels it
finds (by name, ignoring case) and adds messages after the existing ones.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol, TypeVar

from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import LoginSession, User
from accounts.tokens import issue_token_pair
from chatrooms.models import Channel, Membership
from messaging.models import LobbyRead, Message
from messaging.positions import last_position, positions_take
from realtime.groups import LOBBY_STREAM, channel_stream

# Letters, digits, ``_`` and ``-``: valid at the start of both a username and
# a channel name, and short enough to leave room for the numbering.
PREFIX_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}\Z")
BATCH_SIZE = 2000
SEED_PAGE_CACHE_KIB = 256 * 1024
# Every column of a Message, in the order of the seeding INSERT (a test checks none is missing).
MESSAGE_FIELDS = (
    "id",
    "seq",
    "rev",
    "channel",
    "user",
    "content",
    "created_at",
    "client_id",
    "reply_to",
    "edited_at",
    "deleted",
)
USER_AGENT = "seed_chat"
SEED_EMAIL_DOMAIN = "seed.invalid"

T = TypeVar("T")


class Progress(Protocol):
    """What seeding reports to: a progress bar in the command, nothing in tests."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, amount: int) -> None: ...


class NoProgress:
    def start(self, stage: str, total: int) -> None:
        pass

    def advance(self, stage: str, amount: int) -> None:
        pass


@dataclass
class SeedResult:
    users: list[User]
    channels: list[Channel]
    users_created: int = 0
    channels_created: int = 0
    memberships_created: int = 0
    messages_created: int = 0
    # stream -> (first seq written, last seq written)
    seq_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)


def username_for(prefix: str, index: int) -> str:
    return f"{prefix}_{index:06d}"


def channel_name_for(prefix: str, index: int) -> str:
    return f"{prefix}-room{index:04d}"


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def check_arguments(
    *, users: int, channels: int, members_per_channel: int, messages: int, prefix: str
) -> None:
    if not PREFIX_PATTERN.match(prefix):
        raise ValueError("prefix: 1 to 20 letters, digits, '_' or '-', starting with a letter or digit")
    if min(users, channels, members_per_channel, messages) < 0:
        raise ValueError("counts must not be negative")
    if users >= 1_000_000 or channels >= 10_000:
        raise ValueError("at most 999,999 users and 9,999 channels per prefix")
    if channels and not 1 <= members_per_channel <= users:
        raise ValueError("members-per-channel must be between 1 and the number of users")
    if messages and not users:
        raise ValueError("messages need at least one user to write them")


def seed_chat(
    *,
    users: int,
    channels: int,
    members_per_channel: int,
    messages: int,
    prefix: str,
    password: str,
    status: str = User.Status.ONLINE,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> SeedResult:
    """Create or reuse ``prefix``'s users and channels and add ``messages`` messages.

    Channel ``j`` gets the ``members_per_channel`` users that follow user
    ``j * members_per_channel`` (wrapping round), so with enough users the
    channels have disjoint memberships; the first of them owns it.
    Runs in one transaction.
    """
    if status not in User.Status.values:
        raise ValueError(f"status must be one of {', '.join(User.Status.values)}")
    check_arguments(
        users=users,
        channels=channels,
        members_per_channel=members_per_channel,
        messages=messages,
        prefix=prefix,
    )
    progress = progress or NoProgress()
    with transaction.atomic():
        user_rows, users_created = _ensure_users(prefix, users, password, status, progress, batch_size)
        channel_rows, members, channels_created = _ensure_channels(
            prefix, channels, members_per_channel, user_rows, batch_size
        )
        memberships_created = _ensure_memberships(channel_rows, members, progress, batch_size)
        result = SeedResult(
            users=user_rows,
            channels=channel_rows,
            users_created=users_created,
            channels_created=channels_created,
            memberships_created=memberships_created,
        )
        if messages:
            _add_messages(result, members, messages, progress, batch_size)
    return result


def _ensure_users(
    prefix: str, count: int, password: str, status: str, progress: Progress, batch_size: int
) -> tuple[list[User], int]:
    names = [username_for(prefix, i) for i in range(count)]
    existing = {
        user.username.lower(): user for user in User.objects.filter(username__istartswith=f"{prefix}_")
    }
    missing = [name for name in names if name.lower() not in existing]
    progress.start("users", len(missing))
    if missing:
        password_hash = make_password(password)  # once: bcrypt costs ~0.2 s a hash
        joined = timezone.now()
        new_users = [
            User(
                username=name,
                email=f"{name.lower()}@{SEED_EMAIL_DOMAIN}",
                password=password_hash,
                status=status,
                date_joined=joined,
            )
            for name in missing
        ]
        # bulk_create sends no post_save: start each lobby read position here,
        # at the lobby's position now, as for every other new user.
        lobby_seq = last_position(LOBBY_STREAM)
        for batch in chunks(new_users, batch_size):
            User.objects.bulk_create(batch, batch_size=batch_size)
            LobbyRead.objects.bulk_create(
                [LobbyRead(user=user, last_read_seq=lobby_seq) for user in batch], ignore_conflicts=True
            )
            progress.advance("users", len(batch))
        existing.update((user.username.lower(), user) for user in new_users)
    return [existing[name.lower()] for name in names], len(missing)


def _ensure_channels(
    prefix: str, count: int, per_channel: int, users: list[User], batch_size: int
) -> tuple[list[Channel], list[list[User]], int]:
    names = [channel_name_for(prefix, j) for j in range(count)]
    existing = {
        channel.name.lower(): channel for channel in Channel.objects.filter(name__istartswith=f"{prefix}-")
    }
    members: list[list[User]] = []
    new_channels = []
    for j, name in enumerate(names):
        block = [users[(j * per_channel + t) % len(users)] for t in range(per_channel)]
        channel = existing.get(name.lower())
        if channel is None:
            channel = Channel(name=name, description=f"Seeded by seed_chat ({prefix})", owner=block[0])
            new_channels.append(channel)
            existing[name.lower()] = channel
        elif all(member.pk != channel.owner_id for member in block):
            # The owner is always a member; keep them in the sender pool.
            block = [User(pk=channel.owner_id), *block]
        members.append(block)
    Channel.objects.bulk_create(new_channels, batch_size=batch_size)
    return [existing[name.lower()] for name in names], members, len(new_channels)


def _ensure_memberships(
    channels: list[Channel], members: list[list[User]], progress: Progress, batch_size: int
) -> int:
    rows = [
        Membership(channel=channel, user=user)
        for channel, block in zip(channels, members, strict=True)
        for user in block
    ]
    if not rows:
        return 0
    channel_ids = [channel.pk for channel in channels]
    before = _count_memberships(channel_ids, batch_size)
    progress.start("memberships", len(rows))
    for batch in chunks(rows, batch_size):
        Membership.objects.bulk_create(batch, batch_size=batch_size, ignore_conflicts=True)
        progress.advance("memberships", len(batch))
    return _count_memberships(channel_ids, batch_size) - before


def _count_memberships(channel_ids: list, batch_size: int) -> int:
    return sum(Membership.objects.filter(channel_id__in=batch).count() for batch in chunks(channel_ids, 500))


def _add_messages(
    result: SeedResult, members: list[list[User]], count: int, progress: Progress, batch_size: int
) -> None:
    """Spread ``count`` messages round-robin over the lobby and the channels.

    Each stream's block of positions is taken in one step through
    ``positions_take``, the function the message service takes its one from.
    """
    targets: list[tuple[Channel | None, str, Sequence[User]]] = [(None, LOBBY_STREAM, result.users)]
    targets += [
        (channel, channel_stream(channel.pk), block)
        for channel, block in zip(result.channels, members, strict=True)
    ]
    shares = [len(range(t, count, len(targets))) for t in range(len(targets))]
    first_seq = {
        stream: positions_take(stream, share) - share + 1
        for (_, stream, _), share in zip(targets, shares, strict=True)
        if share
    }
    next_seq = dict(first_seq)
    newest = Message.objects.aggregate(newest=Max("created_at"))["newest"]
    step = timedelta(milliseconds=1)
    start = timezone.now() - count * step
    if newest is not None and newest >= start:
        start = newest + step
    progress.start("messages", count)
    # Values in the database's form, converted once per channel and writer, and per row only
    # for what differs (the id and the time).
    pk, channel_fk, user_fk, created = (
        Message._meta.get_field(name) for name in ("id", "channel", "user", "created_at")
    )
    as_db = [
        (channel_fk.get_db_prep_save(None if channel is None else channel.pk, connection), stream,
         [user_fk.get_db_prep_save(user.pk, connection) for user in writers])
        for channel, stream, writers in targets
    ]  # fmt: skip
    rows: list[tuple] = []
    with _page_cache():
        for i in range(count):
            channel_id, stream, writer_ids = as_db[i % len(targets)]
            seq = next_seq[stream]
            next_seq[stream] = seq + 1
            rows.append((
                pk.get_db_prep_save(uuid.uuid4(), connection), seq, seq, channel_id,
                writer_ids[(i // len(targets)) % len(writer_ids)], f"Seeded message {i + 1} of {count}.",
                created.get_db_prep_save(start + i * step, connection), None, None, None, False,
            ))  # fmt: skip
            if len(rows) == batch_size:
                _store(rows, progress)
                rows = []
        if rows:
            _store(rows, progress)
    result.messages_created = count
    result.seq_ranges = {stream: (first, next_seq[stream] - 1) for stream, first in first_seq.items()}


@contextmanager
def _page_cache(kib: int = SEED_PAGE_CACHE_KIB) -> Iterator[None]:
    """On SQLite, a page cache that holds the message table's indexes while seeding, then the old one.

    With SQLite's default 2 MiB, inserting a million messages (eight indexes,
    random UUID keys) spends as long in page reads and writes as in inserting.
    """
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (before,) = cursor.fetchone()
        cursor.execute(f"PRAGMA cache_size = -{int(kib)}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA cache_size = {int(before)}")


def message_insert_sql() -> str:
    """``INSERT INTO messaging_message (...) VALUES (%s, ...)`` over ``MESSAGE_FIELDS``.

    Only the model's own table and column names, quoted, go into the text; every value is a parameter.
    """
    quote = connection.ops.quote_name
    table = quote(Message._meta.db_table)
    columns = ", ".join(quote(Message._meta.get_field(name).column) for name in MESSAGE_FIELDS)
    return f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(MESSAGE_FIELDS))})"  # noqa: S608


def _store(rows: list[tuple], progress: Progress) -> None:
    with connection.cursor() as cursor:
        cursor.executemany(message_insert_sql(), rows)
    progress.advance("messages", len(rows))


def issue_seed_tokens(
    users: Iterable[User],
    *,
    lifetime: timedelta,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> dict[str, str]:
    """Open one login session per user and return ``{username: access token}``.

    Tokens come from ``accounts.tokens.issue_token_pair``, as at login; only
    the access token's lifetime is the one asked for, and the refresh token
    lives at least as long. Sessions are written in bulk.
    """
    progress = progress or NoProgress()
    users = list(users)
    tokens: dict[str, str] = {}
    progress.start("tokens", len(users))
    with transaction.atomic():
        for batch in chunks(users, batch_size):
            sessions = []
            for user in batch:
                session = LoginSession(user=user, client_address="", user_agent=USER_AGENT)
                pair = issue_token_pair(session, access_lifetime=lifetime)
                session.refresh_jti = pair.refresh_jti
                sessions.append(session)
                tokens[user.username] = pair.access
            LoginSession.objects.bulk_create(sessions, batch_size=batch_size)
            progress.advance("tokens", len(batch))
    return tokens
