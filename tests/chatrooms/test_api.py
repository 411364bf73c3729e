"""Channel routes: every success and every refusal the contract names."""

from __future__ import annotations

import re

import pytest
from rest_framework.test import APIClient

from chatrooms import services
from chatrooms.models import Channel
from messaging.models import Message
from messaging.services import message_send

pytestmark = pytest.mark.django_db

CHANNEL_KEYS = {"id", "name", "description", "kind", "owner", "member_count", "created_at"}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def names(response) -> list[str]:
    return [channel["name"] for channel in response.json()["results"]]


def test_create(alice, auth_client):
    response = auth_client(alice).post(
        "/api/channels/", {"name": "General", "description": "talk"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == CHANNEL_KEYS
    channel = Channel.objects.get()
    assert body["id"] == str(channel.id)
    assert body["name"] == "General"
    assert body["description"] == "talk"
    assert body["owner"] == "alice"
    assert body["member_count"] == 1
    assert TIMESTAMP.match(body["created_at"])


def test_create_without_slash_and_default_description(alice, auth_client):
    response = auth_client(alice).post("/api/channels", {"name": "x"}, format="json")
    assert response.status_code == 201
    assert response.json()["description"] == ""


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"name": ""},
        {"name": "_general"},
        {"name": "-general"},
        {"name": "has space"},
        {"name": "x" * 65},
        {"name": "ünicode"},
        {"name": "me"},
        {"name": "Me"},
        {"name": None},
        {"name": ["a"]},
        {"name": "ok", "description": "d" * 501},
        {"name": "ok", "description": None},
    ],
)
def test_create_refuses_invalid_input(alice, auth_client, payload):
    response = auth_client(alice).post("/api/channels/", payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) <= {"name", "description"}
    assert not Channel.objects.exists()


def test_create_accepts_limits(alice, auth_client):
    client = auth_client(alice)
    assert client.post("/api/channels/", {"name": "a"}, format="json").status_code == 201
    long_name = "A" + "b_-9" * 15 + "xyz"
    assert len(long_name) == 64
    response = client.post("/api/channels/", {"name": long_name, "description": "d" * 500}, format="json")
    assert response.status_code == 201


def test_create_duplicate_ignoring_case(alice, bob, auth_client):
    auth_client(alice).post("/api/channels/", {"name": "General"}, format="json")
    response = auth_client(bob).post("/api/channels/", {"name": "gENERAL"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"name": ["A channel with this name already exists."]}


def test_create_malformed_json(alice, auth_client):
    response = auth_client(alice).post("/api/channels/", b"[" * 5000, content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/channels/"),
        ("post", "/api/channels/"),
        ("get", "/api/channels/me"),
        ("get", "/api/channels/general"),
        ("post", "/api/channels/general/join"),
        ("post", "/api/channels/general/leave"),
        ("delete", "/api/channels/general"),
    ],
)
def test_every_route_needs_a_token(alice, method, path):
    services.channel_create(user=alice, name="general")
    response = getattr(APIClient(), method)(path)
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}


def test_list_sorted_ignoring_case_and_paginated(alice, auth_client):
    for name in ["beta", "Alpha", "gamma", "Delta"]:
        services.channel_create(user=alice, name=name)
    client = auth_client(alice)
    response = client.get("/api/channels/")
    assert response.status_code == 200
    assert names(response) == ["Alpha", "beta", "Delta", "gamma"]
    assert response.json()["next"] is None and response.json()["previous"] is None
    first = client.get("/api/channels/?limit=3")
    assert names(first) == ["Alpha", "beta", "Delta"]
    second = client.get(first.json()["next"])
    assert names(second) == ["gamma"]
    assert second.json()["next"] is None
    assert names(client.get(second.json()["previous"])) == ["Alpha", "beta", "Delta"]


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", ""])
def test_list_bad_limit(alice, auth_client, limit):
    response = auth_client(alice).get(f"/api/channels/?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json()


def test_list_limit_over_max_is_capped(alice, auth_client):
    for i in range(201):
        Channel.objects.create(name=f"c{i:03d}", owner=alice)
    client = auth_client(alice)
    assert len(names(client.get("/api/channels/?limit=201"))) == 200
    assert len(names(client.get("/api/channels/?limit=200"))) == 200
    assert len(names(client.get("/api/channels/"))) == 50
    page = client.get("/api/channels/?limit=1")
    assert names(page) == ["c000"] and page.json()["next"]


def test_me_lists_only_my_channels(alice, bob, auth_client):
    services.channel_create(user=alice, name="zeta")
    services.channel_create(user=bob, name="Bobs")
    services.channel_create(user=bob, name="alpha")
    services.channel_join(user=alice, name="alpha")
    for path in ["/api/channels/me", "/api/channels/me/"]:
        response = auth_client(alice).get(path)
        assert response.status_code == 200
        assert names(response) == ["alpha", "zeta"]
        assert [c["member_count"] for c in response.json()["results"]] == [2, 1]


def test_detail_with_members_sorted_ignoring_case(alice, make_user, auth_client):
    services.channel_create(user=alice, name="General")
    for username in ["Zed", "bob", "Carol"]:
        services.channel_join(user=make_user(username), name="General")
    for path in ["/api/channels/general", "/api/channels/GENERAL/"]:
        response = auth_client(alice).get(path)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == CHANNEL_KEYS | {"members"}
        assert body["name"] == "General"
        assert body["members"] == ["alice", "bob", "Carol", "Zed"]
        assert body["member_count"] == 4


def test_detail_unknown(alice, auth_client):
    response = auth_client(alice).get("/api/channels/nowhere")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


def test_detail_does_not_need_membership(alice, bob, auth_client):
    services.channel_create(user=alice, name="General")
    assert auth_client(bob).get("/api/channels/General").status_code == 200


def test_join(alice, bob, auth_client):
    services.channel_create(user=alice, name="General")
    client = auth_client(bob)
    response = client.post("/api/channels/general/join")
    assert response.status_code == 200
    assert response.json()["name"] == "General"
    assert response.json()["member_count"] == 2
    again = client.post("/api/channels/GENERAL/join/")
    assert again.status_code == 200
    assert again.json()["member_count"] == 2


def test_join_unknown(alice, auth_client):
    assert auth_client(alice).post("/api/channels/nowhere/join").status_code == 404


def test_leave(alice, bob, auth_client):
    services.channel_create(user=alice, name="General")
    services.channel_join(user=bob, name="General")
    response = auth_client(bob).post("/api/channels/general/leave")
    assert response.status_code == 200
    assert response.json()["member_count"] == 1
    assert auth_client(bob).get("/api/messages?channel=general").status_code == 403


def test_owner_cannot_leave(alice, auth_client):
    services.channel_create(user=alice, name="General")
    response = auth_client(alice).post("/api/channels/General/leave")
    assert response.status_code == 400
    assert set(response.json()) == {"detail"}


def test_leave_when_not_a_member(alice, bob, auth_client):
    services.channel_create(user=alice, name="General")
    response = auth_client(bob).post("/api/channels/General/leave")
    assert response.status_code == 400
    assert response.json() == {"detail": "You are not a member of this channel."}


def test_leave_unknown(alice, auth_client):
    assert auth_client(alice).post("/api/channels/nowhere/leave").status_code == 404


def test_delete_by_owner_takes_messages(alice, bob, auth_client):
    services.channel_create(user=alice, name="General")
    services.channel_join(user=bob, name="General")
    message_send(user=bob, channel_name="General", content="hello")
    response = auth_client(alice).delete("/api/channels/general")
    assert response.status_code == 204
    assert not Channel.objects.exists()
    assert not Message.objects.exists()
    assert auth_client(alice).get("/api/channels/General").status_code == 404


def test_delete_by_member_is_forbidden(alice, bob, auth_client):
    services.channel_create(user=alice, name="General")
    services.channel_join(user=bob, name="General")
    response = auth_client(bob).delete("/api/channels/General/")
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert Channel.objects.exists()


def test_delete_unknown(alice, auth_client):
    assert auth_client(alice).delete("/api/channels/nowhere").status_code == 404


def test_channel_responses_show_no_email(alice, auth_client):
    services.channel_create(user=alice, name="General")
    client = auth_client(alice)
    for path in ["/api/channels/", "/api/channels/me", "/api/channels/General"]:
        assert "@" not in client.get(path).content.decode()


@pytest.mark.parametrize("name", ["%00", "a%00b", "%F0%9F%98%80", "x" * 300])
def test_impossible_names_are_404(alice, auth_client, name):
    client = auth_client(alice)
    assert client.get(f"/api/channels/{name}").status_code == 404
    assert client.post(f"/api/channels/{name}/join").status_code == 404
    assert client.get(f"/api/messages?channel={name}").status_code == 404
