"""Writes for channels: create, join, leave, delete, members; each announces itself after commit.

These are the one write path for memberships. REST views, the WebSocket
consumer and the admin call them, so every route's effect on open sockets is
the same: the envelopes below tell each process's hub to (un)subscribe the
user's sockets and which frames to send. Bans and direct channels, which
change memberships too, use the same two steps (``membership_add``,
``membership_remove``) from ``chatrooms.bans`` and ``chatrooms.direct``.

Every lookup goes through ``selectors.channel_get``, so a channel the caller
cannot see is refused as one that does not exist, before any other check.

The per-user limits are counted here, for every route alike: each creation
attempt with a valid name counts against ``CHAT_CHANNEL_CREATE_RATE``, and
each join, leave, member add or removal and ban (``chatrooms.bans``) against
``CHAT_MEMBERSHIP_RATE``, before the channel is looked up, whether it then
succeeds or not (docs/security.md, "Rate limits").
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.audit import Action, audit_record
from accounts.models import User
from accounts.selectors import user_get
from chatrooms.models import Ban, Channel, Membership, channel_name_validator
from chatrooms.selectors import channel_get, is_member
from chatrooms.streams import channel_streams
from core.errors import Forbidden, InvalidInput, KindNotAllowed, NotAllowed, OwnerCannotLeave, UserNotFound
from core.userlimits import enforce_user_rate
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


def refuse_direct(channel: Channel, action: str) -> None:
    """A direct channel's membership is fixed: join, leave, delete, ban and member changes are 400."""
    if channel.kind == Channel.Kind.DIRECT:
        raise KindNotAllowed(f"A direct channel cannot be {action}.")


def can_moderate(*, user: User, channel: Channel) -> bool:
    """The owner and staff moderate a channel (staff only the channels they can see)."""
    return channel.owner_id == user.id or user.is_staff


def active_user(*, username: str) -> User:
    """An active user by name ignoring case; an unknown or inactive one is UserNotFound (404)."""
    user = user_get(username=username)
    if not user.is_active:
        raise UserNotFound("No such user.")
    return user


def channel_create(*, user: User, name: str, description: str = "", private: bool = False) -> Channel:
    """Create a channel owned by ``user``, who becomes its first member and is subscribed at once."""
    name = _clean_name(name)
    if len(description) > DESCRIPTION_MAX_LENGTH:
        raise InvalidInput(f"Use at most {DESCRIPTION_MAX_LENGTH} characters.", field="description")
    enforce_user_rate("channel_create", user.id)
    if Channel.objects.filter(name__lower=name.lower()).exists():
        raise InvalidInput(DUPLICATE_NAME, field="name")
    kind = Channel.Kind.PRIVATE if private else Channel.Kind.PUBLIC
    try:
        with transaction.atomic():
            channel = Channel.objects.create(name=name, description=description, owner=user, kind=kind)
            Membership.objects.create(channel=channel, user=user)
            channel_streams().stream_created(channel_stream(channel.id))
            subscribe_on_commit(user=user, channel=channel, last_seq=0)
    except IntegrityError as exc:
        # Another request created the same name (ignoring case) since the check above.
        raise InvalidInput(DUPLICATE_NAME, field="name") from exc
    return channel


def channel_join(*, user: User, name: str) -> Channel:
    """Make ``user`` a member; joining twice is not an error and announces nothing. Banned users get 403."""
    enforce_user_rate("membership", user.id)
    channel = channel_get(user=user, name=name)
    refuse_direct(channel, "joined")
    membership_add(user=user, channel=channel, if_banned="You are banned from this channel.")
    return channel


def member_add(*, actor: User, name: str, username: str) -> Channel:
    """A member adds another user to a public or private channel, with the frames of a join.

    Adding a member again changes nothing and announces nothing.
    """
    enforce_user_rate("membership", actor.id)
    channel = channel_get(user=actor, name=name)
    refuse_direct(channel, "given new members")
    if not is_member(user=actor, channel=channel):
        raise Forbidden("Only members can add members to this channel.")
    user = active_user(username=username)
    membership_add(user=user, channel=channel, if_banned="This user is banned from this channel.")
    return channel


def channel_lock(channel: Channel) -> None:
    """Hold the channel's row until commit, so a ban and a join or add of the same channel take turns.

    Without it a join could check for a ban just before a ban commits and
    leave a banned member. (SQLite's write transactions take turns anyway.)
    """
    list(Channel.objects.select_for_update().filter(pk=channel.pk).values_list("pk"))


def membership_add(*, user: User, channel: Channel, if_banned: str | None = None) -> bool:
    """Make ``user`` a member and subscribe their sockets; False (nothing announced) when already one.

    With ``if_banned``, a banned user is refused with that message (403,
    ``not_allowed`` over the WebSocket). The new member's read position is the
    channel's position when they joined.
    """
    with transaction.atomic():
        if if_banned is not None:
            channel_lock(channel)
            if Ban.objects.filter(channel=channel, user=user).exists():
                raise NotAllowed(if_banned)
        membership, created = Membership.objects.get_or_create(channel=channel, user=user)
        if not created:
            return False
        joined = frames.encode(
            frames.member_frame("member_joined", channel=channel.name, username=user.username)
        )
        # The joiner's own sockets get "subscribed" then "member_joined"; the
        # channel's other subscribers get "member_joined" alone.
        # Read inside the membership's transaction: the new member's sockets
        # deliver exactly the messages committed after it.
        last_seq = channel_streams().last_position(channel_stream(channel.id))
        if last_seq:
            Membership.objects.filter(pk=membership.pk).update(last_read_seq=last_seq)
        subscribe_on_commit(user=user, channel=channel, last_seq=last_seq, then=(joined,))
        broadcast_on_commit(channel_group(channel.id), frame_envelope(joined, exclude_user_id=user.id))
    return True


def subscribe_on_commit(*, user: User, channel: Channel, last_seq: int, then: tuple[str, ...] = ()) -> None:
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
    enforce_user_rate("membership", user.id)
    channel = channel_get(user=user, name=name)
    refuse_direct(channel, "left")
    _leave(user=user, channel=channel)
    return channel


def _leave(*, user: User, channel: Channel) -> None:
    if channel.owner_id == user.id:
        raise OwnerCannotLeave("The owner cannot leave a channel; delete it instead.")
    if not membership_remove(user=user, channel=channel):
        raise InvalidInput("You are not a member of this channel.", code="not_a_member")


def member_remove(*, actor: User, name: str, username: str) -> None:
    """The owner or staff remove a member (audited), or a member removes themselves (a leave).

    Removing someone who is not a member changes nothing (204, no frames).
    """
    enforce_user_rate("membership", actor.id)
    channel = channel_get(user=actor, name=name)
    refuse_direct(channel, "left or have members removed")
    user = user_get(username=username)
    if user.id == actor.id:
        _leave(user=user, channel=channel)
        return
    if not can_moderate(user=actor, channel=channel):
        raise Forbidden("Only the channel's owner or staff can remove other members.")
    if channel.owner_id == user.id:
        raise OwnerCannotLeave("The owner cannot be removed from their channel.")
    with transaction.atomic():
        if membership_remove(user=user, channel=channel):
            audit_record(
                actor=actor, action=Action.MEMBER_REMOVED, target=member_target(user=user, channel=channel)
            )


def member_target(*, user: User, channel: Channel) -> str:
    """An audit target naming a user within a channel: ``user <username> in channel <name>``."""
    return f"user {user.username} in channel {channel.name}"


def membership_remove(*, user: User, channel: Channel) -> bool:
    """End ``user``'s membership with the frames of a leave; False (nothing announced) when not a member."""
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(channel=channel, user=user).delete()
        if not deleted:
            return False
        stream = channel_stream(channel.id)
        left = frames.encode(frames.member_frame("member_left", channel=channel.name, username=user.username))
        unsubscribed = frames.encode(frames.subscription_frame("unsubscribed", channel=channel.name))
        broadcast_on_commit(channel_group(channel.id), frame_envelope(left, exclude_user_id=user.id))
        broadcast_on_commit(
            user_group(user.id),
            unsubscribe_envelope(stream=stream, channel=channel.name, frames=[left, unsubscribed]),
        )
    return True


def channel_delete(*, user: User, name: str) -> None:
    """Delete a channel on its owner's or staff's request; other users are refused (403)."""
    channel = channel_get(user=user, name=name)
    refuse_direct(channel, "deleted")
    if not can_moderate(user=user, channel=channel):
        raise Forbidden("Only the channel's owner can delete it.")
    channel_remove(channel=channel, actor=user)


def channel_remove(*, channel: Channel, actor: User | None) -> None:
    """Delete a channel with its messages, memberships and position counter, and tell its subscribers.

    Shared by the owner's and staff's delete and the admin, so all announce it
    the same way; a deletion by anyone but the owner is audited.
    """
    stream = channel_stream(channel.id)
    name = channel.name
    group = channel_group(channel.id)
    with transaction.atomic():
        if actor is not None and actor.id != channel.owner_id:
            audit_record(actor=actor, action=Action.CHANNEL_DELETED, target=f"channel {name}")
        channel_streams().stream_removed(stream)
        channel.delete()
        frame = frames.encode(frames.channel_deleted_frame(channel=name))
        broadcast_on_commit(group, channel_deleted_envelope(stream=stream, channel=name, frame=frame))
