"""Reads for channels, and ``access_channel``: the one membership check.

Visibility has one rule, ``visible_to``: a user sees every public channel and
the private and direct channels they are a member of. Every lookup by name
applies it inside the same query, so a channel the user cannot see is
answered exactly as a name that does not exist: same error, same number of
queries.
"""

from __future__ import annotations

import re
from uuid import UUID

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Lower

from accounts.models import User
from chatrooms.models import CHANNEL_NAME_PATTERN, DIRECT_NAME_PATTERN, Ban, Channel, Membership
from core.errors import ChannelNotFound, NotAMember
from core.prepared import prepared_rows
from core.sql import uuid_param, values_list

CHANNEL_NAME_RE = re.compile(CHANNEL_NAME_PATTERN)
DIRECT_NAME_RE = re.compile(DIRECT_NAME_PATTERN)


def _lookup_key(name: object) -> str | None:
    """The lower-cased name to look up, or None when no channel could have this name.

    Impossible names are not looked up: PostgreSQL would refuse a NUL in the
    query with an error rather than find nothing. A direct name's ``+`` arrives
    as a space when a client leaves it unencoded in a query string
    (``?channel=@ada+bob``), and no name may hold a space, so ``@ada bob``
    is read as ``@ada+bob``.
    """
    if not isinstance(name, str):
        return None
    if name.startswith("@") and name.count(" ") == 1:
        name = name.replace(" ", "+")
    if CHANNEL_NAME_RE.match(name) or DIRECT_NAME_RE.match(name):
        return name.lower()
    return None


def _possible_name(name: object) -> bool:
    """Whether a channel could have this name (a channel name or a direct name ``@a+b``)."""
    return _lookup_key(name) is not None


def visible_to(*, user: User) -> Q:
    """The visibility rule: public channels, and the private and direct ones ``user`` is a member of."""
    return Q(kind=Channel.Kind.PUBLIC) | Q(
        Exists(Membership.objects.filter(channel_id=OuterRef("pk"), user_id=user.id))
    )


def channel_get(*, user: User, name: str) -> Channel:
    """A channel ``user`` can see, by name ignoring case; else ChannelNotFound (404 / ``channel_not_found``).

    One query whether the channel is missing or invisible, so neither can be told from the other.
    """
    key = _lookup_key(name)
    channel = None
    if key is not None:
        channel = (
            Channel.objects.select_related("owner").filter(visible_to(user=user), name__lower=key).first()
        )
    if channel is None:
        raise ChannelNotFound("No such channel.")
    return channel


def access_channel(*, user: User, name: str, require_member: bool = True) -> Channel:
    """Fetch a channel for ``user``: 404 when missing or invisible, else
    403 when membership is required and absent.

    REST views and the WebSocket consumer both guard channels through here. A
    member (every message sent) costs one query; a refusal costs a second,
    the same one for a missing and an invisible channel.
    """
    key = _lookup_key(name)
    if require_member and key is not None:
        membership = (
            Membership.objects.select_related("channel__owner")
            .filter(user=user, channel__name__lower=key)
            .first()
        )
        if membership is not None:
            return membership.channel
    channel = channel_get(user=user, name=name)
    if require_member:
        raise NotAMember("You are not a member of this channel.")
    return channel


def channel_list() -> QuerySet[Channel]:
    """Every channel, whatever its kind: the base of the lists below (and of nothing shown unfiltered)."""
    return (
        Channel.objects.select_related("owner")
        .annotate(member_count=Count("memberships"))
        .order_by(Lower("name"), "id")
    )


def channel_list_visible(*, user: User) -> QuerySet[Channel]:
    """``GET /api/channels/``: public channels and the caller's private and direct ones."""
    return channel_list().filter(visible_to(user=user))


def channel_list_for_user(*, user: User) -> QuerySet[Channel]:
    # A subquery rather than ``memberships__user=user``, so the member count
    # still counts every member and not just this one.
    return channel_list().filter(id__in=Membership.objects.filter(user=user).values("channel_id"))


def channel_with_count(*, channel: Channel) -> Channel:
    """The channel again, annotated with ``member_count``, as the REST answers show it."""
    return channel_list().get(id=channel.id)


def channel_detail(*, user: User, name: str) -> Channel:
    """A channel ``user`` can see, with ``member_count`` and ``member_names``; or 404."""
    channel = channel_with_count(channel=channel_get(user=user, name=name))
    channel.member_names = list(
        User.objects.filter(memberships__channel=channel)
        .order_by(Lower("username"), "username")
        .values_list("username", flat=True)
    )
    return channel


def is_member(*, user: User, channel: Channel) -> bool:
    return Membership.objects.filter(channel=channel, user=user).exists()


def ban_list(*, channel: Channel) -> QuerySet[Ban]:
    """A channel's bans, by the banned username ignoring case."""
    return (
        Ban.objects.filter(channel=channel)
        .select_related("user", "banned_by")
        .order_by(Lower("user__username"), "user__username")
    )


def channel_streams_for_user(*, user: User) -> dict:
    """``{channel id: channel name}`` of every channel the user belongs to (each handshake: compiled once)."""
    rows = prepared_rows(
        "chatrooms.channels_of_user",
        lambda value: Membership.objects.filter(user_id=value).values_list("channel_id", "channel__name"),
        field=Membership._meta.get_field("user"),
        value=user.id,
    )
    return dict(rows)


def memberships_by_user(*, user_ids: list[UUID]) -> dict[UUID, dict[UUID, str]]:
    """``{user id: {channel id: channel name}}`` of these users' channels."""
    memberships: dict[UUID, dict[UUID, str]] = {}
    rows = Membership.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "channel_id", "channel__name"
    )
    for user_id, channel_id, name in rows:
        memberships.setdefault(user_id, {})[channel_id] = name
    return memberships


def member_channels(
    *, by_id: set[tuple[UUID, UUID]], by_name: set[tuple[UUID, str]]
) -> dict[tuple[UUID, UUID | str], tuple[UUID, str]]:
    """The channels of a batch of messages that their senders are members of, now.

    ``by_id`` holds ``(user id, channel id)`` (the sender's socket is
    subscribed), ``by_name`` ``(user id, name)`` (as the client wrote it, found
    ignoring case as ``access_channel`` finds it): one query for each kind
    present, however many pairs. Answers ``{(user id, channel id or name as
    given): (channel id, name as stored)}`` for the memberships there are; a
    missing pair is no membership (any more), and ``access_channel`` then
    words its refusal.
    """
    found: dict[tuple[UUID, UUID | str], tuple[UUID, str]] = {}
    as_db = uuid_param()
    membership, channel = Membership._meta.db_table, Channel._meta.db_table
    if by_id:
        asked = {(as_db(user_id), as_db(channel_id)): (user_id, channel_id) for user_id, channel_id in by_id}
        rows = _fetch(
            f"SELECT m.user_id, c.id, c.name FROM (VALUES {values_list(len(asked), 2)}) AS v"  # noqa: S608
            f" JOIN {membership} m ON m.user_id = v.column1 AND m.channel_id = v.column2"
            f" JOIN {channel} c ON c.id = m.channel_id",
            [value for pair in asked for value in pair],
        )
        for user_id, channel_id, name in rows:
            pair = asked[(user_id, channel_id)]
            found[pair] = (pair[1], name)
    keys = [(user_id, name, key) for user_id, name in by_name if (key := _lookup_key(name)) is not None]
    if keys:
        users = {as_db(user_id): user_id for user_id, _, _ in keys}
        rows = _fetch(
            f"SELECT m.user_id, v.column2, c.id, c.name FROM (VALUES {values_list(len(keys), 3)}) AS v"  # noqa: S608
            f" JOIN {channel} c ON LOWER(c.name) = v.column3"
            f" JOIN {membership} m ON m.channel_id = c.id AND m.user_id = v.column1",
            [value for user_id, name, key in keys for value in (as_db(user_id), name, key)],
        )
        for user_id, given, channel_id, name in rows:
            found[(users[user_id], given)] = (
                channel_id if isinstance(channel_id, UUID) else UUID(channel_id),
                name,
            )
    return found


def _fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def membership_channel_name(*, user: User, channel_id: UUID) -> str | None:
    """The channel's name when ``user`` is a member of it, else None."""
    return (
        Membership.objects.filter(user=user, channel_id=channel_id)
        .values_list("channel__name", flat=True)
        .first()
    )
