"""Group commit: several messages stored in one transaction, each with its own outcome."""

from __future__ import annotations

import asyncio
import threading
import uuid
from types import SimpleNamespace

import orjson
import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatrooms import services as channel_services
from chatrooms.models import Membership
from core.errors import ChatError, ContentEmpty, NotAMember
from messaging import services, writer
from messaging.models import LobbyRead, Mention, Message, StreamSequence
from messaging.payloads import message_payloads
from messaging.ratelimit import reset_message_rate_limiter
from messaging.services import SendRequest, SendResult, message_send_batch


@pytest.mark.django_db
def test_batch_keeps_each_outcome_and_seqs_gapless(make_user, published):
    alice, bob = make_user(), make_user()
    channel_services.channel_create(user=alice, name="ops")
    requests = [
        SendRequest(alice, None, "one", "a"),
        SendRequest(alice, None, "   "),  # refused: empty
        SendRequest(bob, "ops", "not a member"),  # refused: not a member
        SendRequest(alice, "ops", "in ops"),
        SendRequest(alice, None, "one again", "a"),  # a resend within the batch
        SendRequest(alice, None, "two"),
    ]
    with published.capture():
        outcomes = message_send_batch(requests=requests)
    assert [type(o) for o in outcomes] == [
        SendResult,
        ContentEmpty,
        NotAMember,
        SendResult,
        SendResult,
        SendResult,
    ]
    assert outcomes[4].created is False and outcomes[4].message.id == outcomes[0].message.id
    assert [o.message.seq for o in (outcomes[0], outcomes[5])] == [1, 2]
    assert outcomes[3].message.seq == 1
    assert StreamSequence.objects.get(stream="").last_seq == 2
    assert Message.objects.count() == 3
    # One announcement per new message (the resend within the batch is the same
    # commit's: not announced twice), then one read move per (sender, stream):
    # alice in the lobby (to seq 2) and in ops.
    kinds = [(event["kind"], event.get("seq")) for _, event in published.calls]
    assert kinds == [("message", 1), ("message", 1), ("message", 2), ("frame", None), ("frame", None)]
    assert LobbyRead.objects.get(user=alice).last_read_seq == 2
    assert Membership.objects.get(user=alice, channel__name="ops").last_read_seq == 1


@pytest.mark.django_db(transaction=True)
async def test_writer_batches_concurrent_sends_and_answers_each(make_user, monkeypatch):
    user = await database_sync_to_async(make_user)()
    batch_sizes = []
    real = services.message_send_batch

    def counting(*, requests):
        batch_sizes.append(len(requests))
        return real(requests=requests)

    monkeypatch.setattr(writer, "message_send_batch", counting)
    process_writer = writer.MessageWriter()
    results = await asyncio.gather(
        *(
            process_writer.send(user=user, channel_name=None, content=f"m{n}", client_id=f"c{n}")
            for n in range(30)
        ),
        process_writer.send(user=user, channel_name=None, content=" ", client_id=None),
        return_exceptions=True,
    )
    assert isinstance(results[-1], ContentEmpty)
    assert sorted(r.message.seq for r in results[:-1]) == list(range(1, 31))
    assert [r.message.client_id for r in results[:-1]] == [f"c{n}" for n in range(30)]
    assert sum(batch_sizes) == 31 and len(batch_sizes) < 31  # sends waiting together shared a commit


@pytest.fixture
def rooms(make_user, settings):
    """alice owns public ``ops`` (bob a member), private ``secret`` and public ``town``; dave is in none.

    The message rate allows two new messages per user, and bob has spent one
    on a lobby message with client_id ``k`` before the batch.
    """
    settings.CHAT_MESSAGE_BURST = 2
    settings.CHAT_MESSAGE_RATE = 0.001
    reset_message_rate_limiter()
    alice, bob, dave = make_user("alice"), make_user("bob"), make_user("dave")
    ops = channel_services.channel_create(user=alice, name="ops")
    channel_services.channel_join(user=bob, name="ops")
    channel_services.channel_create(user=alice, name="secret", private=True)
    channel_services.channel_create(user=alice, name="town")
    before = services.message_send(user=bob, channel_name=None, content="before", client_id="k")
    yield SimpleNamespace(alice=alice, bob=bob, dave=dave, ops=ops, before=before)
    reset_message_rate_limiter()


def test_a_batch_of_mixed_outcomes_refuses_each_alone_and_numbers_the_rest_without_gaps(rooms, published):
    alice, bob, dave, ops, before = rooms.alice, rooms.bob, rooms.dave, rooms.ops, rooms.before
    requests = [
        SendRequest(alice, "ops", "hello @bob", "a1", channel_id=ops.id),  # new: ops 1
        SendRequest(bob, None, "again", "k"),  # a resend of the message stored before
        SendRequest(alice, None, "   "),
        SendRequest(alice, None, "x" * 1001),
        SendRequest(alice, None, "bad client id", "x" * 101),
        SendRequest(bob, "nowhere", "hi"),
        SendRequest(dave, "secret", "hi"),  # private: answered as missing
        SendRequest(dave, "town", "hi"),
        SendRequest(dave, "ops", "hi", channel_id=ops.id),  # his socket was wrong: no member
        SendRequest(bob, "ops", "re", reply_to=str(uuid.uuid4())),  # no such message
        SendRequest(bob, "ops", "re", reply_to=str(before.message_id)),  # a message of the lobby
        SendRequest(bob, "OPS", "new in ops", "b1"),  # new: ops 2 (bob's last token)
        SendRequest(bob, "ops", "one too many", "b2"),
        SendRequest(alice, "ops", "hello again", "a1", channel_id=ops.id),  # a resend of the first
        SendRequest(alice, None, "in the lobby", reply_to=str(before.message_id)),  # new: lobby 2
        SendRequest(bob, None, "resent past the limit", "k"),
    ]
    with published.capture():
        outcomes = message_send_batch(requests=requests)
    codes = [o.code if isinstance(o, ChatError) else ("new" if o.created else "resent") for o in outcomes]
    assert codes == [
        "new",
        "resent",
        "content_empty",
        "content_too_long",
        "invalid_message",
        "channel_not_found",
        "channel_not_found",
        "not_a_member",
        "not_a_member",
        "invalid_message",
        "invalid_message",
        "new",
        "rate_limited",
        "resent",
        "new",
        "resent",
    ]
    first, resent, ops_second, again, lobby_second, late = (outcomes[i] for i in (0, 1, 11, 13, 14, 15))
    assert (first.seq, ops_second.seq, lobby_second.seq) == (1, 2, 2)
    assert resent.message_id == late.message_id == before.message_id and resent.seq == 1
    assert (again.message_id, again.seq, again.client_id) == (first.message_id, 1, "a1")
    assert first.payload["mentions"] == ["bob"] and first.payload["channel"] == "ops"
    assert ops_second.payload["channel"] == "ops"  # the name as stored, not as written
    assert lobby_second.payload["reply_to"] == str(before.message_id)
    # Gapless: the counters stand at the last position stored, and every position is one message.
    counters = dict(StreamSequence.objects.values_list("stream", "last_seq"))
    assert (counters[""], counters[ops.id.hex], sum(counters.values())) == (2, 2, 4)
    assert sorted(Message.objects.filter(channel=ops).values_list("seq", flat=True)) == [1, 2]
    assert sorted(Message.objects.filter(channel=None).values_list("seq", flat=True)) == [1, 2]
    assert Message.objects.count() == 4
    assert list(Mention.objects.values_list("message_id", "user_id")) == [(first.message_id, bob.id)]
    # What is stored is what was announced: the frame equals the payload read back.
    stored = {row["id"]: row for row in message_payloads(Message.objects.all())}
    messages = [event for _, event in published.calls if event["kind"] == "message"]
    assert [(event["stream"], event["seq"]) for event in messages] == [
        (ops.id.hex, 1),
        ("", 1),  # the resend, announced again once
        (ops.id.hex, 2),
        ("", 2),
    ]
    for event in messages:
        payload = orjson.loads(event["frame"])["message"]
        assert payload == stored[payload["id"]]
    for outcome in (first, ops_second, lobby_second):
        assert outcome.payload == stored[str(outcome.message_id)]
        assert (outcome.message.id, outcome.message.seq) == (outcome.message_id, outcome.seq)
    # Each sender's read position moved to their own last message (alice: ops 1, lobby 2; bob: ops 2).
    assert Membership.objects.get(user=alice, channel=ops).last_read_seq == 1
    assert Membership.objects.get(user=bob, channel=ops).last_read_seq == 2
    assert LobbyRead.objects.get(user=alice).last_read_seq == 2


def _socket_batch(members: list, channels: list, size: int, tag: str) -> list[SendRequest]:
    """``size`` messages as sockets send them: by channel id, each with a client_id, some
    mentioning another member, some replying, some to the lobby."""
    requests = []
    for n in range(size):
        user, channel = members[n % len(members)], channels[n % len(channels)]
        other = members[(n + 1) % len(members)]
        if n % 3 == 2:
            requests.append(SendRequest(user, None, f"lobby {n} @{other.username}", f"{tag}{n}"))
        else:
            requests.append(
                SendRequest(user, channel.name, f"{n} @{other.username}", f"{tag}{n}", channel_id=channel.id)
            )
    return requests


@pytest.mark.parametrize("by_name", [False, True], ids=["by id", "by name"])
def test_the_queries_of_a_batch_do_not_grow_with_its_size(make_user, by_name):
    members = [make_user() for _ in range(6)]
    channels = [channel_services.channel_create(user=members[0], name=f"c{n}") for n in range(2)]
    for member in members[1:]:
        for channel in channels:
            channel_services.channel_join(user=member, name=channel.name)

    def queries(size: int, tag: str) -> list[str]:
        requests = _socket_batch(members, channels, size, tag)
        if by_name:
            requests = [SendRequest(r.user, r.channel_name, r.content, r.client_id) for r in requests]
        with CaptureQueriesContext(connection) as captured:
            outcomes = message_send_batch(requests=requests)
        assert all(isinstance(o, SendResult) and o.created for o in outcomes)
        return [query["sql"].split(" ")[0] for query in captured.captured_queries]

    queries(3, "warm")
    few, many = queries(3, "few"), queries(60, "many")
    assert few == many
    assert len(many) <= 12, many  # the savepoint of the test's transaction included
    assert Message.objects.filter(client_id__startswith="many").count() == 60
    assert Mention.objects.filter(message__client_id__startswith="many").count() == 60
    # Resends of the whole batch take a few queries too, and store nothing.
    with CaptureQueriesContext(connection) as captured:
        outcomes = message_send_batch(requests=_socket_batch(members, channels, 60, "many"))
    assert all(isinstance(o, SendResult) and not o.created for o in outcomes)
    assert len(captured.captured_queries) <= 10, captured.captured_queries
    assert Message.objects.filter(client_id__startswith="many").count() == 60


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_store_each_client_id_once_without_gaps_or_deadlocks(make_user):
    """Batches of several processes at once (threads here, each with its own connection): the
    same messages resent in each, over two streams taken in opposite orders."""
    if connection.vendor != "postgresql":
        pytest.skip("real concurrent writers need PostgreSQL (the SQLite test database is in memory)")
    alice, bob = make_user("alice"), make_user("bob")
    ops = channel_services.channel_create(user=alice, name="ops")
    channel_services.channel_join(user=bob, name="ops")
    writers, rounds = 8, 5
    barrier = threading.Barrier(writers)
    outcomes: list[list] = []
    errors: list[BaseException] = []

    def write(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            for round_ in range(rounds):
                requests = [
                    SendRequest(alice, "ops", "same", "same-ops", channel_id=ops.id),
                    SendRequest(alice, None, "same", "same-lobby"),
                    SendRequest(bob, "ops", "own", f"own-{index}-{round_}", channel_id=ops.id),
                    SendRequest(bob, None, "own", f"lobby-{index}-{round_}"),
                ]
                outcomes.append(message_send_batch(requests=requests if index % 2 else requests[::-1]))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    results = [result for batch in outcomes for result in batch]
    assert all(isinstance(result, SendResult) for result in results)
    for client_id in ("same-ops", "same-lobby"):
        answers = [result for result in results if result.client_id == client_id]
        assert len({result.message_id for result in answers}) == 1
        assert sum(result.created for result in answers) == 1
    for channel in (ops, None):
        seqs = sorted(Message.objects.filter(channel=channel).values_list("seq", flat=True))
        assert seqs == list(range(1, writers * rounds + 2))
    counters = dict(StreamSequence.objects.values_list("stream", "last_seq"))
    assert counters[""] == counters[ops.id.hex] == writers * rounds + 1
