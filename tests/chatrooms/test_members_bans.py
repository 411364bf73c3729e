"""Members added and removed, bans, and deleting by staff: every status the contract lists,
the frames each announces (as envelopes), and the audit records of moderation."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection

from accounts.models import AuditRecord
from chatrooms import bans, direct, services
from chatrooms.models import Ban, Channel, Membership
from messaging.services import message_send
from realtime.groups import channel_group, user_group

pytestmark = pytest.mark.django_db

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def staff(make_user):
    user = make_user("mod")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def room(alice, bob):
    """alice owns public ``room``; bob is a member."""
    services.channel_create(user=alice, name="room")
    services.channel_join(user=bob, name="room")
    return Channel.objects.get(name="room")


def members(channel) -> set[str]:
    return set(Membership.objects.filter(channel=channel).values_list("user__username", flat=True))


def audits() -> list[tuple[str, str, str, str]]:
    return list(AuditRecord.objects.order_by("created_at").values_list("actor", "action", "target", "detail"))


# --- adding members ------------------------------------------------------------------


def test_a_member_adds_a_user(room, bob, make_user, auth_client, published):
    carol = make_user("carol")
    with published.capture():
        response = auth_client(bob).post("/api/channels/room/members", {"username": "CAROL"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "room" and response.json()["member_count"] == 3
    assert members(room) == {"alice", "bob", "carol"}
    groups = [group for group, _ in published.calls]
    assert groups == [user_group(carol.id), channel_group(room.id)]
    subscribe = published.calls[0][1]
    assert subscribe["kind"] == "subscribe" and subscribe["channel"] == "room"


def test_adding_a_member_again_changes_nothing(room, alice, auth_client, published):
    with published.capture():
        response = auth_client(alice).post("/api/channels/room/members", {"username": "bob"}, format="json")
    assert response.status_code == 200
    assert published.calls == []


def test_new_members_read_position_is_the_channels_position(room, alice, make_user):
    for text in ("one", "two", "three"):
        message_send(user=alice, channel_name="room", content=text)
    carol, dave = make_user("carol"), make_user("dave")
    services.member_add(actor=alice, name="room", username="carol")
    services.channel_join(user=dave, name="room")
    assert Membership.objects.get(channel=room, user=carol).last_read_seq == 3
    assert Membership.objects.get(channel=room, user=dave).last_read_seq == 3


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "nobody"}, 404),
        ({"username": "sleeper"}, 404),
        ({}, 400),
        ({"username": ["bob"]}, 400),
        ({"username": None}, 400),
    ],
)
def test_adding_unknown_inactive_or_malformed(room, alice, make_user, auth_client, body, status):
    sleeper = make_user("sleeper")
    sleeper.is_active = False
    sleeper.save(update_fields=["is_active"])
    response = auth_client(alice).post("/api/channels/room/members", body, format="json")
    assert response.status_code == status
    assert members(room) == {"alice", "bob"}


def test_a_non_member_cannot_add_to_a_public_channel(room, make_user, auth_client):
    carol, dave = make_user("carol"), make_user("dave")
    response = auth_client(carol).post("/api/channels/room/members", {"username": "dave"}, format="json")
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert dave.memberships.count() == 0


def test_a_member_adds_to_a_private_channel(alice, bob, make_user, auth_client):
    services.channel_create(user=alice, name="den", private=True)
    make_user("carol")
    assert (
        auth_client(alice).post("/api/channels/den/members", {"username": "bob"}, format="json").status_code
        == 200
    )
    response = auth_client(bob).post("/api/channels/den/members", {"username": "carol"}, format="json")
    assert response.status_code == 200
    assert response.json()["kind"] == "private"


# --- removing members ----------------------------------------------------------------


def test_the_owner_removes_a_member_audited(room, alice, bob, auth_client, published):
    with published.capture():
        response = auth_client(alice).delete("/api/channels/room/members/BOB")
    assert response.status_code == 204
    assert members(room) == {"alice"}
    assert [group for group, _ in published.calls] == [channel_group(room.id), user_group(bob.id)]
    assert published.calls[1][1]["kind"] == "unsubscribe"
    assert audits() == [("alice", "member_removed", "user bob in channel room", "")]


def test_staff_remove_a_member_audited(room, staff, auth_client):
    assert auth_client(staff).delete("/api/channels/room/members/bob").status_code == 204
    assert audits() == [("mod", "member_removed", "user bob in channel room", "")]


def test_a_member_removes_themselves_like_leaving_not_audited(room, bob, auth_client):
    assert auth_client(bob).delete("/api/channels/room/members/bob").status_code == 204
    assert members(room) == {"alice"}
    assert audits() == []
    response = auth_client(bob).delete("/api/channels/room/members/bob")
    assert response.status_code == 400  # as leaving a channel you are not in


def test_removal_refusals(room, alice, bob, make_user, auth_client, published):
    carol = make_user("carol")
    services.channel_join(user=carol, name="room")
    with published.capture():
        assert auth_client(bob).delete("/api/channels/room/members/carol").status_code == 403
        response = auth_client(alice).delete("/api/channels/room/members/alice")
        assert response.status_code == 400
        assert set(response.json()) == {"detail"}
        assert auth_client(alice).delete("/api/channels/room/members/nobody").status_code == 404
    assert published.calls == []
    assert members(room) == {"alice", "bob", "carol"}


def test_removing_a_non_member_changes_nothing(room, alice, make_user, auth_client, published):
    make_user("carol")
    with published.capture():
        assert auth_client(alice).delete("/api/channels/room/members/carol").status_code == 204
    assert published.calls == []
    assert audits() == []


# --- bans -----------------------------------------------------------------------------


def test_ban_removes_and_keeps_out(room, alice, bob, auth_client, published):
    client = auth_client(alice)
    with published.capture():
        response = client.post(
            "/api/channels/room/bans", {"username": "BOB", "reason": "spam"}, format="json"
        )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"username", "reason", "banned_by", "created_at"}
    assert body["username"] == "bob" and body["reason"] == "spam" and body["banned_by"] == "alice"
    assert TIMESTAMP.match(body["created_at"])
    assert members(room) == {"alice"}
    assert [group for group, _ in published.calls] == [channel_group(room.id), user_group(bob.id)]
    assert audits() == [("alice", "user_banned", "user bob in channel room", "spam")]
    # Banned: join and add are 403.
    assert auth_client(bob).post("/api/channels/room/join").status_code == 403
    response = client.post("/api/channels/room/members", {"username": "bob"}, format="json")
    assert response.status_code == 403
    assert members(room) == {"alice"}
    # Again: 200 with the existing ban, unchanged.
    again = client.post("/api/channels/room/bans", {"username": "bob", "reason": "other"}, format="json")
    assert again.status_code == 200
    assert again.json() == body
    assert Ban.objects.count() == 1
    # Lifted: 204, audited, and bob may come back.
    assert client.delete("/api/channels/room/bans/Bob").status_code == 204
    assert client.delete("/api/channels/room/bans/bob").status_code == 404
    assert audits()[-1] == ("alice", "user_unbanned", "user bob in channel room", "spam")
    assert auth_client(bob).post("/api/channels/room/join").status_code == 200


def test_ban_of_a_non_member_and_default_reason(room, alice, make_user, auth_client, published):
    make_user("carol")
    with published.capture():
        response = auth_client(alice).post("/api/channels/room/bans", {"username": "carol"}, format="json")
    assert response.status_code == 201
    assert response.json()["reason"] == ""
    assert published.calls == []


def test_ban_refusals(room, alice, bob, make_user, auth_client):
    make_user("carol")
    member = auth_client(bob)
    assert member.post("/api/channels/room/bans", {"username": "carol"}, format="json").status_code == 403
    assert member.get("/api/channels/room/bans").status_code == 403
    assert member.delete("/api/channels/room/bans/carol").status_code == 403
    owner = auth_client(alice)
    response = owner.post("/api/channels/room/bans", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"detail"}
    assert owner.post("/api/channels/room/bans", {"username": "nobody"}, format="json").status_code == 404
    assert owner.post("/api/channels/room/bans", {}, format="json").status_code == 400
    response = owner.post(
        "/api/channels/room/bans", {"username": "carol", "reason": "r" * 501}, format="json"
    )
    assert response.status_code == 400
    assert "reason" in response.json()
    assert owner.delete("/api/channels/room/bans/nobody").status_code == 404
    assert Ban.objects.count() == 0


def test_staff_ban_and_list(room, staff, make_user, auth_client):
    for name in ["Zed", "amy", "Bea"]:
        make_user(name)
        bans.ban_add(actor=staff, name="room", username=name, reason=f"because {name}")
    client = auth_client(staff)
    response = client.get("/api/channels/room/bans")
    assert response.status_code == 200
    assert [b["username"] for b in response.json()["results"]] == ["amy", "Bea", "Zed"]
    assert response.json()["results"][0]["banned_by"] == "mod"
    first = client.get("/api/channels/room/bans?limit=2")
    assert [b["username"] for b in first.json()["results"]] == ["amy", "Bea"]
    second = client.get(first.json()["next"])
    assert [b["username"] for b in second.json()["results"]] == ["Zed"]
    assert client.get("/api/channels/room/bans?limit=0").status_code == 400
    assert {a[1] for a in audits()} == {"user_banned"}


# --- deleting ------------------------------------------------------------------------


def test_staff_delete_audited_owner_not(room, alice, staff, auth_client, make_user):
    assert auth_client(staff).delete("/api/channels/room").status_code == 204
    assert audits() == [("mod", "channel_deleted", "channel room", "")]
    services.channel_create(user=alice, name="other")
    assert auth_client(alice).delete("/api/channels/other").status_code == 204
    assert len(audits()) == 1
    services.channel_create(user=alice, name="third")
    assert auth_client(make_user("carol")).delete("/api/channels/third").status_code == 403


def test_staff_cannot_reach_a_private_channel_they_are_not_in(alice, staff, auth_client):
    services.channel_create(user=alice, name="den", private=True)
    assert auth_client(staff).delete("/api/channels/den").status_code == 404
    assert Channel.objects.filter(name="den").exists()


# --- direct channels refuse membership changes ------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/channels/@alice+bob/join", None),
        ("post", "/api/channels/@alice+bob/leave", None),
        ("delete", "/api/channels/@alice+bob", None),
        ("post", "/api/channels/@alice+bob/members", {"username": "carol"}),
        ("delete", "/api/channels/@alice+bob/members/bob", None),
        ("delete", "/api/channels/@alice+bob/members/alice", None),
        ("post", "/api/channels/@alice+bob/bans", {"username": "bob"}),
        ("get", "/api/channels/@alice+bob/bans", None),
        ("delete", "/api/channels/@alice+bob/bans/bob", None),
    ],
)
def test_direct_channels_refuse_membership_changes(
    alice, bob, make_user, staff, auth_client, method, path, body
):
    make_user("carol")
    direct.direct_open(user=alice, username="bob")
    response = getattr(auth_client(alice), method)(path, body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"detail"}
    assert members(Channel.objects.get()) == {"alice", "bob"}
    assert Channel.objects.count() == 1
    # Staff who are not in it cannot see it at all.
    assert getattr(auth_client(staff), method)(path, body, format="json").status_code == 404


def _at_once(*calls) -> list[int]:
    """Run each call in its own thread (its own database connection), released together; their statuses."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int | None] = [None] * len(calls)

    def act(index, call):
        try:
            barrier.wait(timeout=10)
            statuses[index] = call().status_code
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=pair) for pair in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


@pytest.mark.django_db(transaction=True)
def test_a_ban_racing_a_join_leaves_no_banned_member(make_user, auth_client):
    if connection.vendor != "postgresql":
        pytest.skip("real concurrent writers need PostgreSQL (the SQLite test database is in memory)")
    owner, joiner = make_user("owner"), make_user("joiner")
    services.channel_create(user=owner, name="race")
    owner_client, joiner_client = auth_client(owner), auth_client(joiner)
    for _round in range(5):
        ban, join = _at_once(
            lambda: owner_client.post("/api/channels/race/bans", {"username": "joiner"}, format="json"),
            lambda: joiner_client.post("/api/channels/race/join"),
        )
        assert ban == 201
        assert join in (200, 403)
        assert not Membership.objects.filter(channel__name="race", user=joiner).exists()
        assert owner_client.delete("/api/channels/race/bans/joiner").status_code == 204
