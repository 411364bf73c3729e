"""Reads for channels, and ``access_channel``: the one membership check."""

from __future__ import annotations

import re
from uuid import UUID

from django.db.models import Count, QuerySet
from django.db.models.functions import Lower

from accounts.models import User
from chatrooms.models import CHANNEL_NAME_PATTERN, Channel, Membership
from core.errors import ChannelNotFound, NotAMember

CHANNEL_NAME_RE = re.compile(CHANNEL_NAME_PATTERN)


def _possible_name(name: object) -> bool:
    """Whether a channel could have this name. Others are not looked up: PostgreSQL
    would refuse a NUL in the query with an error rather than find nothing."""
    return isinstance(name, str) and CHANNEL_NAME_RE.match(name) is not None


def channel_get(*, name: str) -> Channel:
    """A channel by name ignoring case, or ChannelNotFound (404 / ``channel_not_found``)."""
    if not _possible_name(name):
        raise ChannelNotFound("No such channel.")
    channel = Channel.objects.select_related("owner").filter(name__lower=name.lower()).first()
    if channel is None:
        raise ChannelNotFound("No such channel.")
    return channel


def access_channel(*, user: User, name: str, require_member: bool = True) -> Channel:
    """Fetch a channel for ``user``: 404 when missing, 403 when membership is required and absent.

    REST views and the WebSocket consumer both guard channels through here. A
    member (every message sent) costs one query; a refusal costs a second.
    """
    if require_member and _possible_name(name):
        membership = (
            Membership.objects.select_related("channel__owner")
            .filter(user=user, channel__name__lower=name.lower())
            .first()
        )
        if membership is not None:
            return membership.channel
    channel = channel_get(name=name)
    if require_member:
        raise NotAMember("You are not a member of this channel.")
    return channel


def channel_list() -> QuerySet[Channel]:
    return (
        Channel.objects.select_related("owner")
        .annotate(member_count=Count("memberships"))
        .order_by(Lower("name"), "id")
    )


def channel_list_for_user(*, user: User) -> QuerySet[Channel]:
    # A subquery rather than ``memberships__user=user``, so the member count
    # still counts every member and not just this one.
    return channel_list().filter(id__in=Membership.objects.filter(user=user).values("channel_id"))


def channel_with_count(*, channel: Channel) -> Channel:
    """The channel again, annotated with ``member_count``, as the REST answers show it."""
    return channel_list().get(id=channel.id)


def channel_detail(*, name: str) -> Channel:
    """A channel with ``member_count`` and ``member_names`` (sorted ignoring case), or 404."""
    channel = channel_with_count(channel=channel_get(name=name))
    channel.member_names = list(
        User.objects.filter(memberships__channel=channel)
        .order_by(Lower("username"), "username")
        .values_list("username", flat=True)
    )
    return channel


def channel_streams_for_user(*, user: User) -> dict:
    """``{channel id: channel name}`` of every channel the user belongs to."""
    return dict(Membership.objects.filter(user=user).values_list("channel_id", "channel__name"))


def memberships_by_user(*, user_ids: list[UUID]) -> dict[UUID, dict[UUID, str]]:
    """``{user id: {channel id: channel name}}`` of these users' channels."""
    memberships: dict[UUID, dict[UUID, str]] = {}
    rows = Membership.objects.filter(user_id__in=user_ids).values_list(
        "user_id", "channel_id", "channel__name"
    )
    for user_id, channel_id, name in rows:
        memberships.setdefault(user_id, {})[channel_id] = name
    return memberships


def membership_channel_name(*, user: User, channel_id: UUID) -> str | None:
    """The channel's name when ``user`` is a member of it, else None."""
    return (
        Membership.objects.filter(user=user, channel_id=channel_id)
        .values_list("channel__name", flat=True)
        .first()
    )
