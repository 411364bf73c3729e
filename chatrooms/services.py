"""Writes for channels: create, join, leave, delete; each announces itself after commit.

These are the one write path for memberships. REST views, the WebSocket
consumer and the admin call them, so every route's effect on open sockets is
the same: the envelopes below tell each process's hub to (un)subscribe the
user's sockets and which frames to send.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from chatrooms.models import Channel, Membership, channel_name_validator
from chatrooms.selectors import channel_get
from chatrooms.streams import channel_streams
from core.errors import Forbidden, InvalidInput, OwnerCannotLeave
from realtime import frames
from realtime.envelopes import (
    channel_deleted_envelope,
    frame_envelope,
    subscribe_envelope,
    unsubscribe_envelope,
)
from realtime.groups import channel_group, channel_stream, user_group
from realtime.publish import broadcast_on_commit

DESCRIPTION_MAX_LENGTH = 500
# ``GET /api/channels/me`` is the caller's list, so no channel may be named "me".
RESERVED_NAMES = frozenset({"me"})
DUPLICATE_NAME = "A channel with this name already exists."


def _clean_name(name: str) -> str:
    try:
        channel_name_validator(name)
    except ValidationError as exc:
        raise InvalidInput(exc.messages, field="name") from exc
    if name.lower() in RESERVED_NAMES:
        raise InvalidInput(f"'{name}' is reserved.", field="name")
    return name


def channel_create(*, user: User, name: str, description: str = "") -> Channel:
    """Create a channel owned by ``user``, who becomes its first member and is subscribed at once."""
    name = _clean_name(name)
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidInput(f"Use at most {DESCRIPTION_MAX_LENGTH} characters.", field="description")
    if Channel.objects.filter(name__lower=name.lower()).exists():
        raise InvalidInput(DUPLICATE_NAME, field="name")
    try:
        with transaction.atomic():
            channel = Channel.objects.create(name=name, description=description, owner=user)
            Membership.objects.create(channel=channel, user=user)
            channel_streams().stream_created(channel_stream(channel.id))
            _subscribe_on_commit(user=user, channel=channel, last_seq=0)
    except IntegrityError as exc:
        # Another request created the same name (ignoring case) since the check above.
        raise InvalidInput(DUPLICATE_NAME, field="name") from exc
    return channel


def channel_join(*, user: User, name: str) -> Channel:
    """Make ``user`` a member; joining twice is not an error and announces nothing."""
    channel = channel_get(name=name)
    with transaction.atomic():
        _membership, created = Membership.objects.get_or_create(channel=channel, user=user)
        if not created:
            return channel
        joined = frames.encode(
            frames.member_frame("member_joined", channel=channel.name, username=user.username)
        )
        # The joiner's own sockets get "subscribed" then "member_joined"; the
        # channel's other subscribers get "member_joined" alone.
        # Read inside the membership's transaction: the new member's sockets
        # deliver exactly the messages committed after it.
        last_seq = channel_streams().last_position(channel_stream(channel.id))
        _subscribe_on_commit(user=user, channel=channel, last_seq=last_seq, then=(joined,))
        broadcast_on_commit(channel_group(channel.id), frame_envelope(joined, exclude_user_id=user.id))
    return channel


def _subscribe_on_commit(*, user: User, channel: Channel, last_seq: int, then: tuple[str, ...] = ()) -> None:
    """Subscribe ``user``'s sockets to ``channel`` after ``last_seq``: ``subscribed``, then ``then``."""
    subscribed = frames.encode(frames.subscription_frame("subscribed", channel=channel.name))
    broadcast_on_commit(
        user_group(user.id),
        subscribe_envelope(
            stream=channel_stream(channel.id),
            channel=channel.name,
            last_seq=last_seq,
            frames=[subscribed, *then],
        ),
    )


def channel_leave(*, user: User, name: str) -> Channel:
    """End ``user``'s membership; the owner must delete the channel instead."""
    channel = channel_get(name=name)
    if channel.owner_id == user.id:
        raise OwnerCannotLeave("The owner cannot leave a channel; delete it instead.")
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(channel=channel, user=user).delete()
        if not deleted:
            raise InvalidInput("You are not a member of this channel.", code="not_a_member")
        stream = channel_stream(channel.id)
        left = frames.encode(frames.member_frame("member_left", channel=channel.name, username=user.username))
        unsubscribed = frames.encode(frames.subscription_frame("unsubscribed", channel=channel.name))
        broadcast_on_commit(channel_group(channel.id), frame_envelope(left, exclude_user_id=user.id))
        broadcast_on_commit(
            user_group(user.id),
            unsubscribe_envelope(stream=stream, channel=channel.name, frames=[left, unsubscribed]),
        )
    return channel


def channel_delete(*, user: User, name: str) -> None:
    """Delete a channel on its owner's request; anyone else is refused (403)."""
    channel = channel_get(name=name)
    if channel.owner_id != user.id:
        raise Forbidden("Only the channel's owner can delete it.")
    channel_remove(channel=channel)


def channel_remove(*, channel: Channel) -> None:
    """Delete a channel with its messages, memberships and position counter, and tell its subscribers.

    Shared by the owner's delete and the admin, so both announce it the same way.
    """
    stream = channel_stream(channel.id)
    name = channel.name
    group = channel_group(channel.id)
    with transaction.atomic():
        channel_streams().stream_removed(stream)
        channel.delete()
        frame = frames.encode(frames.channel_deleted_frame(channel=name))
        broadcast_on_commit(group, channel_deleted_envelope(stream=stream, channel=name, frame=frame))
