"""Channels of every kind made directly with the ORM (as the admin sees them), and their messages."""

from __future__ import annotations

from django.db import transaction

from accounts.models import AuditRecord, User
from chatrooms.models import Channel, Membership
from messaging.models import Message
from messaging.positions import positions_take, stream_created
from realtime.groups import LOBBY_STREAM, channel_stream


def private_channel(name: str, *, owner: User, members: list[User]) -> Channel:
    with transaction.atomic():
        channel = Channel.objects.create(name=name, kind=Channel.Kind.PRIVATE, owner=owner)
        stream_created(channel_stream(channel.id))
        for user in {owner, *members}:
            Membership.objects.create(channel=channel, user=user)
    return channel


def direct_channel(first: User, second: User) -> Channel:
    """The direct channel of two users, as ``POST /api/dms/{username}`` would make it: no owner."""
    one, two = sorted([first, second], key=lambda user: user.username.lower())
    with transaction.atomic():
        channel = Channel.objects.create(
            name=f"@{one.username}+{two.username}",
            kind=Channel.Kind.DIRECT,
            owner=None,
            direct_pair=":".join(sorted([first.id.hex, second.id.hex])),
        )
        stream_created(channel_stream(channel.id))
        for user in {first, second}:
            Membership.objects.create(channel=channel, user=user)
    return channel


def stored_message(*, user: User, channel: Channel | None, content: str) -> Message:
    """A message stored at the stream's next position, as a send stores it (no announcement)."""
    with transaction.atomic():
        seq = positions_take(channel_stream(channel.id) if channel is not None else LOBBY_STREAM)
        return Message.objects.create(user=user, channel=channel, content=content, seq=seq, rev=seq)


def audit_rows() -> list[tuple[str, str, str]]:
    """``(actor, action, target)`` of every audit record, oldest first."""
    return list(AuditRecord.objects.order_by("created_at").values_list("actor", "action", "target"))
