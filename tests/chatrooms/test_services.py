"""Channel services: the rules, and the exact envelopes they publish after commit."""

from __future__ import annotations

from unittest import mock

import pytest

from chatrooms import services
from chatrooms.models import Channel, Membership
from core.errors import ChannelNotFound, Forbidden, InvalidInput, OwnerCannotLeave
from messaging.models import Message, StreamSequence
from messaging.services import message_send
from realtime import frames
from realtime.envelopes import (
    KIND_CHANNEL_DELETED,
    KIND_FRAME,
    KIND_SUBSCRIBE,
    KIND_UNSUBSCRIBE,
)
from realtime.groups import channel_group, user_group
from tests.conftest import envelope

pytestmark = pytest.mark.django_db


def enc(frame: dict) -> str:
    return frames.encode(frame)


def test_create_makes_owner_first_member_and_seq_row(make_user, published):
    alice = make_user("alice")
    with published.capture():
        channel = services.channel_create(user=alice, name="General", description="talk")
    assert channel.owner == alice
    assert list(channel.members.all()) == [alice]
    assert StreamSequence.objects.get(stream=channel.id.hex).last_seq == 0
    assert published.calls == [
        (
            user_group(alice.id),
            envelope(
                KIND_SUBSCRIBE,
                stream=channel.id.hex,
                channel="General",
                last_seq=0,
                frames=[enc({"type": "subscribed", "channel": "General"})],
            ),
        )
    ]


def test_create_publishes_nothing_before_commit(make_user, published, django_capture_on_commit_callbacks):
    alice = make_user("alice")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.channel_create(user=alice, name="General")
    assert len(callbacks) == 1
    assert published.calls == []


@pytest.mark.parametrize("name", ["general", "GENERAL", "General"])
def test_create_duplicate_name_ignoring_case(make_user, published, name):
    alice = make_user("alice")
    services.channel_create(user=alice, name="General")
    with published.capture(), pytest.raises(InvalidInput) as info:
        services.channel_create(user=alice, name=name)
    assert info.value.rest_body() == {"name": ["A channel with this name already exists."]}
    assert published.calls == []
    assert Channel.objects.count() == 1


def test_create_duplicate_race_is_400_not_500(make_user):
    """The unique index catches a name created between the check and the insert."""
    alice = make_user("alice")
    services.channel_create(user=alice, name="General")
    with (
        mock.patch("django.db.models.query.QuerySet.exists", return_value=False),
        pytest.raises(InvalidInput) as info,
    ):
        services.channel_create(user=alice, name="GENERAL")
    assert info.value.field == "name"
    assert Channel.objects.count() == 1
    assert StreamSequence.objects.count() == 1


@pytest.mark.parametrize("name", ["me", "ME", "", "_x", "-x", "a b", "x" * 65, "é"])
def test_create_refuses_bad_and_reserved_names(make_user, name):
    with pytest.raises(InvalidInput) as info:
        services.channel_create(user=make_user(), name=name)
    assert info.value.field == "name"


def test_create_refuses_long_description(make_user):
    with pytest.raises(InvalidInput) as info:
        services.channel_create(user=make_user(), name="a", description="d" * 501)
    assert info.value.field == "description"
    services.channel_create(user=make_user(), name="b", description="d" * 500)


def test_join_announces_to_joiner_and_channel(make_user, published):
    alice, bob = make_user("alice"), make_user("bob")
    channel = services.channel_create(user=alice, name="General")
    message_send(user=alice, channel_name="General", content="one")
    message_send(user=alice, channel_name="General", content="two")
    with published.capture():
        assert services.channel_join(user=bob, name="general") == channel
    joined = enc({"type": "member_joined", "channel": "General", "username": "bob"})
    assert published.calls == [
        (
            user_group(bob.id),
            envelope(
                KIND_SUBSCRIBE,
                stream=channel.id.hex,
                channel="General",
                last_seq=2,
                frames=[enc({"type": "subscribed", "channel": "General"}), joined],
            ),
        ),
        (channel_group(channel.id), envelope(KIND_FRAME, frame=joined, exclude_user=bob.id.hex)),
    ]


def test_join_twice_is_quiet(make_user, published):
    alice, bob = make_user("alice"), make_user("bob")
    services.channel_create(user=alice, name="General")
    services.channel_join(user=bob, name="General")
    with published.capture():
        services.channel_join(user=bob, name="General")
        services.channel_join(user=alice, name="General")
    assert published.calls == []
    assert Membership.objects.count() == 2


def test_join_unknown(make_user):
    with pytest.raises(ChannelNotFound):
        services.channel_join(user=make_user(), name="nowhere")


def test_leave_announces_to_channel_and_leaver(make_user, published):
    alice, bob = make_user("alice"), make_user("bob")
    channel = services.channel_create(user=alice, name="General")
    services.channel_join(user=bob, name="General")
    with published.capture():
        services.channel_leave(user=bob, name="GENERAL")
    left = enc({"type": "member_left", "channel": "General", "username": "bob"})
    assert published.calls == [
        (channel_group(channel.id), envelope(KIND_FRAME, frame=left, exclude_user=bob.id.hex)),
        (
            user_group(bob.id),
            envelope(
                KIND_UNSUBSCRIBE,
                stream=channel.id.hex,
                channel="General",
                frames=[left, enc({"type": "unsubscribed", "channel": "General"})],
            ),
        ),
    ]
    assert list(channel.members.all()) == [alice]


def test_owner_cannot_leave(make_user, published):
    alice = make_user("alice")
    services.channel_create(user=alice, name="General")
    with published.capture(), pytest.raises(OwnerCannotLeave) as info:
        services.channel_leave(user=alice, name="General")
    assert info.value.code == "owner_cannot_leave"
    assert published.calls == []


def test_leave_when_not_a_member(make_user, published):
    services.channel_create(user=make_user(), name="General")
    with published.capture(), pytest.raises(InvalidInput) as info:
        services.channel_leave(user=make_user(), name="General")
    assert info.value.code == "not_a_member"
    assert info.value.http_status == 400
    assert published.calls == []


def test_delete_by_owner_removes_everything(make_user, published):
    alice, bob = make_user("alice"), make_user("bob")
    channel = services.channel_create(user=alice, name="General")
    services.channel_join(user=bob, name="General")
    message_send(user=bob, channel_name="General", content="hi")
    lobby = message_send(user=bob, channel_name=None, content="lobby").message
    with published.capture():
        services.channel_delete(user=alice, name="general")
    assert published.calls == [
        (
            channel_group(channel.id),
            envelope(
                KIND_CHANNEL_DELETED,
                stream=channel.id.hex,
                channel="General",
                frame=enc({"type": "channel_deleted", "channel": "General"}),
            ),
        )
    ]
    assert not Channel.objects.exists()
    assert not Membership.objects.exists()
    assert list(Message.objects.all()) == [lobby]
    assert not StreamSequence.objects.filter(stream=channel.id.hex).exists()


def test_delete_by_non_owner_is_forbidden(make_user, published):
    alice, bob = make_user("alice"), make_user("bob")
    services.channel_create(user=alice, name="General")
    services.channel_join(user=bob, name="General")
    with published.capture(), pytest.raises(Forbidden):
        services.channel_delete(user=bob, name="General")
    assert published.calls == []
    assert Channel.objects.count() == 1


def test_delete_unknown(make_user):
    with pytest.raises(ChannelNotFound):
        services.channel_delete(user=make_user(), name="nowhere")


def test_recreated_name_starts_a_new_sequence(make_user):
    alice = make_user("alice")
    services.channel_create(user=alice, name="General")
    message_send(user=alice, channel_name="General", content="one")
    services.channel_delete(user=alice, name="General")
    services.channel_create(user=alice, name="General")
    assert message_send(user=alice, channel_name="General", content="again").message.seq == 1
