"""message_send: numbering, idempotency, the envelope it publishes, and what it refuses."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import transaction

from chatrooms import services as channel_services
from core.errors import (
    ChannelNotFound,
    ContentEmpty,
    ContentTooLong,
    InvalidInput,
    NotAMember,
    RateLimited,
)
from messaging import batch, changes, services
from messaging.models import Message, StreamSequence
from messaging.payloads import message_payload
from messaging.ratelimit import reset_message_rate_limiter
from realtime import frames
from realtime.envelopes import KIND_FRAME, KIND_MESSAGE
from realtime.groups import LOBBY_GROUP, channel_group, user_group
from tests.conftest import envelope

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch, django_capture_on_commit_callbacks):
    calls: list[tuple[str, dict]] = []
    monkeypatch.setattr("realtime.publish.publish_all", calls.extend)
    return calls


def test_seq_per_stream_starts_at_one(make_user):
    alice = make_user()
    channel_services.channel_create(user=alice, name="a")
    channel_services.channel_create(user=alice, name="b")
    sent = [
        (name, services.message_send(user=alice, channel_name=name, content="x").message.seq)
        for name in ["a", "b", None, "a", None, "a", "b"]
    ]
    assert sent == [("a", 1), ("b", 1), (None, 1), ("a", 2), (None, 2), ("a", 3), ("b", 2)]


def test_send_publishes_one_message_envelope_after_commit(
    make_user, published, django_capture_on_commit_callbacks
):
    alice = make_user("alice")
    channel = channel_services.channel_create(user=alice, name="General")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = services.message_send(user=alice, channel_name="general", content="hi", client_id="k")
    assert published == []  # nothing before commit
    for callback in callbacks:
        callback()
    message = result.message
    frame = frames.encode({"type": "message", "message": message_payload(message)})
    read = frames.encode(
        {"type": "read", "channel": "General", "last_read_seq": 1, "unread": 0, "mentions": 0}
    )
    assert published == [
        (channel_group(channel.id), envelope(KIND_MESSAGE, stream=channel.id.hex, seq=1, frame=frame)),
        (user_group(alice.id), envelope(KIND_FRAME, frame=read)),  # the sender's read position moved
    ]
    assert message_payload(message)["channel"] == "General"


def test_lobby_message_goes_to_the_lobby_group(make_user, published, django_capture_on_commit_callbacks):
    alice = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        services.message_send(user=alice, channel_name=None, content="hi")
    messages = [
        (group, event["stream"], event["seq"]) for group, event in published if event["kind"] == "message"
    ]
    assert messages == [(LOBBY_GROUP, "", 1)]


def test_resend_returns_first_and_announces_it_again(
    make_user, published, django_capture_on_commit_callbacks
):
    """The process that stored the first copy may have died before announcing it; sockets drop repeats."""
    alice = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        first = services.message_send(user=alice, channel_name=None, content="a", client_id="k")
    with django_capture_on_commit_callbacks(execute=True):
        again = services.message_send(user=alice, channel_name=None, content="b", client_id="k")
    assert first.created and not again.created
    assert again.message.id == first.message.id
    # The same envelope: same seq and frame; the first send also moved alice's
    # read position, the resend moves nothing.
    assert len(published) == 3 and published[0] == published[2]
    assert published[1][0] == user_group(alice.id)
    assert Message.objects.count() == 1


def test_resend_found_under_the_lock_rolls_the_seq_back(make_user):
    """Resends are looked up under the seq lock; the seq taken for one is rolled back."""
    alice = make_user()
    first = services.message_send(user=alice, channel_name=None, content="a", client_id="k").message
    again = services.message_send(user=alice, channel_name=None, content="b", client_id="k")
    assert not again.created
    assert again.message.id == first.id
    assert StreamSequence.objects.get(stream="").last_seq == 1
    assert services.message_send(user=alice, channel_name=None, content="c").message.seq == 2


def test_resend_past_the_rate_limit_is_still_answered(make_user, settings):
    settings.CHAT_MESSAGE_BURST = 1
    settings.CHAT_MESSAGE_RATE = 0.001
    reset_message_rate_limiter()
    alice = make_user()
    first = services.message_send(user=alice, channel_name=None, content="a", client_id="k").message
    again = services.message_send(user=alice, channel_name=None, content="a", client_id="k")
    assert (again.created, again.message.id) == (False, first.id)
    with pytest.raises(RateLimited):
        services.message_send(user=alice, channel_name=None, content="new", client_id="other")


def test_failed_store_leaves_no_gap(make_user):
    alice = make_user()
    services.message_send(user=alice, channel_name=None, content="a")
    with (
        mock.patch.object(batch, "messages_insert", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        services.message_send(user=alice, channel_name=None, content="b")
    assert services.message_send(user=alice, channel_name=None, content="c").message.seq == 2


def test_rolled_back_caller_transaction_publishes_nothing(
    make_user, published, django_capture_on_commit_callbacks
):
    alice = make_user()
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        services.message_send(user=alice, channel_name=None, content="a")
        raise RuntimeError
    assert published == []
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", ContentEmpty),
        (" \n\t\u3000", ContentEmpty),
        ("x" * 1001, ContentTooLong),
        ("a\x00b", InvalidInput),
        ("a\ud800b", InvalidInput),
        (None, InvalidInput),
        (12, InvalidInput),
    ],
)
def test_refused_content(make_user, content, error):
    with pytest.raises(error) as info:
        services.message_send(user=make_user(), channel_name=None, content=content)
    assert info.value.field == "content"
    assert not Message.objects.exists()


def test_content_is_trimmed_and_counted_in_code_points(make_user):
    user = make_user()
    text = "\U0001f468\u200d\U0001f469" * 333 + "!"  # 1000 code points, many more UTF-16 units
    assert (
        services.message_send(user=user, channel_name=None, content=f"\n {text} \t").message.content == text
    )


def test_refused_channels(make_user):
    alice, bob = make_user(), make_user()
    channel_services.channel_create(user=alice, name="General")
    with pytest.raises(NotAMember):
        services.message_send(user=bob, channel_name="General", content="x")
    with pytest.raises(ChannelNotFound):
        services.message_send(user=bob, channel_name="nowhere", content="x")


def test_message_delete_leaves_a_tombstone_at_the_next_position(make_user):
    alice = make_user()
    first = services.message_send(user=alice, channel_name=None, content="a").message
    changes.message_delete(user=alice, message_id=str(first.id))
    tombstone = Message.objects.get()
    assert (tombstone.content, tombstone.deleted, tombstone.seq, tombstone.rev) == ("", True, 1, 2)
    assert services.message_send(user=alice, channel_name=None, content="b").message.seq == 3
