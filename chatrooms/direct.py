"""Direct channels: one private channel per pair of users (or one user's notes to self).

Nobody owns a direct channel and its two members are fixed: it is created
with both, and join, leave, delete, bans and member changes are refused
(``services.refuse_direct``). The unique ``direct_pair`` makes concurrent
opens from either side one channel.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import User
from chatrooms.models import Channel, Membership
from chatrooms.services import active_user, subscribe_on_commit
from chatrooms.streams import channel_streams
from core.userlimits import enforce_user_rate
from realtime.groups import channel_stream


def direct_pair(*users: User) -> str:
    """The pair key: the two users' ids as hex, sorted, joined by ``:`` (one id twice for notes to self)."""
    return ":".join(sorted(user.id.hex for user in users))


def direct_name(*users: User) -> str:
    """``@`` and the two stored usernames sorted ignoring case, joined by ``+``: ``@ada+bob``."""
    return "@" + "+".join(sorted((user.username for user in users), key=lambda name: (name.lower(), name)))


def _direct_channel(pair: str) -> Channel | None:
    return Channel.objects.select_related("owner").filter(direct_pair=pair).first()


def direct_open(*, user: User, username: str) -> tuple[Channel, bool]:
    """The direct channel between ``user`` and ``username``: ``(channel, created)``.

    On creation both users are members at read position 0 and their open
    sockets are subscribed after commit; opening it again sends nothing.
    Unknown and inactive users are 404. Opening a new one counts against
    ``CHAT_CHANNEL_CREATE_RATE`` (429 past it); finding an existing one is free.
    """
    other = active_user(username=username)
    pair = direct_pair(user, other)
    existing = _direct_channel(pair)
    if existing is not None:
        return existing, False
    enforce_user_rate("channel_create", user.id)
    members = [user] if other.id == user.id else [user, other]
    try:
        with transaction.atomic():
            channel = Channel.objects.create(
                name=direct_name(user, other), kind=Channel.Kind.DIRECT, owner=None, direct_pair=pair
            )
            Membership.objects.bulk_create(Membership(channel=channel, user=member) for member in members)
            channel_streams().stream_created(channel_stream(channel.id))
            for member in members:
                subscribe_on_commit(user=member, channel=channel, last_seq=0)
    except IntegrityError:
        # The other side (or another tab) opened it first: theirs is the channel.
        existing = _direct_channel(pair)
        if existing is None:
            raise
        return existing, False
    return channel, True
