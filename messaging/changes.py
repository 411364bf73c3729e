"""Changes to a stored message: edit, delete, react, unreact; each the one path for its verb.

Every change that changes something takes the stream's next position (which
becomes the message's ``rev``), and is announced as ``message_updated`` after
commit; one that changes nothing takes no position, announces nothing and
costs no rate. Each first checks without a lock (the common refusals cost no
position), then takes the position, which serializes the stream's writers,
and checks again on the row as it is now: a refusal then rolls the position back.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.audit import Action, audit_record
from accounts.models import User
from chatrooms.models import Channel
from core import metrics
from core.errors import InvalidEmoji, MessageDeleted, NotAllowed, RateLimited, TooManyReactions
from messaging.mentions import mentioned_users, mentions_store
from messaging.models import EMOJI_MAX_CODE_POINTS, Mention, Message, Reaction
from messaging.positions import positions_take
from messaging.ratelimit import get_message_rate_limiter
from messaging.selectors import access_message
from messaging.services import announce_on_commit, clean_content
from realtime.groups import channel_stream

REACTIONS_MAX = 20
# The columns each kind of change writes (SQLite's search triggers fire on content and deleted).
_CHANGED_FIELDS = {
    "edited": ["rev", "content", "edited_at"],
    "deleted": ["rev", "content", "deleted"],
    "reactions": ["rev"],
}


@dataclass(frozen=True)
class ChangeResult:
    message: Message
    changed: bool  # False: the request changed nothing (no position, no announcement)


class _Unchanged(Exception):
    """Raised under the stream's lock when the change turns out to change nothing: rolls back.

    Carries the row as read under the lock, which nothing has changed.
    """

    def __init__(self, message: Message) -> None:
        super().__init__()
        self.message = message


def clean_emoji(raw: Any) -> str:
    """1 to 32 code points, no white space or control characters (a Unicode emoji or ``:name:``)."""
    if not isinstance(raw, str) or not 1 <= len(raw) <= EMOJI_MAX_CODE_POINTS:
        raise InvalidEmoji(f"An emoji is 1 to {EMOJI_MAX_CODE_POINTS} characters.")
    if any(char.isspace() or unicodedata.category(char) in {"Cc", "Cs", "Zl", "Zp"} for char in raw):
        raise InvalidEmoji("An emoji has no white space or control characters.")
    return raw


def _change(
    user: User, message: Message, apply: Callable[[Message], str | None], *, rate_limited: bool = True
) -> ChangeResult:
    """Run ``apply`` on the current row under a new position; it returns the change, or None for none.

    Precondition: the caller checked access and permission. ``apply`` may raise
    a ChatError; it runs inside the change's transaction, so whatever else it
    writes (an audit record) is stored exactly when the change is.
    ``rate_limited`` False is for the admin, whose bulk deletions must not stop halfway.
    """
    if not rate_limited:
        return _change_unlimited(message, apply)
    limiter = get_message_rate_limiter()
    retry_after = limiter.consume(user.id)
    if retry_after is not None:
        raise RateLimited("Too many messages; slow down.", retry_after=round(retry_after, 3), kind="change")
    try:
        result = _change_unlimited(message, apply)
    except BaseException:
        limiter.refund(user.id)
        raise
    if not result.changed:
        limiter.refund(user.id)
    return result


def _change_unlimited(message: Message, apply: Callable[[Message], str | None]) -> ChangeResult:
    try:
        with transaction.atomic():
            rev = positions_take(channel_stream(message.channel_id))
            current = Message.objects.select_related("user", "channel").get(id=message.id)
            change = apply(current)
            if change is None:
                raise _Unchanged(current)
            current.rev = rev
            current.save(update_fields=_CHANGED_FIELDS[change])
            announce_on_commit(current, change=change)
    except _Unchanged as unchanged:
        return ChangeResult(message=unchanged.message, changed=False)
    metrics.CHANGES_STORED.inc()  # committed (every change goes through here)
    return ChangeResult(message=current, changed=True)


def message_edit(*, user: User, message_id: Any, content: Any) -> ChangeResult:
    """Replace the content (the author only; not a deleted message); mentions are found again."""
    text = clean_content(content)
    message = access_message(user=user, message_id=message_id)
    if message.user_id != user.id:
        raise NotAllowed("Only the author can edit a message.")

    def edit(current: Message) -> str | None:
        if current.deleted:
            raise MessageDeleted("The message was deleted.")
        if current.content == text:
            return None
        current.content, current.edited_at = text, timezone.now()
        mentions_store(current, mentioned_users(text, channel_id=current.channel_id))
        return "edited"

    return _change(user, message, edit)


def may_delete(*, user: User, message: Message) -> bool:
    """The author, the channel's owner (not in a direct channel: it has none) or staff.

    A direct channel's owner column is null, but the rule says so itself
    rather than leaning on that: nobody moderates a direct conversation but staff.
    """
    if message.user_id == user.id or user.is_staff:
        return True
    channel = message.channel
    return channel is not None and channel.kind != Channel.Kind.DIRECT and channel.owner_id == user.id


def message_delete(*, user: User, message_id: Any) -> ChangeResult:
    """Delete a message ``user`` can read, if ``may_delete``; other readers are refused (403)."""
    message = access_message(user=user, message_id=message_id)
    if not may_delete(user=user, message=message):
        raise NotAllowed("Only the author, the channel's owner or staff can delete this message.")
    return message_remove(user=user, message=message)


def message_remove(*, user: User, message: Message, rate_limited: bool = True) -> ChangeResult:
    """Make ``message`` a tombstone, keeping no content, reactions or mentions (the API and the admin).

    Deleting someone else's message is moderation: it leaves an audit record
    in the same transaction (only when the message was not already deleted).
    The admin passes ``rate_limited=False``.
    """

    def remove(current: Message) -> str | None:
        if current.deleted:
            return None
        current.content, current.deleted = "", True
        Reaction.objects.filter(message=current).delete()
        Mention.objects.filter(message=current).delete()
        if current.user_id != user.id:
            where = f"channel {current.channel.name}" if current.channel is not None else "the lobby"
            audit_record(
                actor=user,
                action=Action.MESSAGE_DELETED,
                target=f"message {current.id}",
                detail=f"by {current.user.username} in {where} (seq {current.seq})",
            )
        return "deleted"

    return _change(user, message, remove, rate_limited=rate_limited)


def reaction_add(*, user: User, message_id: Any, emoji: Any) -> ChangeResult:
    """Add ``user``'s ``emoji`` (any reader); at most ``REACTIONS_MAX`` distinct emoji per message."""
    emoji = clean_emoji(emoji)
    message = access_message(user=user, message_id=message_id)

    def react(current: Message) -> str | None:
        if current.deleted:
            raise MessageDeleted("The message was deleted.")
        reactions = Reaction.objects.filter(message=current)
        if reactions.filter(user=user, emoji=emoji).exists():
            return None
        if not reactions.filter(emoji=emoji).exists() and (
            reactions.values("emoji").distinct().count() >= REACTIONS_MAX
        ):
            raise TooManyReactions(f"A message has at most {REACTIONS_MAX} different emoji.")
        Reaction.objects.create(message=current, user=user, emoji=emoji)
        return "reactions"

    return _change(user, message, react)


def reaction_remove(*, user: User, message_id: Any, emoji: Any) -> ChangeResult:
    """Remove ``user``'s ``emoji``; unchanged when they had none."""
    emoji = clean_emoji(emoji)
    message = access_message(user=user, message_id=message_id)

    def unreact(current: Message) -> str | None:
        deleted, _ = Reaction.objects.filter(message=current, user=user, emoji=emoji).delete()
        return "reactions" if deleted else None

    return _change(user, message, unreact)
