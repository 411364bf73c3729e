"""GET /api/messages/search: whole words ignoring case, only what you can read, never a deleted message.

The suite runs on SQLite (FTS5) and again on PostgreSQL (GIN full-text index).
"""

from __future__ import annotations

import pytest
from django.db import connection

from chatrooms import services as channel_services
from messaging.services import message_send

pytestmark = pytest.mark.django_db


@pytest.fixture
def general(alice):
    return channel_services.channel_create(user=alice, name="General")


def post(user, content, channel="General"):
    return message_send(user=user, channel_name=channel, content=content).message


def found(client, q, **params) -> list[str]:
    response = client.get("/api/messages/search", {"q": q, **params})
    assert response.status_code == 200, response.json()
    return [m["content"] for m in response.json()["results"]]


def test_every_word_whole_ignoring_case_newest_first(alice, general, auth_client):
    for text in ("The Quick brown fox", "quick thinking", "a quickly brown dog", "brown QUICK fox again"):
        post(alice, text)
    client = auth_client(alice)
    assert found(client, "quick brown") == ["brown QUICK fox again", "The Quick brown fox"]
    assert found(client, "QUICK") == ["brown QUICK fox again", "quick thinking", "The Quick brown fox"]
    assert found(client, "quic") == []


def test_only_messages_you_can_read(alice, bob, general, auth_client):
    post(alice, "secret plans")
    post(alice, "public plans", channel=None)
    assert found(auth_client(bob), "plans") == ["public plans"]
    assert found(auth_client(alice), "plans") == ["public plans", "secret plans"]
    assert (
        auth_client(bob).get("/api/messages/search", {"q": "plans", "channel": "General"}).status_code == 403
    )


def test_channel_filter_and_the_lobby(alice, general, auth_client):
    post(alice, "hello from general")
    post(alice, "hello from the lobby", channel=None)
    client = auth_client(alice)
    assert found(client, "hello", channel="General") == ["hello from general"]
    assert found(client, "hello", channel="") == ["hello from the lobby"]


def test_an_edit_or_a_deletion_is_never_found_by_its_old_text(alice, general, auth_client):
    edited, deleted = post(alice, "original wording"), post(alice, "doomed wording")
    client = auth_client(alice)
    client.patch(f"/api/messages/{edited.id}", {"content": "revised text"}, format="json")
    client.delete(f"/api/messages/{deleted.id}")
    assert found(client, "wording") == []
    assert found(client, "original") == []
    assert found(client, "doomed") == []
    assert found(client, "revised") == ["revised text"]


def test_pages_link_to_older_results(alice, general, auth_client):
    for n in range(5):
        post(alice, f"needle {n}")
    client = auth_client(alice)
    first = client.get("/api/messages/search", {"q": "needle", "limit": 2}).json()
    assert [m["content"] for m in first["results"]] == ["needle 4", "needle 3"]
    second = client.get(first["next"]).json()
    assert [m["content"] for m in second["results"]] == ["needle 2", "needle 1"]
    third = client.get(second["next"]).json()
    assert [m["content"] for m in third["results"]] == ["needle 0"]
    assert third["next"] is None


@pytest.mark.parametrize("q", [None, "", "   ", "!!!", "x" * 201, "nul\x00"])
def test_bad_queries_are_400(alice, auth_client, q):
    params = {} if q is None else {"q": q}
    assert auth_client(alice).get("/api/messages/search", params).status_code == 400


def test_search_runs_in_the_full_text_index(alice, general, auth_client, django_assert_max_num_queries):
    post(alice, "indexed words")
    client = auth_client(alice)
    client.get("/api/messages")  # warm the session's last-used stamp
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert found(client, "indexed") == ["indexed words"]
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    if connection.vendor == "postgresql":
        assert "to_tsvector('simple'::regconfig, content) @@ plainto_tsquery" in sql
    else:
        assert "messaging_message_fts MATCH" in sql
