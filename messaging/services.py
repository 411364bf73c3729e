"""The one write path for messages, used by REST, the WebSocket and the admin.

``message_send`` checks (content, channel access, idempotency, rate), then
``_message_store`` numbers, stores and schedules the broadcast in one
transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from chatrooms.models import Channel
from chatrooms.selectors import access_channel
from core import metrics
from core.errors import ChatError, ContentEmpty, ContentTooLong, InvalidInput, RateLimited
from messaging.mentions import mentioned_users, mentions_store
from messaging.models import CLIENT_ID_MAX_LENGTH, CONTENT_MAX_CODE_POINTS, Message
from messaging.payloads import message_payload
from messaging.positions import positions_take
from messaging.ratelimit import get_message_rate_limiter
from messaging.reads import Posted, sender_reads_move
from messaging.selectors import message_id_of
from realtime import frames
from realtime.envelopes import message_envelope
from realtime.groups import channel_group, channel_stream
from realtime.publish import broadcast_on_commit

IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class SendResult:
    message: Message
    created: bool  # False: an idempotent resend, answered with the first message
    mentioned: frozenset[UUID] = frozenset()  # ids of the users a new message mentions


class _AlreadySent(Exception):
    def __init__(self, message: Message) -> None:
        self.message = message


def clean_content(raw: Any) -> str:
    """Trimmed content of 1 to 1000 code points that every database can store."""
    if not isinstance(raw, str):
        raise InvalidInput("Content must be a string.", field="content")
    text = raw.strip()
    if not text:
        raise ContentEmpty("Content is empty.", field="content")
    if len(text) > CONTENT_MAX_CODE_POINTS:
        raise ContentTooLong(f"Content is over {CONTENT_MAX_CODE_POINTS} characters.", field="content")
    if "\x00" in text:
        raise InvalidInput("Content must not contain NUL characters.", field="content")
    if any("\ud800" <= char <= "\udfff" for char in text):
        raise InvalidInput("Content must not contain lone surrogates.", field="content")
    return text


def clean_client_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not 1 <= len(raw) <= CLIENT_ID_MAX_LENGTH or "\x00" in raw:
        raise InvalidInput(
            f"client_id must be a string of 1 to {CLIENT_ID_MAX_LENGTH} characters.", field="client_id"
        )
    if any("\ud800" <= char <= "\udfff" for char in raw):
        raise InvalidInput("client_id must not contain lone surrogates.", field="client_id")
    return raw


def _recent_with_client_id(*, user: User, client_id: str) -> Message | None:
    """The first message ``user`` sent with ``client_id`` in the last 24 hours, or None.

    Asked on every send that carries a client_id and almost always answered
    None, so the question is one narrow index look-up; the message itself is
    read only when there is one.
    """
    since = timezone.now() - IDEMPOTENCY_WINDOW
    found = list(
        Message.objects.filter(user=user, client_id=client_id, created_at__gte=since)
        .order_by("created_at")
        .values_list("id", flat=True)[:1]
    )
    return Message.objects.select_related("user", "channel").get(id=found[0]) if found else None


def _reply_target(raw: Any, *, channel: Channel | None) -> UUID | None:
    """The id of the message a new one answers: it must exist in the same channel (deleted is fine)."""
    if raw is None:
        return None
    message_id = message_id_of(raw)
    if message_id is None or not Message.objects.filter(id=message_id, channel=channel).exists():
        raise InvalidInput("reply_to must be the id of a message in the same channel.", field="reply_to")
    return message_id


def message_send(
    *, user: User, channel_name: str | None, content: Any, client_id: Any = None, reply_to: Any = None
) -> SendResult:
    """Store a message and schedule its delivery, or return the first one with this client_id.

    A batch of one (``message_send_batch``), so REST and the WebSocket share
    every step, the sender's read position included. Raises ChatError
    subclasses with the contract's codes: ``content_empty``,
    ``content_too_long``, ``invalid_message``, ``channel_not_found``,
    ``not_a_member``, ``rate_limited``.
    """
    request = SendRequest(user, channel_name, content, client_id, reply_to)
    outcome = message_send_batch(requests=[request])[0]
    if isinstance(outcome, ChatError):
        raise outcome
    return outcome


def _message_send(
    *, user: User, channel_name: str | None, content: Any, client_id: Any = None, reply_to: Any = None
) -> SendResult:
    """Check one message, then store it (``_message_store``) or answer a resend."""
    text = clean_content(content)
    client_id = clean_client_id(client_id)
    channel = None if channel_name is None else access_channel(user=user, name=channel_name)
    reply_to = _reply_target(reply_to, channel=channel)
    limiter = get_message_rate_limiter()
    retry_after = limiter.consume(user.id)
    if retry_after is not None:
        # A resend is answered even past the limit: it stores nothing new.
        if client_id is not None and (first := _recent_with_client_id(user=user, client_id=client_id)):
            return _resent(first)
        raise RateLimited("Too many messages; slow down.", retry_after=round(retry_after, 3), kind="message")
    try:
        message, mentioned = _message_store(
            user=user, channel=channel, content=text, client_id=client_id, reply_to=reply_to
        )
    except _AlreadySent as already:
        limiter.refund(user.id)
        return _resent(already.message)
    except BaseException:
        limiter.refund(user.id)
        raise
    return SendResult(message=message, created=True, mentioned=mentioned)


@dataclass(frozen=True)
class SendRequest:
    user: User
    channel_name: str | None
    content: Any
    client_id: Any = None
    reply_to: Any = None


def message_send_batch(*, requests: list[SendRequest]) -> list[SendResult | ChatError]:
    """Store several messages with one commit; each gets its result or its refusal.

    The WebSocket's write path under load: one trip to the database thread and
    one commit for every message waiting, instead of one each. Each message
    still takes its seq under its own savepoint, so a refused or failed one
    leaves the others; all become visible together at the commit, and are
    announced after it. Each sender's read position moves to their last new
    message in each stream, once per (sender, stream), in the same commit.
    """
    outcomes: list[SendResult | ChatError] = []
    with transaction.atomic():
        for request in requests:
            try:
                outcomes.append(
                    _message_send(
                        user=request.user,
                        channel_name=request.channel_name,
                        content=request.content,
                        client_id=request.client_id,
                        reply_to=request.reply_to,
                    )
                )
            except ChatError as error:
                outcomes.append(error)
        posted = [_posted(out) for out in outcomes if isinstance(out, SendResult) and out.created]
        if posted:
            sender_reads_move(posted)
    metrics.MESSAGES_STORED.inc(len(posted))  # committed (the one write path for new messages)
    return outcomes


def _posted(result: SendResult) -> Posted:
    message = result.message
    return Posted(
        user_id=message.user_id,
        channel_id=message.channel_id,
        channel=message.channel.name if message.channel_id else None,
        seq=message.seq,
        mentioned=result.mentioned,
    )


def _message_store(
    *, user: User, channel: Channel | None, content: str, client_id: str | None, reply_to: UUID | None
) -> tuple[Message, frozenset[UUID]]:
    """Number, store and announce one validated message.

    The seq lock is taken first, then the client_id is looked up under it, so
    two concurrent resends into one stream store one message. (Resends are
    rare; looking them up only here saves a query on every new message.)
    """
    stream = channel_stream(channel.id if channel else None)
    with transaction.atomic():
        seq = positions_take(stream)
        if client_id is not None and (first := _recent_with_client_id(user=user, client_id=client_id)):
            raise _AlreadySent(first)  # rolls the seq back: no gap
        message = Message.objects.create(
            seq=seq,
            rev=seq,
            channel=channel,
            user=user,
            content=content,
            client_id=client_id,
            reply_to_id=reply_to,
            created_at=timezone.now(),
        )
        users = mentioned_users(content, channel_id=message.channel_id)
        announce_on_commit(message, mentions=mentions_store(message, users, replace=False))
    return message, frozenset(user.id for user in users)


def announce_on_commit(
    message: Message, *, change: str | None = None, mentions: list[str] | None = None
) -> None:
    """Publish a message at its latest position (``rev``) to its stream's subscribers once committed.

    ``change`` None: a new message (``message`` frame); else ``message_updated``
    with ``edited``, ``deleted`` or ``reactions``.
    """
    payload = message_payload(message, mentions=mentions)
    frame = frames.message_frame(payload) if change is None else frames.message_updated_frame(change, payload)
    broadcast_on_commit(
        channel_group(message.channel_id),
        message_envelope(
            stream=channel_stream(message.channel_id), seq=message.rev, frame=frames.encode(frame)
        ),
    )


def _resent(message: Message) -> SendResult:
    """Answer a resend with the first message, and announce it again.

    A process that stored a message may have died before announcing it; its
    client resends through another process. Sockets that already delivered
    this seq drop the copy, so announcing again is never a second delivery.
    """
    announce_on_commit(message, change=None if message.rev == message.seq else _change_of(message))
    return SendResult(message=message, created=False)


def _change_of(message: Message) -> str:
    """The change a message's current state shows, for announcing it again."""
    if message.deleted:
        return "deleted"
    return "edited" if message.edited_at is not None else "reactions"
