"""Private and direct channels are invisible to non-members: every route naming one answers
exactly as for a channel that does not exist (status, body, and the number of SQL queries)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatrooms import direct, selectors, services
from chatrooms.models import Channel
from core.errors import ChannelNotFound
from messaging.services import message_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_user):
    """alice owns private ``secret`` (bob is in it); alice and bob share ``@alice+bob``; carol is outside."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    services.channel_create(user=alice, name="secret", private=True)
    services.member_add(actor=alice, name="secret", username="bob")
    direct.direct_open(user=alice, username="bob")
    messages = {
        "secret": message_send(user=alice, channel_name="secret", content="hello there").message,
        "@alice+bob": message_send(user=alice, channel_name="@alice+bob", content="hello there").message,
    }
    return {"alice": alice, "bob": bob, "carol": carol, "messages": messages}


# (hidden name, a name of the same shape that names nothing)
HIDDEN = [
    ("secret", "nosuch"),
    ("SECRET", "NOSUCH"),
    ("@alice+bob", "@alice+zed"),
    ("@ALICE+BOB", "@alice+zoe"),
]

ROUTES = [
    ("get", "/api/channels/{name}", None),
    ("delete", "/api/channels/{name}", None),
    ("post", "/api/channels/{name}/join", None),
    ("post", "/api/channels/{name}/leave", None),
    ("post", "/api/channels/{name}/members", {"username": "carol"}),
    ("delete", "/api/channels/{name}/members/bob", None),
    ("delete", "/api/channels/{name}/members/carol", None),
    ("get", "/api/channels/{name}/bans", None),
    ("post", "/api/channels/{name}/bans", {"username": "bob"}),
    ("delete", "/api/channels/{name}/bans/bob", None),
    ("get", "/api/messages?channel={name}", None),
    ("get", "/api/messages/me?channel={name}", None),
    ("post", "/api/messages", {"channel": "{name}", "content": "hi"}),
    ("get", "/api/messages/search?q=hello&channel={name}", None),
    ("post", "/api/read", {"channel": "{name}", "seq": 1}),
]


def answer(client, method: str, path: str, body: dict | None) -> tuple[int, object, int]:
    """``(status, body, queries)`` of one request."""
    with CaptureQueriesContext(connection) as queries:
        response = (
            getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)
        )
    return response.status_code, response.json(), len(queries)


def fill(template, name: str):
    if isinstance(template, dict):
        return {key: fill(value, name) for key, value in template.items()}
    if isinstance(template, str):
        return template.replace("{name}", name.replace("+", "%2B") if "?" in template else name)
    return template


@pytest.mark.parametrize(("hidden", "missing"), HIDDEN)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_a_hidden_channel_is_answered_as_a_missing_one(
    world, auth_client, method, path, body, hidden, missing
):
    client = auth_client(world["carol"])
    client.get("/api/users/me")  # warm: the session's first request may read more
    absent = answer(client, method, fill(path, missing), fill(body, missing))
    private = answer(client, method, fill(path, hidden), fill(body, hidden))
    assert private == absent
    assert private[0] == 404
    assert Channel.objects.filter(name__in=["secret", "@alice+bob"]).count() == 2
    assert world["carol"].memberships.count() == 0


MESSAGE_ROUTES = [
    ("get", "/api/messages/{id}", None, 404),
    ("patch", "/api/messages/{id}", {"content": "changed"}, 404),
    ("delete", "/api/messages/{id}", None, 404),
    ("post", "/api/messages/{id}/reactions", {"emoji": "+1"}, 404),
    ("delete", "/api/messages/{id}/reactions/%2B1", None, 404),
    ("get", "/api/messages?reply_to={id}", None, 400),
]


@pytest.mark.parametrize("name", ["secret", "@alice+bob"])
@pytest.mark.parametrize(("method", "path", "body", "status"), MESSAGE_ROUTES)
def test_a_message_of_a_hidden_channel_is_answered_as_a_missing_message(
    world, auth_client, name, method, path, body, status
):
    client = auth_client(world["carol"])
    client.get("/api/users/me")
    absent = answer(client, method, path.replace("{id}", str(uuid.uuid4())), body)
    hidden = answer(client, method, path.replace("{id}", str(world["messages"][name].id)), body)
    assert hidden == absent
    assert hidden[0] == status
    message = world["messages"][name]
    message.refresh_from_db()
    assert (message.content, message.deleted, message.rev) == ("hello there", False, message.seq)
    # Its members read it.
    assert auth_client(world["bob"]).get(f"/api/messages/{world['messages'][name].id}").status_code == 200


def test_the_list_shows_public_channels_and_ones_own(world, auth_client, make_user):
    services.channel_create(user=world["carol"], name="open")
    services.channel_create(user=world["carol"], name="mine", private=True)
    listed = {
        c["name"]: c["kind"] for c in auth_client(world["carol"]).get("/api/channels/").json()["results"]
    }
    assert listed == {"open": "public", "mine": "private"}
    listed = {c["name"]: c["kind"] for c in auth_client(world["bob"]).get("/api/channels/").json()["results"]}
    assert listed == {"@alice+bob": "direct", "open": "public", "secret": "private"}
    dave = make_user("dave")
    assert [c["name"] for c in auth_client(dave).get("/api/channels/").json()["results"]] == ["open"]


def test_members_see_a_private_channel(world, auth_client):
    response = auth_client(world["bob"]).get("/api/channels/SECRET")
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "private" and body["owner"] == "alice"
    assert body["members"] == ["alice", "bob"] and body["member_count"] == 2


def test_create_private_and_kind(alice, auth_client):
    client = auth_client(alice)
    response = client.post("/api/channels/", {"name": "Quiet", "private": True}, format="json")
    assert response.status_code == 201
    assert response.json()["kind"] == "private"
    response = client.post("/api/channels/", {"name": "Loud", "private": False}, format="json")
    assert response.json()["kind"] == "public"
    assert client.post("/api/channels/", {"name": "Plain"}, format="json").json()["kind"] == "public"
    assert Channel.objects.get(name="Quiet").kind == Channel.Kind.PRIVATE


@pytest.mark.parametrize("private", [True, False])
def test_a_taken_name_is_400_whatever_its_kind(world, auth_client, private):
    # carol cannot see "secret", yet its name is taken: a name is unique among all channels.
    response = auth_client(world["carol"]).post(
        "/api/channels/", {"name": "Secret", "private": private}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {"name": ["A channel with this name already exists."]}


@pytest.mark.parametrize("name", ["@alice+bob", "@x+y", "@alice+bob+carol", "a b"])
def test_a_direct_name_cannot_be_created_as_a_channel(alice, auth_client, name):
    response = auth_client(alice).post("/api/channels/", {"name": name}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()


def test_direct_names_are_looked_up_ignoring_case_and_with_an_unencoded_plus(world, auth_client):
    client = auth_client(world["bob"])
    assert client.get("/api/channels/@Alice+BOB").json()["name"] == "@alice+bob"
    # An unencoded "+" in a query string arrives as a space.
    response = client.get("/api/messages?channel=@alice+bob")
    assert response.status_code == 200
    assert [m["content"] for m in response.json()["results"]] == ["hello there"]
    assert client.get("/api/messages?channel=%40ALICE%2Bbob").status_code == 200
    assert client.get("/api/messages/search?q=hello&channel=@alice+bob").json()["results"][0]["channel"] == (
        "@alice+bob"
    )
    response = client.post("/api/messages", {"channel": "@ALICE+bob", "content": "yo"}, format="json")
    assert response.status_code == 201
    assert response.json()["channel"] == "@alice+bob"


def test_a_hidden_channel_cannot_be_joined_by_name(world, auth_client):
    response = auth_client(world["carol"]).post("/api/channels/secret/join")
    assert response.status_code == 404
    assert not world["carol"].memberships.exists()


@pytest.mark.parametrize(
    ("name", "possible"),
    [
        ("general", True),
        ("@ada+bob", True),
        ("@ADA+b.o-b_", True),
        ("@ada bob", True),  # an unencoded "+" from a query string
        ("@ada+bob+eve", False),
        ("@ab+bob", False),
        ("@ada  bob", False),
        ("ada bob", False),
        ("@ada+bo\x00b", False),
        (None, False),
        (["@ada+bob"], False),
    ],
)
def test_possible_names(name, possible):
    assert selectors._possible_name(name) is possible


def test_lookups_cost_one_query_found_hidden_or_missing(world, django_assert_num_queries):
    carol, bob = world["carol"], world["bob"]
    for name in ["secret", "@alice+bob", "nosuch"]:
        with django_assert_num_queries(1), pytest.raises(ChannelNotFound):
            selectors.channel_get(user=carol, name=name)
        with django_assert_num_queries(2), pytest.raises(ChannelNotFound):
            selectors.access_channel(user=carol, name=name)
    with django_assert_num_queries(1):
        assert selectors.channel_get(user=bob, name="@ALICE bob").name == "@alice+bob"
    with django_assert_num_queries(1):
        assert selectors.access_channel(user=bob, name="Secret").name == "secret"
