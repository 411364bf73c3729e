"""seed_chat: counts, gapless seqs that continue the message service's, re-runs, real tokens."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count

from accounts.models import LoginSession, User
from accounts.tokens import authenticate_access_token
from chatrooms.models import Channel, Membership
from messaging import seeding
from messaging.models import Message, StreamSequence
from messaging.services import message_send
from realtime.groups import channel_stream

pytestmark = pytest.mark.django_db


def seqs_by_stream() -> dict[str, list[int]]:
    streams: dict[str, list[int]] = {}
    for channel_id, seq in Message.objects.order_by("seq").values_list("channel_id", "seq"):
        streams.setdefault(channel_stream(channel_id), []).append(seq)
    return streams


def assert_gapless_and_counters_match() -> None:
    for stream, seqs in seqs_by_stream().items():
        assert seqs == list(range(1, len(seqs) + 1)), stream
        assert StreamSequence.objects.get(stream=stream).last_seq == len(seqs), stream


def seed(**overrides):
    args = dict(
        users=12, channels=3, members_per_channel=4, messages=50, prefix="t", password="pw-Secret-123"
    )
    args.update(overrides)
    return seeding.seed_chat(**args)


def test_counts_and_layout():
    result = seed()
    assert User.objects.filter(username__startswith="t_").count() == 12
    assert Channel.objects.filter(name__startswith="t-").count() == 3
    assert Membership.objects.count() == 12
    assert Message.objects.count() == 50
    assert (result.users_created, result.channels_created, result.messages_created) == (12, 3, 50)
    # Every channel's owner is a member, and each message's author is a member of its channel.
    for channel in Channel.objects.all():
        members = set(channel.memberships.values_list("user_id", flat=True))
        assert channel.owner_id in members
        assert len(members) == 4
        authors = set(Message.objects.filter(channel=channel).values_list("user_id", flat=True))
        assert authors <= members
    # Spread over the lobby and all channels.
    assert Message.objects.values("channel").annotate(n=Count("id")).count() == 4
    assert_gapless_and_counters_match()


def test_one_shared_password_hash_that_works():
    seed(users=3, channels=0, messages=0)
    hashes = set(User.objects.values_list("password", flat=True))
    assert len(hashes) == 1
    assert User.objects.get(username="t_000000").check_password("pw-Secret-123")


def test_seqs_continue_after_messages_of_the_service(make_user):
    result = seed(messages=0)
    channel = result.channels[0]
    member = channel.memberships.first().user
    for text in ("one", "two"):
        message_send(user=member, channel_name=channel.name, content=text)
    message_send(user=member, channel_name=None, content="lobby")
    seed(messages=40)
    assert_gapless_and_counters_match()
    # The service keeps numbering after the seeded messages.
    after = message_send(user=member, channel_name=channel.name, content="after").message
    assert after.seq == len(seqs_by_stream()[channel_stream(channel.id)])
    assert_gapless_and_counters_match()


def test_time_order_follows_seq_order():
    seed(messages=30)
    seed(messages=30)
    for stream_messages in (
        Message.objects.filter(channel__isnull=True),
        Message.objects.filter(channel__isnull=False),
    ):
        for channel_id in {m.channel_id for m in stream_messages}:
            rows = list(
                Message.objects.filter(channel_id=channel_id)
                .order_by("seq")
                .values_list("created_at", flat=True)
            )
            assert rows == sorted(rows)


def test_rerun_with_the_same_prefix_reuses_users_and_channels():
    seed()
    again = seed(users=14, messages=20)
    assert (again.users_created, again.channels_created) == (2, 0)
    assert User.objects.filter(username__startswith="t_").count() == 14
    assert Channel.objects.count() == 3
    assert Message.objects.count() == 70
    assert_gapless_and_counters_match()


def test_rerun_finds_names_ignoring_case():
    seed(prefix="Case", messages=0)
    again = seed(prefix="case", messages=5)
    assert (again.users_created, again.channels_created) == (0, 0)
    assert User.objects.count() == 12


def test_status_of_new_users():
    seed(users=2, channels=0, messages=0, status="offline")
    assert set(User.objects.values_list("status", flat=True)) == {"offline"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"prefix": "bad prefix"},
        {"prefix": "-x"},
        {"members_per_channel": 13},
        {"users": 0, "channels": 0, "messages": 5},
        {"status": "busy"},
    ],
)
def test_bad_arguments(overrides):
    with pytest.raises(ValueError):
        seed(**overrides)


def test_tokens_are_valid_session_tokens():
    result = seed(users=3, channels=1, members_per_channel=3, messages=0)
    tokens = seeding.issue_seed_tokens(result.users, lifetime=timedelta(hours=5))
    assert set(tokens) == {"t_000000", "t_000001", "t_000002"}
    assert LoginSession.objects.count() == 3
    for username, raw in tokens.items():
        user, session = authenticate_access_token(raw)
        assert user.username == username
        assert session.user_id == user.id and session.ended_at is None
        assert session.refresh_jti  # as at login: names the session's one valid refresh token


def test_token_lifetime_is_the_one_asked_for():
    import jwt
    from django.conf import settings

    result = seed(users=1, channels=0, messages=0)
    raw = seeding.issue_seed_tokens(result.users, lifetime=timedelta(seconds=7200))["t_000000"]
    claims = jwt.decode(raw, settings.SIMPLE_JWT["SIGNING_KEY"], algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 7200


def test_command_writes_tokens_file(tmp_path, capsys):
    path = tmp_path / "tokens.json"
    call_command(
        "seed_chat", "--users", "5", "--channels", "2", "--members-per-channel", "2", "--messages", "9",
        "--prefix", "cmd", "--tokens", str(path), "--token-seconds", "600", "--no-progress",
    )  # fmt: skip
    tokens = json.loads(path.read_text())
    assert len(tokens) == 5
    user, _ = authenticate_access_token(tokens["cmd_000004"])
    assert user.username == "cmd_000004"
    assert "5 users (5 new)" in capsys.readouterr().out
    assert Message.objects.count() == 9


def test_command_rejects_bad_arguments():
    with pytest.raises(CommandError):
        call_command("seed_chat", "--prefix", "no good", "--no-progress")


def test_the_insert_writes_every_column_of_a_message():
    # A column added to Message must be added to the seeding INSERT too.
    assert set(seeding.MESSAGE_FIELDS) == {field.name for field in Message._meta.concrete_fields}


def test_seeded_messages_read_back_as_the_service_writes_them():
    result = seed(messages=8)
    sent = message_send(user=result.users[0], channel_name=None, content="by the service").message
    seeded = list(
        Message.objects.exclude(pk=sent.pk).select_related("channel", "user").order_by("created_at")
    )
    assert len(seeded) == 8 and len({m.id for m in seeded}) == 8
    for message in seeded:
        assert isinstance(message.id, type(sent.id))
        assert message.rev == message.seq
        assert message.created_at.tzinfo is not None and message.created_at < sent.created_at
        assert (message.client_id, message.reply_to_id, message.edited_at, message.deleted) == (
            None, None, None, False,
        )  # fmt: skip
        assert message.content.startswith("Seeded message ")
    lobby = [m for m in seeded if m.channel is None]
    assert lobby and all(m.user in result.users for m in lobby)
    assert_gapless_and_counters_match()


def test_sqlite_page_cache_is_given_back():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("a SQLite setting")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA cache_size")
        (before,) = cursor.fetchone()
        seed(messages=5)
        cursor.execute("PRAGMA cache_size")
        assert cursor.fetchone() == (before,)
