"""The one write path for new messages, used by REST, the WebSocket and the admin.

``message_send_batch`` stores a group commit's messages: each is checked
(content, channel access, reply target, rate, idempotency by ``client_id``)
and the ones that pass are numbered, stored and announced with one SQL
statement per table for the whole batch (the steps: ``messaging.batch``;
the SQL: ``messaging.store``), so a batch of 200 costs about as many queries
as a batch of one. ``message_send`` is a batch of one.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import User
from core import metrics
from core.errors import ChatError, ContentEmpty, ContentTooLong, InvalidInput
from messaging.batch import (
    IDEMPOTENCY_WINDOW,
    Send,
    SendRequest,
    SendResult,
    channels_find,
    live,
    outcome,
    posted,
    replies_find,
    store,
)
from messaging.models import CLIENT_ID_MAX_LENGTH, CONTENT_MAX_CODE_POINTS, Message
from messaging.payloads import message_payload
from messaging.ratelimit import get_message_rate_limiter
from messaging.reads import sender_reads_move
from realtime import frames
from realtime.envelopes import message_envelope
from realtime.groups import channel_group, channel_stream
from realtime.publish import broadcast_on_commit

__all__ = [
    "IDEMPOTENCY_WINDOW",
    "SendRequest",
    "SendResult",
    "announce_on_commit",
    "clean_client_id",
    "clean_content",
    "message_send",
    "message_send_batch",
]


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


def message_send_batch(*, requests: list[SendRequest]) -> list[SendResult | ChatError]:
    """Store several messages with one commit; each gets its result or its refusal.

    The WebSocket's write path under load: one trip to the database thread,
    one commit and a few statements for every message waiting, instead of a
    dozen each. A refused message (content, channel, reply target, rate) takes
    no position and leaves the others; a failure of the transaction itself
    fails the whole batch (nothing of it is stored). All become visible
    together at the commit, and are announced after it. Each sender's read
    position moves to their last new message in each stream, in the same
    commit. Outcomes are as if the messages were sent one after the other.
    """
    sends = [Send(request) for request in requests]
    for send in sends:
        try:
            send.text = clean_content(send.request.content)
            send.client_id = clean_client_id(send.request.client_id)
        except ChatError as error:
            send.error = error
    limiter = get_message_rate_limiter()
    try:
        with transaction.atomic():
            channels_find(live(sends))
            replies_find(live(sends))
            stored = store(live(sends), limiter)
            if stored:
                sender_reads_move([posted(send) for send in stored])
    except BaseException:
        for send in sends:
            if send.spent:  # nothing of the batch is stored
                limiter.refund(send.user.id)
        raise
    metrics.MESSAGES_STORED.inc(len(stored))  # committed (the one write path for new messages)
    return [outcome(send) for send in sends]


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
