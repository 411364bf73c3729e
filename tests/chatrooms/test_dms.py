"""Direct channels: ``POST /api/dms/{username}``, their names, members and subscriptions,
and concurrent opens from both sides making one channel."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from chatrooms import direct
from chatrooms.models import Channel, Membership
from messaging.services import message_send
from realtime.groups import user_group

CHANNEL_KEYS = {"id", "name", "description", "kind", "owner", "member_count", "created_at"}


@pytest.mark.django_db
def test_open_then_again_from_both_sides(alice, bob, auth_client, published):
    with published.capture():
        first = auth_client(alice).post("/api/dms/BOB")
    assert first.status_code == 201
    body = first.json()
    assert set(body) == CHANNEL_KEYS
    assert body["name"] == "@alice+bob"
    assert body["kind"] == "direct" and body["owner"] is None
    assert body["member_count"] == 2 and body["description"] == ""
    channel = Channel.objects.get()
    assert channel.direct_pair == ":".join(sorted([alice.id.hex, bob.id.hex]))
    assert set(Membership.objects.values_list("user__username", "last_read_seq")) == {
        ("alice", 0),
        ("bob", 0),
    }
    assert sorted(group for group, _ in published.calls) == sorted([user_group(alice.id), user_group(bob.id)])
    assert {event["kind"] for _, event in published.calls} == {"subscribe"}
    published.calls.clear()
    with published.capture():
        again = auth_client(bob).post("/api/dms/alice/")
        mine = auth_client(alice).post("/api/dms/bob")
    assert again.status_code == 200 and mine.status_code == 200
    assert again.json() == body and mine.json() == body
    assert published.calls == []
    assert Channel.objects.count() == 1


@pytest.mark.django_db
def test_name_sorts_stored_usernames_ignoring_case(make_user, auth_client):
    zoe, adam = make_user("Zoe"), make_user("adam")
    assert auth_client(zoe).post("/api/dms/ADAM").json()["name"] == "@adam+Zoe"
    assert auth_client(adam).get("/api/channels/@ADAM+zoe").json()["members"] == ["adam", "Zoe"]


@pytest.mark.django_db
def test_notes_to_self(alice, auth_client, published):
    with published.capture():
        response = auth_client(alice).post("/api/dms/alice")
    assert response.status_code == 201
    assert response.json()["name"] == "@alice+alice" and response.json()["member_count"] == 1
    assert [group for group, _ in published.calls] == [user_group(alice.id)]
    assert Channel.objects.get().direct_pair == f"{alice.id.hex}:{alice.id.hex}"
    assert auth_client(alice).post("/api/dms/ALICE").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["nobody", "sleeper", "a", "x" * 40, "bad name", "%00"])
def test_unknown_or_inactive_user_is_404(alice, make_user, auth_client, username):
    sleeper = make_user("sleeper")
    sleeper.is_active = False
    sleeper.save(update_fields=["is_active"])
    response = auth_client(alice).post(f"/api/dms/{username}")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}
    assert not Channel.objects.exists()


@pytest.mark.django_db
def test_needs_a_token(alice, api):
    assert api.post("/api/dms/alice").status_code == 401


@pytest.mark.django_db
def test_only_its_two_users_read_it(alice, bob, make_user, auth_client):
    carol = make_user("carol")
    direct.direct_open(user=alice, username="bob")
    message_send(user=alice, channel_name="@alice+bob", content="just us")
    assert [
        m["content"] for m in auth_client(bob).get("/api/messages?channel=%40alice%2Bbob").json()["results"]
    ] == ["just us"]
    assert "just us" not in str(auth_client(carol).get("/api/messages").json())
    assert auth_client(carol).get("/api/messages?channel=%40alice%2Bbob").status_code == 404
    mine = auth_client(bob).get("/api/channels/me").json()["results"]
    assert [c["name"] for c in mine] == ["@alice+bob"]


@pytest.mark.django_db
def test_a_lost_race_answers_the_winners_channel(alice, bob, monkeypatch):
    """The other side created it between our look-up and our insert: 200 with theirs (the unique pair)."""
    theirs, created = direct.direct_open(user=bob, username="alice")
    assert created
    real = direct._direct_channel
    calls = []

    def missed_first(pair):
        calls.append(pair)
        return None if len(calls) == 1 else real(pair)

    monkeypatch.setattr(direct, "_direct_channel", missed_first)
    channel, created = direct.direct_open(user=alice, username="bob")
    assert not created
    assert channel.id == theirs.id
    assert len(calls) == 2
    assert Channel.objects.count() == 1
    assert Membership.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_opens_from_both_sides_make_one_channel(make_user, auth_client):
    if connection.vendor != "postgresql":
        pytest.skip("real concurrent writers need PostgreSQL (the SQLite test database is in memory)")
    ada, bob = make_user("ada"), make_user("bob")
    clients = [(auth_client(ada), "bob"), (auth_client(bob), "ada")] * 4
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []
    ids: set[str] = set()
    errors: list[BaseException] = []

    def open_it(client, other):
        try:
            barrier.wait(timeout=10)
            response = client.post(f"/api/dms/{other}")
            statuses.append(response.status_code)
            ids.add(response.json()["id"])
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=open_it, args=pair) for pair in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(statuses) == [200] * (len(clients) - 1) + [201]
    assert len(ids) == 1
    assert Channel.objects.count() == 1
    assert Membership.objects.count() == 2
