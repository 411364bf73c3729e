"""Bans: the owner or staff keep a user out of a channel (removed at once, refused on join and add).

Each ban and unban is audited in its own transaction; the removal it causes
announces itself exactly as a leave does (``services.membership_remove``).
"""

from __future__ import annotations

import contextlib

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from accounts.audit import Action, audit_record
from accounts.models import User
from accounts.selectors import user_get
from chatrooms.models import BAN_REASON_MAX_LENGTH, Ban, Channel
from chatrooms.selectors import ban_list, channel_get
from chatrooms.services import can_moderate, channel_lock, member_target, membership_remove, refuse_direct
from core.errors import BanNotFound, Forbidden, InvalidInput, UserNotFound
from core.userlimits import enforce_user_rate


def _moderated_channel(*, actor: User, name: str) -> Channel:
    """The channel named, for its owner or staff: 404 when invisible, 400 when direct, else 403."""
    channel = channel_get(user=actor, name=name)
    refuse_direct(channel, "banned from")
    if not can_moderate(user=actor, channel=channel):
        raise Forbidden("Only the channel's owner or staff can manage its bans.")
    return channel


def ban_add(*, actor: User, name: str, username: str, reason: str = "") -> tuple[Ban, bool]:
    """Ban ``username`` from the channel (removing them if a member); ``(ban, created)``.

    Banning again returns the existing ban unchanged (its reason too).
    """
    enforce_user_rate("membership", actor.id)
    channel = _moderated_channel(actor=actor, name=name)
    if len(reason) > BAN_REASON_MAX_LENGTH:
        raise InvalidInput(f"Use at most {BAN_REASON_MAX_LENGTH} characters.", field="reason")
    user = user_get(username=username)
    if user.id == channel.owner_id:
        raise InvalidInput("The owner cannot be banned from their channel.")
    existing = _ban_of(channel=channel, user=user)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            channel_lock(channel)
            ban = Ban.objects.create(channel=channel, user=user, reason=reason, banned_by=actor)
            membership_remove(user=user, channel=channel)
            audit_record(
                actor=actor,
                action=Action.USER_BANNED,
                target=member_target(user=user, channel=channel),
                detail=reason,
            )
    except IntegrityError:
        # A concurrent ban of the same user won; answer with it.
        existing = _ban_of(channel=channel, user=user)
        if existing is None:
            raise
        return existing, False
    return ban, True


def _ban_of(*, channel: Channel, user: User) -> Ban | None:
    return Ban.objects.select_related("user", "banned_by").filter(channel=channel, user=user).first()


def ban_remove(*, actor: User, name: str, username: str) -> None:
    """Lift a ban; 404 when there is no such ban (or no such user)."""
    enforce_user_rate("membership", actor.id)
    channel = _moderated_channel(actor=actor, name=name)
    ban = None
    with contextlib.suppress(UserNotFound):
        ban = _ban_of(channel=channel, user=user_get(username=username))
    if ban is None:
        raise BanNotFound("No such ban.")
    with transaction.atomic():
        deleted, _ = Ban.objects.filter(pk=ban.pk).delete()
        if deleted:
            audit_record(
                actor=actor,
                action=Action.USER_UNBANNED,
                target=member_target(user=ban.user, channel=channel),
                detail=ban.reason,
            )


def bans_of(*, actor: User, name: str) -> QuerySet[Ban]:
    """The bans of a channel, for its owner or staff, sorted by username ignoring case."""
    return ban_list(channel=_moderated_channel(actor=actor, name=name))
