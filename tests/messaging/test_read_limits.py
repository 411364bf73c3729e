"""CHAT_READ_RATE over REST: message lists and search refused past it (429), read updates past it
dropped silently with the latest position applied shortly after."""

from __future__ import annotations

import time

import pytest

from chatrooms import services as channel_services
from chatrooms.models import Membership
from messaging.models import LobbyRead
from messaging.reads import deferred_reads
from messaging.services import message_send

pytestmark = pytest.mark.django_db


def read_lobby(client, seq):
    return client.post("/api/read", {"channel": None, "seq": seq}, format="json")


def assert_limited(response) -> None:
    assert response.status_code == 429, response.content
    assert set(response.json()) == {"detail"}
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.mark.parametrize(
    "path", ["/api/messages", "/api/messages/me", "/api/messages/search?q=hello", "/api/messages?channel="]
)
def test_message_lists_and_search_past_the_rate_are_429(alice, bob, auth_client, rates, path):
    rates(CHAT_READ_RATE="3/m")
    client = auth_client(alice)
    for _ in range(3):
        assert client.get(path).status_code == 200
    assert_limited(client.get(path))
    # Every kind of list shares the one allowance.
    assert_limited(client.get("/api/messages/search?q=x" if "search" not in path else "/api/messages"))
    assert auth_client(bob).get(path).status_code == 200
    # Fetching one message, or the channel lists, is not a list of messages.
    assert client.get("/api/channels/").status_code == 200


def test_reads_past_the_rate_are_dropped_silently_and_the_highest_applies_later(
    alice, bob, auth_client, rates
):
    channel_services.channel_create(user=alice, name="ops")
    channel_services.channel_join(user=bob, name="ops")
    for n in range(10):
        message_send(user=alice, channel_name="ops", content=f"m{n}")
    rates(CHAT_READ_RATE="2/m")
    client = auth_client(bob)
    assert client.post("/api/read", {"channel": "ops", "seq": 1}, format="json").json()["last_read_seq"] == 1
    assert client.post("/api/read", {"channel": "ops", "seq": 2}, format="json").json()["last_read_seq"] == 2
    for seq in (3, 7, 5, 6):  # past the rate: answered 200 with the position as it stands
        dropped = client.post("/api/read", {"channel": "ops", "seq": seq}, format="json")
        assert dropped.status_code == 200
        assert dropped.json() == {"channel": "ops", "last_read_seq": 2, "unread": 8, "mentions": 0}
    # Refusals still come first: a bad seq or a channel bob is not in.
    assert client.post("/api/read", {"channel": "ops", "seq": -1}, format="json").status_code == 400
    assert client.post("/api/read", {"channel": "nowhere", "seq": 1}, format="json").status_code == 404
    assert Membership.objects.get(user=bob).last_read_seq == 2
    deferred_reads.flush()  # what the timer does, here in the test's transaction
    assert Membership.objects.get(user=bob).last_read_seq == 7  # the highest sent, never backwards
    assert client.get("/api/channels/me").json()["results"][0]["last_read_seq"] == 7


@pytest.mark.django_db(transaction=True)
def test_the_timer_applies_the_dropped_read_within_a_second(alice, bob, auth_client, rates):
    for n in range(5):
        message_send(user=alice, channel_name=None, content=f"m{n}")
    rates(CHAT_READ_RATE="1/m")
    client = auth_client(bob)
    assert read_lobby(client, 1).json()["last_read_seq"] == 1
    assert read_lobby(client, 4).json()["last_read_seq"] == 1  # dropped
    assert read_lobby(client, 3).json()["last_read_seq"] == 1  # dropped
    deadline = time.monotonic() + 10  # generous: the timer fires after 0.5 s
    while LobbyRead.objects.get(user=bob).last_read_seq != 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert LobbyRead.objects.get(user=bob).last_read_seq == 4
