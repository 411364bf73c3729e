"""CHAT_CHANNEL_CREATE_RATE and CHAT_MEMBERSHIP_RATE over REST: 429 with Retry-After and
{"detail"} past them, per user; what counts and what does not."""

from __future__ import annotations

import pytest

from chatrooms import services
from chatrooms.models import Channel, Membership

pytestmark = pytest.mark.django_db


def assert_limited(response, *, most: int) -> None:
    assert response.status_code == 429, response.content
    assert set(response.json()) == {"detail"}
    assert "try again" in response.json()["detail"]
    assert 1 <= int(response["Retry-After"]) <= most


def test_channel_creation_past_the_rate_is_429(alice, bob, auth_client, rates):
    rates(CHAT_CHANNEL_CREATE_RATE="2/h")
    client = auth_client(alice)
    assert client.post("/api/channels/", {"name": "one"}, format="json").status_code == 201
    assert client.post("/api/channels/", {"name": "two", "private": True}, format="json").status_code == 201
    refused = client.post("/api/channels/", {"name": "three"}, format="json")
    assert_limited(refused, most=3600)
    assert not Channel.objects.filter(name="three").exists()
    # Per user: bob has his own allowance.
    assert auth_client(bob).post("/api/channels/", {"name": "three"}, format="json").status_code == 201


def test_an_attempt_counts_even_when_the_name_is_taken_but_not_when_it_is_malformed(
    alice, bob, auth_client, rates
):
    rates(CHAT_CHANNEL_CREATE_RATE="2/h")
    services.channel_create(user=bob, name="taken")
    client = auth_client(alice)
    for _ in range(3):  # malformed: refused before counting
        assert client.post("/api/channels/", {"name": "no spaces"}, format="json").status_code == 400
    assert client.post("/api/channels/", {"name": "taken"}, format="json").status_code == 400
    assert client.post("/api/channels/", {"name": "mine"}, format="json").status_code == 201
    assert_limited(client.post("/api/channels/", {"name": "other"}, format="json"), most=3600)


def test_new_direct_channels_count_and_reopening_is_free(alice, bob, make_user, auth_client, rates):
    rates(CHAT_CHANNEL_CREATE_RATE="2/h")
    carol, dave = make_user("carol"), make_user("dave")
    client = auth_client(alice)
    assert client.post("/api/dms/bob").status_code == 201
    assert client.post("/api/channels/", {"name": "room"}, format="json").status_code == 201
    for _ in range(5):  # reopening an existing one costs nothing
        assert client.post("/api/dms/bob").status_code == 200
    assert auth_client(carol).post("/api/dms/alice").status_code == 201  # counted for carol
    assert client.post("/api/dms/carol").status_code == 200  # already open: free for alice too
    assert_limited(client.post("/api/dms/dave"), most=3600)
    assert not Channel.objects.filter(name="@alice+dave").exists()
    assert auth_client(dave).post("/api/dms/alice").status_code == 201


def test_joins_and_leaves_share_the_membership_rate(alice, bob, auth_client, rates):
    services.channel_create(user=bob, name="room")
    rates(CHAT_MEMBERSHIP_RATE="3/m")
    client = auth_client(alice)
    assert client.post("/api/channels/room/join").status_code == 200
    assert client.post("/api/channels/room/leave").status_code == 200
    assert client.post("/api/channels/nowhere/join").status_code == 404  # an attempt counts
    assert_limited(client.post("/api/channels/room/join"), most=60)
    assert not Membership.objects.filter(user=alice, channel__name="room").exists()
    # Another user's joins are their own.
    assert (
        auth_client(bob).post("/api/channels/room/members", {"username": "alice"}, format="json").status_code
        == 200
    )


def test_member_adds_removals_and_bans_count_for_the_actor(alice, bob, make_user, auth_client, rates):
    carol = make_user("carol")
    services.channel_create(user=alice, name="room")
    rates(CHAT_MEMBERSHIP_RATE="4/m")
    client = auth_client(alice)
    assert client.post("/api/channels/room/members", {"username": "bob"}, format="json").status_code == 200
    assert client.delete("/api/channels/room/members/bob").status_code == 204
    assert client.post("/api/channels/room/bans", {"username": "carol"}, format="json").status_code == 201
    assert client.delete("/api/channels/room/bans/carol").status_code == 204
    for refused in (
        client.post("/api/channels/room/members", {"username": "bob"}, format="json"),
        client.delete("/api/channels/room/members/bob"),
        client.post("/api/channels/room/bans", {"username": "carol"}, format="json"),
        client.delete("/api/channels/room/bans/carol"),
    ):
        assert_limited(refused, most=60)
    assert not Membership.objects.filter(user=bob, channel__name="room").exists()
    assert carol.id  # carol's own joins are not alice's
    assert auth_client(carol).post("/api/channels/room/join").status_code == 200


def test_the_window_ends(alice, bob, auth_client, rates, monkeypatch):
    now = [5000.0]
    monkeypatch.setattr("core.userlimits.time.monotonic", lambda: now[0])
    services.channel_create(user=bob, name="room")
    rates(CHAT_MEMBERSHIP_RATE="1/m")
    client = auth_client(alice)
    assert client.post("/api/channels/room/join").status_code == 200
    now[0] += 59
    assert_limited(client.post("/api/channels/room/leave"), most=1)
    now[0] += 1
    assert client.post("/api/channels/room/leave").status_code == 200
