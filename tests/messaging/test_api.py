"""Message routes: sending, reading, keyset pages and every refusal."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from chatrooms import services as channel_services
from messaging.models import Message, StreamSequence
from messaging.ratelimit import reset_message_rate_limiter
from messaging.services import message_send

pytestmark = pytest.mark.django_db

MESSAGE_KEYS = {
    "id", "seq", "rev", "channel", "username", "user_id", "content", "created_at", "client_id",
    "reply_to", "edited_at", "deleted", "reactions", "mentions",
}  # fmt: skip
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


@pytest.fixture
def general(alice):
    return channel_services.channel_create(user=alice, name="General")


def bulk_messages(user, channel, n: int, *, start=None) -> list[Message]:
    """``n`` messages in one stream with increasing seq and time, without the send path's cost."""
    stream = channel.id.hex if channel else ""
    counter, _ = StreamSequence.objects.get_or_create(stream=stream)
    start = start or timezone.now() - timedelta(days=1)
    rows = [
        Message(
            seq=counter.last_seq + i + 1,
            rev=counter.last_seq + i + 1,
            channel=channel,
            user=user,
            content=f"m{counter.last_seq + i + 1}",
            created_at=start + timedelta(seconds=i),
        )
        for i in range(n)
    ]
    Message.objects.bulk_create(rows)
    counter.last_seq += n
    counter.save()
    return rows


def contents(response) -> list[str]:
    return [m["content"] for m in response.json()["results"]]


def seqs(response) -> list[int]:
    return [m["seq"] for m in response.json()["results"]]


# --- POST /api/messages ---------------------------------------------------------


def test_send_to_lobby(alice, auth_client):
    response = auth_client(alice).post("/api/messages", {"channel": None, "content": "  hi  "}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == MESSAGE_KEYS
    message = Message.objects.get()
    assert body == {
        "id": str(message.id),
        "seq": 1,
        "channel": None,
        "username": "alice",
        "user_id": str(alice.id),
        "content": "hi",
        "created_at": body["created_at"],
        "client_id": None,
        "rev": 1,
        "reply_to": None,
        "edited_at": None,
        "deleted": False,
        "reactions": [],
        "mentions": [],
    }
    assert TIMESTAMP.match(body["created_at"])


def test_send_without_channel_key_is_refused_never_sent_to_the_lobby(alice, auth_client):
    response = auth_client(alice).post("/api/messages/", {"content": "hi"}, format="json")
    assert response.status_code == 400
    assert "channel" in response.json()
    assert not Message.objects.exists()


def test_send_to_channel_by_any_case(alice, general, auth_client):
    client = auth_client(alice)
    first = client.post("/api/messages", {"channel": "general", "content": "a"}, format="json")
    second = client.post("/api/messages", {"channel": "GENERAL", "content": "b"}, format="json")
    assert first.status_code == second.status_code == 201
    assert first.json()["channel"] == "General"
    assert [first.json()["seq"], second.json()["seq"]] == [1, 2]
    lobby = client.post("/api/messages", {"channel": None, "content": "c"}, format="json")
    assert lobby.json()["seq"] == 1


def test_send_to_channel_not_a_member(general, bob, auth_client):
    response = auth_client(bob).post("/api/messages", {"channel": "General", "content": "x"}, format="json")
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert not Message.objects.exists()


@pytest.mark.parametrize("channel", ["nowhere", "", "bad name"])
def test_send_to_unknown_channel(alice, auth_client, channel):
    response = auth_client(alice).post("/api/messages", {"channel": channel, "content": "x"}, format="json")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"channel": None},
        {"channel": None, "content": None},
        {"channel": None, "content": 5},
        {"channel": None, "content": ["x"]},
        {"channel": None, "content": {"a": 1}},
        {"channel": None, "content": True},
        {"channel": None, "content": ""},
        {"channel": None, "content": "   \n\t "},
        {"channel": None, "content": "a\x00b"},
        {"content": "x", "channel": 5},
        {"content": "x", "channel": True},
        {"content": "x", "channel": ["General"]},
        {"channel": None, "content": "x", "client_id": ""},
        {"channel": None, "content": "x", "client_id": 7},
        {"channel": None, "content": "x", "client_id": "c" * 101},
    ],
)
def test_send_refuses_bad_input(alice, general, auth_client, payload):
    response = auth_client(alice).post("/api/messages", payload, format="json")
    assert response.status_code == 400
    assert not Message.objects.exists()


def test_send_refuses_json_that_is_not_an_object(alice, auth_client):
    for body in [b"[]", b'"hi"', b"42", b"{broken", b"[" * 5000]:
        response = auth_client(alice).post("/api/messages", body, content_type="application/json")
        assert response.status_code == 400, body


def test_content_counts_code_points(alice, auth_client):
    client = auth_client(alice)
    emoji = "\U0001f600"  # four bytes in UTF-8, two UTF-16 units, one code point
    accepted = client.post(
        "/api/messages", {"channel": None, "content": f"  {emoji * 1000}\n"}, format="json"
    )
    assert accepted.status_code == 201
    assert accepted.json()["content"] == emoji * 1000
    refused = client.post("/api/messages", {"channel": None, "content": emoji * 1001}, format="json")
    assert refused.status_code == 400
    assert "content" in refused.json()
    assert Message.objects.count() == 1


def test_html_is_stored_verbatim(alice, auth_client):
    html = "<script>alert('x')</script> &amp; <b>bold</b>"
    client = auth_client(alice)
    sent = client.post("/api/messages", {"channel": None, "content": html}, format="json")
    assert sent.json()["content"] == html
    assert Message.objects.get().content == html
    assert contents(client.get("/api/messages")) == [html]


def test_idempotent_resend(alice, general, auth_client):
    client = auth_client(alice)
    payload = {"channel": "General", "content": "once", "client_id": "c-1"}
    first = client.post("/api/messages", payload, format="json")
    assert first.status_code == 201
    assert first.json()["client_id"] == "c-1"
    again = client.post("/api/messages", {**payload, "content": "different"}, format="json")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Message.objects.count() == 1
    assert StreamSequence.objects.get(stream=general.id.hex).last_seq == 1


def test_client_id_is_per_user(alice, bob, auth_client):
    a = auth_client(alice).post(
        "/api/messages", {"channel": None, "content": "a", "client_id": "same"}, format="json"
    )
    b = auth_client(bob).post(
        "/api/messages", {"channel": None, "content": "b", "client_id": "same"}, format="json"
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_rate_limited_send_is_429_with_retry_after(alice, auth_client, settings):
    settings.CHAT_MESSAGE_BURST = 2
    settings.CHAT_MESSAGE_RATE = 0.01
    reset_message_rate_limiter()
    client = auth_client(alice)
    statuses = [
        client.post(
            "/api/messages", {"channel": None, "content": f"m{i}", "client_id": f"c{i}"}, format="json"
        ).status_code
        for i in range(3)
    ]
    assert statuses == [201, 201, 429]
    refused = client.post("/api/messages", {"channel": None, "content": "more"}, format="json")
    assert refused.status_code == 429
    assert set(refused.json()) == {"detail"}
    assert int(refused["Retry-After"]) >= 1
    # An idempotent resend is not counted and is still answered.
    resend = client.post(
        "/api/messages", {"channel": None, "content": "m0", "client_id": "c0"}, format="json"
    )
    assert resend.status_code == 200
    assert Message.objects.count() == 2


def test_send_needs_a_token():
    assert (
        APIClient().post("/api/messages", {"channel": None, "content": "x"}, format="json").status_code == 401
    )


# --- GET /api/messages: what is readable ------------------------------------------


def test_reads_lobby_and_my_channels_only(alice, bob, general, auth_client):
    channel_services.channel_create(user=bob, name="Secret")
    message_send(user=alice, channel_name=None, content="lobby")
    message_send(user=alice, channel_name="General", content="general")
    message_send(user=bob, channel_name="Secret", content="secret")
    response = auth_client(alice).get("/api/messages")
    assert response.status_code == 200
    assert contents(response) == ["lobby", "general"]
    assert [m["channel"] for m in response.json()["results"]] == [None, "General"]
    assert contents(auth_client(bob).get("/api/messages")) == ["lobby", "secret"]


def test_leaving_hides_the_channel(alice, bob, general, auth_client):
    channel_services.channel_join(user=bob, name="General")
    message_send(user=alice, channel_name="General", content="general")
    assert contents(auth_client(bob).get("/api/messages")) == ["general"]
    channel_services.channel_leave(user=bob, name="General")
    assert contents(auth_client(bob).get("/api/messages")) == []


def test_channel_filter(alice, general, auth_client):
    message_send(user=alice, channel_name=None, content="lobby")
    message_send(user=alice, channel_name="General", content="general")
    client = auth_client(alice)
    assert contents(client.get("/api/messages?channel=general")) == ["general"]
    assert contents(client.get("/api/messages?channel=")) == ["lobby"]


def test_channel_filter_errors(alice, bob, general, auth_client):
    client = auth_client(bob)
    assert client.get("/api/messages?channel=General").status_code == 403
    assert client.get("/api/messages/me?channel=General").status_code == 403
    assert client.get("/api/messages?channel=nowhere").status_code == 404
    assert client.get("/api/messages/me?channel=nowhere").status_code == 404


def test_me_lists_what_i_wrote(alice, bob, general, auth_client):
    channel_services.channel_join(user=bob, name="General")
    message_send(user=alice, channel_name=None, content="a-lobby")
    message_send(user=bob, channel_name=None, content="b-lobby")
    message_send(user=bob, channel_name="General", content="b-general")
    message_send(user=alice, channel_name="General", content="a-general")
    client = auth_client(bob)
    assert contents(client.get("/api/messages/me")) == ["b-lobby", "b-general"]
    assert contents(client.get("/api/messages/me/?channel=General")) == ["b-general"]
    assert contents(client.get("/api/messages/me?channel=")) == ["b-lobby"]


def test_me_drops_channels_i_left(alice, bob, general, auth_client):
    channel_services.channel_join(user=bob, name="General")
    message_send(user=bob, channel_name="General", content="b-general")
    channel_services.channel_leave(user=bob, name="General")
    assert contents(auth_client(bob).get("/api/messages/me")) == []


def test_messages_route_needs_a_token():
    assert APIClient().get("/api/messages").status_code == 401
    assert APIClient().get("/api/messages/me").status_code == 401


def test_read_queries_do_not_grow_with_the_page(alice, general, auth_client, django_assert_max_num_queries):
    bulk_messages(alice, general, 30)
    bulk_messages(alice, None, 30)
    client = auth_client(alice)
    client.get("/api/messages")  # warm the session's last-used stamp
    # Session, memberships, one index scan per stream read (lobby, General), one fetch,
    # then the page's reactions and its mentions: one query each, however long the page.
    with django_assert_max_num_queries(7):
        assert len(contents(client.get("/api/messages?limit=60"))) == 60


# --- pagination -------------------------------------------------------------------


def test_default_page_is_the_newest_50_ascending(alice, general, auth_client):
    bulk_messages(alice, general, 120)
    response = auth_client(alice).get("/api/messages?channel=General")
    assert seqs(response) == list(range(71, 121))
    assert response.json()["next"] is None
    assert response.json()["previous"]


@pytest.mark.parametrize(("limit", "served"), [("1", 1), ("200", 200), ("201", 200), ("100000", 200)])
def test_limit_boundaries(alice, general, auth_client, limit, served):
    bulk_messages(alice, general, 205)
    response = auth_client(alice).get(f"/api/messages?channel=General&limit={limit}")
    assert seqs(response) == list(range(206 - served, 206))
    assert f"limit={served}" in response.json()["previous"]


@pytest.mark.parametrize("limit", ["0", "-1", "x", "1.0", "", "１"])
def test_bad_limit(alice, auth_client, limit):
    response = auth_client(alice).get(f"/api/messages?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json()


def test_before_and_after_at_both_ends(alice, general, auth_client):
    rows = bulk_messages(alice, general, 10)
    client = auth_client(alice)
    base = "/api/messages?channel=General&limit=3"

    oldest, newest = rows[0], rows[-1]
    before_oldest = client.get(f"{base}&before={oldest.id}")
    assert before_oldest.status_code == 200
    assert seqs(before_oldest) == []
    assert before_oldest.json()["previous"] is None
    # The newer page of an empty page starts at the anchor itself.
    assert seqs(client.get(before_oldest.json()["next"])) == [1, 2, 3]

    after_newest = client.get(f"{base}&after={newest.id}")
    assert seqs(after_newest) == []
    assert after_newest.json()["next"] is None
    assert seqs(client.get(after_newest.json()["previous"])) == [8, 9, 10]

    before_second = client.get(f"{base}&before={rows[1].id}")
    assert seqs(before_second) == [1]
    assert before_second.json()["previous"] is None
    assert seqs(client.get(before_second.json()["next"])) == [2, 3, 4]

    after_second_last = client.get(f"{base}&after={rows[-2].id}")
    assert seqs(after_second_last) == [10]
    assert after_second_last.json()["next"] is None
    assert seqs(client.get(after_second_last.json()["previous"])) == [7, 8, 9]

    middle = client.get(f"{base}&before={rows[5].id}")
    assert seqs(middle) == [3, 4, 5]
    middle = client.get(f"{base}&after={rows[5].id}")
    assert seqs(middle) == [7, 8, 9]


def test_empty_pages_when_few_messages(alice, general, auth_client):
    rows = bulk_messages(alice, general, 2)
    client = auth_client(alice)
    empty = client.get(f"/api/messages?channel=General&limit=5&before={rows[0].id}")
    assert seqs(empty) == [] and empty.json()["previous"] is None
    assert seqs(client.get(empty.json()["next"])) == [1, 2]
    empty = client.get(f"/api/messages?channel=General&limit=5&after={rows[1].id}")
    assert seqs(empty) == [] and empty.json()["next"] is None
    assert seqs(client.get(empty.json()["previous"])) == [1, 2]


def test_no_messages_no_links(alice, auth_client):
    response = auth_client(alice).get("/api/messages")
    assert response.json() == {"results": [], "next": None, "previous": None}


def walk(client, url: str, link: str) -> list[dict]:
    """Follow ``link`` (``previous`` or ``next``) from ``url`` to the end; every page's results."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        pages.append(response.json()["results"])
        url = response.json()[link]
        assert len(pages) < 100
    return pages


def test_links_walk_one_stream_both_ways(alice, general, auth_client):
    bulk_messages(alice, general, 23)
    client = auth_client(alice)
    backwards = walk(client, "/api/messages?channel=General&limit=5", "previous")
    assert [[m["seq"] for m in page] for page in backwards] == [
        [19, 20, 21, 22, 23],
        [14, 15, 16, 17, 18],
        [9, 10, 11, 12, 13],
        [4, 5, 6, 7, 8],
        [1, 2, 3],
    ]
    oldest = backwards[-1][0]["id"]
    forwards = walk(client, f"/api/messages?channel=General&limit=5&after={oldest}", "next")
    assert [m["seq"] for page in forwards for m in page] == list(range(2, 24))


def test_links_walk_across_streams_in_time_order(alice, general, auth_client):
    start = timezone.now() - timedelta(hours=1)
    lobby = bulk_messages(alice, None, 7, start=start)
    chan = bulk_messages(alice, general, 7, start=start + timedelta(milliseconds=500))
    # Two messages at the very same instant: (created_at, id) still orders them.
    same = timezone.now() - timedelta(minutes=1)
    tied = bulk_messages(alice, None, 1, start=same) + bulk_messages(alice, general, 1, start=same)
    client = auth_client(alice)
    expected = sorted(lobby + chan + tied, key=lambda m: (m.created_at, str(m.id)))
    expected_ids = [str(m.id) for m in expected]
    for limit in [1, 3, 16, 200]:
        pages = walk(client, f"/api/messages?limit={limit}", "previous")
        got = [m["id"] for page in reversed(pages) for m in page]
        assert got == expected_ids
        forwards = walk(client, f"/api/messages?limit={limit}&after={expected_ids[0]}", "next")
        assert [m["id"] for page in forwards for m in page] == expected_ids[1:]


def test_links_keep_the_channel_filter_and_me(alice, bob, general, auth_client):
    channel_services.channel_join(user=bob, name="General")
    for i in range(6):
        message_send(user=alice if i % 2 else bob, channel_name="General", content=f"g{i}")
        message_send(user=bob, channel_name=None, content=f"l{i}")
    client = auth_client(bob)
    pages = walk(client, "/api/messages/me?channel=General&limit=2", "previous")
    assert [m["content"] for page in reversed(pages) for m in page] == ["g0", "g2", "g4"]
    for page in pages:
        assert all(m["channel"] == "General" for m in page)


@pytest.mark.parametrize("param", ["before", "after"])
def test_anchor_errors(alice, bob, general, auth_client, param):
    channel_services.channel_create(user=bob, name="Secret")
    mine = message_send(user=alice, channel_name="General", content="g").message
    lobby = message_send(user=alice, channel_name=None, content="l").message
    secret = message_send(user=bob, channel_name="Secret", content="s").message
    client = auth_client(alice)
    for value in ["nope", "", "1234", str(uuid.uuid4()), str(secret.id), "%00"]:
        response = client.get(f"/api/messages?{param}={value}")
        assert response.status_code == 400, value
        assert param in response.json()
    # A message outside the channel asked for.
    assert client.get(f"/api/messages?channel=General&{param}={lobby.id}").status_code == 400
    assert client.get(f"/api/messages?channel=&{param}={mine.id}").status_code == 400
    # Readable anchors are fine, even on /me with someone else's message.
    assert client.get(f"/api/messages?channel=General&{param}={mine.id}").status_code == 200
    assert client.get(f"/api/messages?{param}={lobby.id}").status_code == 200


def test_before_and_after_together(alice, auth_client):
    message = message_send(user=alice, channel_name=None, content="x").message
    response = auth_client(alice).get(f"/api/messages?before={message.id}&after={message.id}")
    assert response.status_code == 400
