"""The steps of a group commit of new messages, in the order ``message_send_batch`` runs them.

Each request becomes a ``Send``, which the steps fill in: its channel among
the sender's memberships (``channels_find``), its reply target
(``replies_find``), then under the streams' locks whether it is a resend,
refused by the rate limit or new, and for a new one its position, row,
mentions and announcement (``store``); each step is one SQL statement for
the whole batch (``messaging.store``). ``outcome`` is what the caller gets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from django.db import connection
from django.utils import timezone

from accounts.models import User
from chatrooms.selectors import access_channel, member_channels
from core.errors import ChatError, InvalidInput, RateLimited
from messaging.mentions import mentions_find, mentions_insert
from messaging.models import Message
from messaging.payloads import message_row_payload, model_payloads
from messaging.positions import positions_give_back, positions_take_many
from messaging.ratelimit import MessageRateLimiter
from messaging.reads import Posted
from messaging.selectors import message_id_of
from messaging.store import NewMessage, client_ids_first, messages_insert
from realtime import frames
from realtime.envelopes import message_envelope
from realtime.groups import channel_stream, stream_group
from realtime.publish import broadcast_all_on_commit

IDEMPOTENCY_WINDOW = timedelta(hours=24)
_NOBODY: frozenset[UUID] = frozenset()


@dataclass(frozen=True)
class SendRequest:
    """One message to send. ``channel_id``: the channel the sender's socket is subscribed to
    (by ``channel_name``); the membership is still checked in the write, by id, and a sender
    who is no member any more is refused by name as any other (``access_channel``)."""

    user: User
    channel_name: str | None
    content: Any
    client_id: Any = None
    reply_to: Any = None
    channel_id: UUID | None = None


@dataclass(eq=False)
class SendResult:
    """A send's answer: the message (new, or the first one with this ``client_id``) and its payload.

    ``message`` is the row as a model, made on first use (for callers that
    want one, such as tests); REST answers with ``payload``, and the socket's
    ``ack`` and the broadcast need only the fields, so a batch makes no model
    instances.
    """

    message_id: UUID
    seq: int
    rev: int
    client_id: str | None
    created: bool  # False: an idempotent resend, answered with the first message
    payload: dict[str, Any]  # the message as the contract shows it
    channel_id: UUID | None  # None: the lobby
    mentioned: frozenset[UUID] = frozenset()  # ids of the users a new message mentions
    _message: Message | None = field(default=None, repr=False)
    _row: NewMessage | None = field(default=None, repr=False)
    _user: User | None = field(default=None, repr=False)

    @property
    def message(self) -> Message:
        if self._message is None:
            row = self._row
            message = Message(
                id=row.id,
                seq=row.seq,
                rev=row.seq,
                channel_id=row.channel_id,
                user=self._user,
                content=row.content,
                created_at=row.created_at,
                client_id=row.client_id,
                reply_to_id=row.reply_to,
                edited_at=None,
                deleted=False,
            )
            message._state.adding, message._state.db = False, connection.alias
            self._message = message
        return self._message


class Send:
    """One request's way through a batch: what it was found to be, then its outcome."""

    __slots__ = (
        "request",
        "user",
        "text",
        "client_id",
        "channel_id",
        "channel",
        "reply_to",
        "error",
        "spent",
        "first",
        "result",
        "row",
        "mentions",
    )

    def __init__(self, request: SendRequest) -> None:
        self.request = request
        self.user = request.user
        self.text = ""
        self.client_id: str | None = None
        self.channel_id: UUID | None = None
        self.channel: str | None = None  # the channel's name as stored (None: the lobby)
        self.reply_to: UUID | None = None
        self.error: ChatError | None = None
        self.spent = False  # took a token from the rate limiter (given back if the batch fails)
        # A resend: the first message with its client_id, stored before or earlier in this batch.
        self.first: SendResult | Send | None = None
        self.result: SendResult | None = None  # a new message's, once made
        self.row: NewMessage | None = None  # a new message, once numbered
        self.mentions: list[tuple[UUID, str]] = []

    @property
    def key(self) -> tuple[UUID, str] | None:
        return None if self.client_id is None else (self.user.id, self.client_id)

    @property
    def stream(self) -> str:
        return channel_stream(self.channel_id)


def live(sends: list[Send]) -> list[Send]:
    return [send for send in sends if send.error is None]


def channels_find(sends: list[Send]) -> None:
    """Each message's channel, among those its sender is a member of (one query for the batch):
    by id when the sender's socket is subscribed to it, else by name. Any other is refused by
    ``access_channel``, which words every refusal (``channel_not_found`` for a missing or
    hidden channel, ``not_a_member``) as everywhere else."""
    wanted: list[tuple[Send, UUID | str | None]] = []
    for send in sends:
        request = send.request
        if request.channel_id is not None:
            wanted.append((send, request.channel_id))
        elif request.channel_name is not None:
            wanted.append((send, request.channel_name if isinstance(request.channel_name, str) else None))
    found = member_channels(
        by_id={(send.user.id, key) for send, key in wanted if isinstance(key, UUID)},
        by_name={(send.user.id, key) for send, key in wanted if isinstance(key, str)},
    )
    for send, key in wanted:
        channel = found.get((send.user.id, key))
        if channel is None:
            try:
                channel = access_channel(user=send.user, name=send.request.channel_name)
            except ChatError as error:
                send.error = error
                continue
            channel = (channel.id, channel.name)
        send.channel_id, send.channel = channel


_NO_MESSAGE = object()


def replies_find(sends: list[Send]) -> None:
    """Check ``reply_to``: the id of a message in the same channel (deleted is fine); one query."""
    replying = [send for send in sends if send.request.reply_to is not None]
    if not replying:
        return
    for send in replying:
        send.reply_to = message_id_of(send.request.reply_to)
    ids = {send.reply_to for send in replying if send.reply_to is not None}
    channels = dict(Message.objects.filter(id__in=ids).values_list("id", "channel_id")) if ids else {}
    for send in replying:
        if send.reply_to is None or channels.get(send.reply_to, _NO_MESSAGE) != send.channel_id:
            send.error = InvalidInput(
                "reply_to must be the id of a message in the same channel.", field="reply_to"
            )


def store(sends: list[Send], limiter: MessageRateLimiter) -> list[Send]:
    """Number, store and announce the new messages among ``sends``; answer the resends.

    Every stream's positions are taken first (their locks serialize the
    stream's writers until commit), then the ``client_id``s are looked up under
    those locks, so two concurrent resends store one message. Then each
    message in order is a resend (of a message stored before or earlier in the
    batch: answered even past the rate limit, and spending no token), refused
    by the rate limit, or new. Positions taken for messages that turned out not
    to be new are given back at once, leaving no gap.
    """
    taken = Counter(send.stream for send in sends)
    last = positions_take_many(taken)
    keys = {send.key for send in sends if send.key is not None}
    earlier = client_ids_first(keys, since=timezone.now() - IDEMPOTENCY_WINDOW) if keys else {}
    stored_before = _stored_before(set(earlier.values()))
    claimed: dict[tuple[UUID, str], SendResult | Send] = {}
    announced: list[tuple[str, dict[str, Any]] | Send] = []  # in the order of the requests
    new: list[Send] = []
    waits = _tokens_taken(sends, earlier, limiter)
    for send in sends:
        key = send.key
        if key is not None and (key in claimed or key in earlier):
            if key not in claimed:
                claimed[key] = stored_before[earlier[key]]
                announced.append(_announcement(claimed[key], change=_change_of(claimed[key].message)))
            send.first = claimed[key]
            continue
        retry_after = waits.pop(id(send)) if id(send) in waits else limiter.consume(send.user.id)
        if retry_after is not None:
            send.error = RateLimited(
                "Too many messages; slow down.", retry_after=round(retry_after, 3), kind="message"
            )
            continue
        send.spent = True
        new.append(send)
        announced.append(send)
        if key is not None:
            claimed[key] = send
    used = Counter(send.stream for send in new)
    positions_give_back(
        {stream: count - used[stream] for stream, count in taken.items() if count > used[stream]}
    )
    _number(new, last, taken)
    messages_insert([send.row for send in new])
    found = mentions_find([(send.text, send.channel_id) for send in new])
    mentions_insert(
        [(send.row.id, user_id) for send, users in zip(new, found, strict=True) for user_id, _ in users]
    )
    for send, users in zip(new, found, strict=True):
        send.mentions = users
    broadcast_all_on_commit(
        [item if isinstance(item, tuple) else _announcement(_result(item)) for item in announced]
    )
    return new


def _tokens_taken(
    sends: list[Send], earlier: dict[tuple[UUID, str], UUID], limiter: MessageRateLimiter
) -> dict[int, float | None]:
    """The rate limit's answers, in one call (one Redis round trip), for the sends that will ask.

    Those are the sends that are no resend of a message stored before, each
    ``client_id`` counted at its first send in the batch; a later send with the
    same ``client_id`` asks only if that first one was refused (``store``
    then asks for it alone), so the tokens spent are those of sending one by one.
    """
    asking: list[Send] = []
    seen: set[tuple[UUID, str]] = set()
    for send in sends:
        key = send.key
        if key is None:
            asking.append(send)
        elif key not in earlier and key not in seen:
            seen.add(key)
            asking.append(send)
    answers = limiter.consume_many([send.user.id for send in asking])
    return {id(send): answer for send, answer in zip(asking, answers, strict=True)}


def _number(new: list[Send], last: dict[str, int], taken: dict[str, int]) -> None:
    """Give the new messages their positions (in order, per stream, from the first one taken)
    and their ids and times: one clock reading, a microsecond apart, so a stream's messages
    keep their order by time too."""
    following = {stream: last[stream] - taken[stream] + 1 for stream in taken}
    now = timezone.now()
    for index, send in enumerate(new):
        stream = send.stream
        seq, following[stream] = following[stream], following[stream] + 1
        send.row = NewMessage(
            id=uuid4(),
            seq=seq,
            channel_id=send.channel_id,
            user_id=send.user.id,
            content=send.text,
            created_at=now + timedelta(microseconds=index),
            client_id=send.client_id,
            reply_to=send.reply_to,
        )


def _result(send: Send) -> SendResult:
    """A new message's result, its payload built from the values just stored (no query)."""
    if send.result is not None:
        return send.result
    row = send.row
    mentions = send.mentions
    names = sorted((username for _, username in mentions), key=str.lower) if mentions else []
    payload = message_row_payload(
        (
            row.id,
            row.seq,
            row.seq,
            send.channel,
            send.user.username,
            row.user_id,
            row.content,
            row.created_at,
            row.client_id,
            row.reply_to,
            None,
            False,
        ),
        mentions=names,
    )
    send.result = SendResult(
        message_id=row.id,
        seq=row.seq,
        rev=row.seq,
        client_id=row.client_id,
        created=True,
        payload=payload,
        channel_id=row.channel_id,
        mentioned=frozenset(user_id for user_id, _ in mentions) if mentions else _NOBODY,
        _row=row,
        _user=send.user,
    )
    return send.result


def outcome(send: Send) -> SendResult | ChatError:
    if send.error is not None:
        return send.error
    if send.first is None:
        return _result(send)  # new
    if isinstance(send.first, Send):
        return _again(_result(send.first))  # a resend of a message of this batch
    return send.first  # a resend of a message stored before


def _again(result: SendResult) -> SendResult:
    """A new message's result as the answer to a resend of it in the same batch."""
    return SendResult(
        message_id=result.message_id,
        seq=result.seq,
        rev=result.rev,
        client_id=result.client_id,
        created=False,
        payload=result.payload,
        channel_id=result.channel_id,
        _row=result._row,
        _user=result._user,
    )


def posted(send: Send) -> Posted:
    return Posted(
        user_id=send.user.id,
        channel_id=send.channel_id,
        channel=send.channel,
        seq=send.row.seq,
        mentioned=_result(send).mentioned,
    )


def _announcement(result: SendResult, *, change: str | None = None) -> tuple[str, dict[str, Any]]:
    """The (group, envelope) of a message at its latest position (``rev``): ``message``, or
    ``message_updated`` with ``change``."""
    payload = result.payload
    frame = frames.message_frame(payload) if change is None else frames.message_updated_frame(change, payload)
    stream = channel_stream(result.channel_id)
    return stream_group(stream), message_envelope(stream=stream, seq=result.rev, frame=frames.encode(frame))


def _stored_before(ids: set[UUID]) -> dict[UUID, SendResult]:
    """The answers to resends of messages stored before the batch: each first message as it is
    now (edited, reacted to or deleted since), in three queries however many.

    ``store`` announces each again: a process that stored a message may have
    died before announcing it, and its client resends through another process.
    Sockets that already delivered this position drop the copy, so announcing
    again is never a second delivery.
    """
    if not ids:
        return {}
    messages = list(Message.objects.select_related("user", "channel").filter(id__in=ids))
    return {
        message.id: SendResult(
            message_id=message.id,
            seq=message.seq,
            rev=message.rev,
            client_id=message.client_id,
            created=False,
            payload=payload,
            channel_id=message.channel_id,
            _message=message,
        )
        for message, payload in zip(messages, model_payloads(messages), strict=True)
    }


def _change_of(message: Message) -> str | None:
    """The change a message's current state shows, for announcing it again (None: unchanged)."""
    if message.rev == message.seq:
        return None
    if message.deleted:
        return "deleted"
    return "edited" if message.edited_at is not None else "reactions"
