"""Read state over REST: POST /api/read, counts in GET /api/channels/me, posting moves the sender."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from chatrooms import services as channel_services
from chatrooms.models import Channel, Membership
from messaging import changes, reads
from messaging.models import LobbyRead, Message
from messaging.positions import positions_take
from messaging.services import message_send
from realtime import frames
from realtime.envelopes import KIND_FRAME
from realtime.groups import channel_stream, user_group
from tests.conftest import envelope

pytestmark = pytest.mark.django_db


def post(user, channel, content: str) -> int:
    return message_send(user=user, channel_name=channel, content=content).message.seq


def read(client, channel, seq):
    return client.post("/api/read", {"channel": channel, "seq": seq}, format="json")


@pytest.fixture
def ops(alice, bob):
    """A channel owned by alice that bob is in too."""
    channel_services.channel_create(user=alice, name="Ops")
    channel_services.channel_join(user=bob, name="ops")
    return "Ops"


def test_read_clamps_to_the_last_position_and_never_moves_back(alice, bob, auth_client):
    for n in range(3):
        post(bob, None, f"m{n}")
    client = auth_client(alice)
    response = read(client, None, 100)
    assert response.status_code == 200
    assert response.json() == {"channel": None, "last_read_seq": 3, "unread": 0, "mentions": 0}
    response = read(client, None, 1)
    assert response.status_code == 200
    assert response.json() == {"channel": None, "last_read_seq": 3, "unread": 0, "mentions": 0}
    assert LobbyRead.objects.get(user=alice).last_read_seq == 3


def test_read_a_channel_answers_its_stored_name_and_counts(alice, bob, ops, auth_client):
    first = post(bob, "ops", "one")
    post(bob, "ops", "two @alice")
    post(bob, "ops", "three")
    response = read(auth_client(alice), "OPS", first)
    assert response.status_code == 200
    assert response.json() == {"channel": "Ops", "last_read_seq": first, "unread": 2, "mentions": 1}
    assert Membership.objects.get(user=alice, channel__name="Ops").last_read_seq == first


def test_read_refusals(alice, bob, auth_client, make_user):
    channel_services.channel_create(user=bob, name="bobs")
    client = auth_client(alice)
    response = read(client, "bobs", 1)
    assert response.status_code == 403 and response.json() == {
        "detail": "You are not a member of this channel."
    }
    response = read(client, "nowhere", 1)
    assert response.status_code == 404 and "detail" in response.json()
    for bad in (True, False, "3", -1, 1.5, None, [1], {"n": 1}):
        response = read(client, None, bad)
        assert response.status_code == 400, bad
        assert "seq" in response.json()
    assert client.post("/api/read", {"seq": 1}, format="json").status_code == 400  # channel is required
    assert client.post("/api/read", {"channel": None}, format="json").status_code == 400
    assert client.post("/api/read", "[[[[", content_type="application/json").status_code == 400


def test_unread_excludes_own_and_deleted_messages_and_counts_mentions(alice, bob, ops, auth_client):
    post(alice, "ops", "mine")  # alice's own post moves her position to it
    kept = post(bob, "ops", "hello @alice")
    gone = message_send(user=bob, channel_name="ops", content="bye @alice").message
    post(bob, "ops", "plain")
    changes.message_delete(user=bob, message_id=str(gone.id))
    items = auth_client(alice).get("/api/channels/me").json()["results"]
    assert [(i["name"], i["last_read_seq"], i["unread"], i["mentions"]) for i in items] == [("Ops", 1, 2, 1)]
    # Reading up to the kept mention leaves the plain message.
    response = read(auth_client(alice), "ops", kept)
    assert response.json() == {"channel": "Ops", "last_read_seq": kept, "unread": 1, "mentions": 0}


def test_an_edit_or_reaction_makes_nothing_unread(alice, bob, ops, auth_client):
    message = message_send(user=bob, channel_name="ops", content="hi").message
    client = auth_client(alice)
    read(client, "ops", 1_000)
    changes.message_edit(user=bob, message_id=str(message.id), content="hi @alice")
    changes.reaction_add(user=bob, message_id=str(message.id), emoji="👍")
    item = client.get("/api/channels/me").json()["results"][0]
    assert (item["last_read_seq"], item["unread"], item["mentions"]) == (1, 0, 0)


def test_a_read_is_one_write_and_is_told_to_the_user_only_when_it_moves(alice, bob, ops, published):
    post(bob, "ops", "one")
    post(bob, "ops", "two")
    with CaptureQueriesContext(connection) as queries, published.capture():
        result = reads.read_mark(user=alice, channel_name="ops", seq=2)
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))]
    assert len(writes) == 1 and "last_read_seq" in writes[0]
    frame = frames.encode({"type": "read", "channel": "Ops", "last_read_seq": 2, "unread": 0, "mentions": 0})
    assert published.calls == [(user_group(alice.id), envelope(KIND_FRAME, frame=frame))]
    assert result.state.last_read_seq == 2
    published.calls.clear()
    with published.capture():
        reads.read_mark(user=alice, channel_name="ops", seq=2)
        reads.read_mark(user=alice, channel_name="ops", seq=1)
    assert published.calls == []


def test_posting_moves_the_senders_position(alice, bob, ops, auth_client):
    post(bob, "ops", "one")
    response = auth_client(alice).post("/api/messages", {"channel": "ops", "content": "two"}, format="json")
    assert response.status_code == 201
    assert Membership.objects.get(user=alice, channel__name="Ops").last_read_seq == response.json()["seq"]
    assert Membership.objects.get(user=bob, channel__name="Ops").last_read_seq == 1
    response = auth_client(alice).post("/api/messages", {"channel": None, "content": "lobby"}, format="json")
    assert LobbyRead.objects.get(user=alice).last_read_seq == response.json()["seq"]


def test_every_new_user_starts_with_nothing_unread(alice, bob, api):
    for n in range(3):
        post(bob, None, f"m{n}")
    created = User.objects.create_user(
        username="carol", email="carol@example.com", password="x"
    )  # admin-like
    assert LobbyRead.objects.get(user=created).last_read_seq == 3
    response = api.post(
        "/api/auth/register",
        {"username": "dave", "email": "dave@example.com", "password": "correct-Horse-battery-9"},
        format="json",
    )
    assert response.status_code == 201
    dave = User.objects.get(username="dave")
    assert reads.read_states(user_id=dave.id)[None].unread == 0
    # A user without a row (created before read state) has read nothing.
    LobbyRead.objects.filter(user=alice).delete()
    state = reads.read_states(user_id=alice.id)[None]
    assert (state.last_read_seq, state.unread, state.last_seq) == (0, 3, 3)
    assert reads.read_mark(user=alice, channel_name=None, seq=2).state.unread == 1
    assert LobbyRead.objects.get(user=alice).last_read_seq == 2


def test_channels_me_counts_take_one_query_for_the_page(alice, bob, auth_client):
    for n in range(5):
        channel_services.channel_create(user=bob, name=f"room{n}")
        channel_services.channel_join(user=alice, name=f"room{n}")
        post(bob, f"room{n}", f"hi @alice {n}")
    client = auth_client(alice)
    with CaptureQueriesContext(connection) as few:
        assert len(client.get("/api/channels/me?limit=1").json()["results"]) == 1
    with CaptureQueriesContext(connection) as many:
        items = client.get("/api/channels/me").json()["results"]
    assert len(many) == len(few)
    assert [(i["unread"], i["mentions"]) for i in items] == [(1, 1)] * 5


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


def _fill(stream_channel, author, count: int) -> None:
    """``count`` messages in one stream, written in bulk (positions taken as one block)."""
    with transaction.atomic():
        last = positions_take(channel_stream(stream_channel.id if stream_channel else None), count)
        Message.objects.bulk_create(
            Message(seq=seq, rev=seq, channel=stream_channel, user=author, content=f"m{seq}")
            for seq in range(last - count + 1, last + 1)
        )


def test_the_counts_query_walks_the_channel_seq_index(alice, bob, ops):
    channel = Channel.objects.get(name="Ops")
    _fill(channel, bob, 500)
    _fill(None, bob, 500)
    Membership.objects.filter(user=alice).update(last_read_seq=490)
    LobbyRead.objects.filter(user=alice).update(last_read_seq=490)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    captured: list[tuple[str, list]] = []

    def keep(execute, sql, params, many, context):
        captured.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        states = reads.read_states(user_id=alice.id)
    assert len(captured) == 1  # every channel and the lobby in one statement
    assert (states[channel.id].unread, states[None].unread) == (10, 10)
    plan = _plan(*captured[0])
    # A channel's unread rows and the lobby's are both found through an index on (channel, seq).
    assert "messaging_by_stream_seq" in plan or "messaging_channel_seq" in plan, plan
    assert "messaging_lobby_seq" in plan or plan.count("messaging_by_stream_seq") >= 2, plan
    assert "messaging_by_stream_rev" not in plan, plan
    print(plan)


def test_seeded_users_start_at_the_lobbys_position(bob):
    from messaging import seeding

    for n in range(2):
        post(bob, None, f"m{n}")
    seeding.seed_chat(
        users=3, channels=0, members_per_channel=0, messages=0, prefix="rs", password="pw-Secret-123"
    )
    seeded = User.objects.filter(username__startswith="rs_")
    assert sorted(LobbyRead.objects.filter(user__in=seeded).values_list("last_read_seq", flat=True)) == [
        2,
        2,
        2,
    ]


@pytest.mark.parametrize("mention_first_max", [500, 0], ids=["from-mentions", "from-messages"])
def test_counts_are_the_same_from_the_users_mentions_or_from_the_unread_messages(
    alice, bob, ops, monkeypatch, mention_first_max
):
    """Mentions are counted from the user's mentions while they are few, else from the unread
    messages: both give what reading every message would."""
    monkeypatch.setattr(reads, "MENTION_FIRST_MAX", mention_first_max)
    channel_services.channel_create(user=bob, name="Dev")
    channel_services.channel_join(user=alice, name="dev")
    for stream in (None, "ops", "dev"):
        post(bob, stream, f"before @alice in {stream}")
    Membership.objects.filter(user=alice).update(last_read_seq=1)
    LobbyRead.objects.filter(user=alice).update(last_read_seq=1)
    for stream in (None, "ops", "dev"):
        post(bob, stream, f"hi @alice in {stream}")
        post(bob, stream, "no mention")
        gone = message_send(user=bob, channel_name=stream, content="bye @alice").message
        changes.message_delete(user=bob, message_id=str(gone.id))
    post(alice, "dev", "her own, @alice")  # moves her position in dev to it
    post(bob, "dev", "after hers @alice")

    states = reads.read_states(user_id=alice.id)
    dev, ops_channel = Channel.objects.get(name="Dev"), Channel.objects.get(name="Ops")
    counts = {key: (state.unread, state.mentions) for key, state in states.items()}
    expected = {}
    for key, channel in ((None, None), (ops_channel.id, ops_channel), (dev.id, dev)):
        above = states[key].last_read_seq
        rows = Message.objects.filter(channel=channel, seq__gt=above, deleted=False).exclude(user=alice)
        expected[key] = (rows.count(), rows.filter(mention_rows__user=alice).count())
    assert counts == expected
    assert counts[None] == counts[ops_channel.id] == (2, 1)
    assert counts[dev.id] == (1, 1)
