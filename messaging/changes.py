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

from accounts.models import User
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


def _change(user: User, message: Message, apply: Callable[[Message], str | None]) -> ChangeResult:
    """Run ``apply`` on the current row under a new position; it returns the change, or None for none.

    Precondition: the caller checked access and permission. ``apply`` may raise a ChatError.
    """
    limiter = get_message_rate_limiter()
    retry_after = limiter.consume(user.id)
    if retry_after is not None:
        raise RateLimited("Too many messages; slow down.", retry_after=round(retry_after, 3))
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
        limiter.refund(user.id)
        return ChangeResult(message=unchanged.message, changed=False)
    except BaseException:
        limiter.refund(user.id)
        raise
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


def message_delete(*, user: User, message_id: Any) -> ChangeResult:
    """Delete as the author, the channel's owner or staff; others who can read it are refused (403)."""
    message = access_message(user=user, message_id=message_id)
    owner = message.channel is not None and message.channel.owner_id == user.id
    if not (message.user_id == user.id or owner or user.is_staff):
        raise NotAllowed("Only the author, the channel's owner or staff can delete this message.")
    return message_remove(user=user, message=message)


def message_remove(*, user: User, message: Message) -> ChangeResult:
    """Make ``message`` a tombstone, keeping no content, reactions or mentions (the API and the admin)."""

    def remove(current: Message) -> str | None:
        if current.deleted:
            return None
        current.content, current.deleted = "", True
        Reaction.objects.filter(message=current).delete()
        Mention.objects.filter(message=current).delete()
        return "deleted"

    return _change(user, message, remove)


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
