"""Version 4 changes over REST: edit, delete, reactions, replies, mentions, and the positions they take."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import orjson
import pytest

from chatrooms import services as channel_services
from messaging.models import Message, StreamSequence
from messaging.services import message_send
from realtime.groups import channel_group

pytestmark = pytest.mark.django_db


@pytest.fixture
def general(alice, bob):
    channel = channel_services.channel_create(user=alice, name="General")
    channel_services.channel_join(user=bob, name="General")
    return channel


def post(user, content, *, channel="General", **extra):
    return message_send(user=user, channel_name=channel, content=content, **extra).message


def counter(channel) -> int:
    return StreamSequence.objects.get(stream=channel.id.hex).last_seq


# --- edit ---------------------------------------------------------------------------


def test_the_author_edits_and_the_edit_takes_the_next_position(alice, general, auth_client):
    message = post(alice, "helo")
    response = auth_client(alice).patch(f"/api/messages/{message.id}", {"content": " hello "}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["content"], body["seq"], body["rev"]) == ("hello", 1, 2)
    assert body["edited_at"] is not None
    assert counter(general) == 2


def test_the_same_content_again_changes_nothing(alice, general, auth_client):
    message = post(alice, "hello")
    response = auth_client(alice).patch(f"/api/messages/{message.id}", {"content": "hello"}, format="json")
    assert response.status_code == 200
    assert (response.json()["rev"], response.json()["edited_at"]) == (1, None)
    assert counter(general) == 1


def test_only_the_author_edits(alice, bob, general, auth_client):
    message = post(alice, "mine")
    response = auth_client(bob).patch(f"/api/messages/{message.id}", {"content": "yours"}, format="json")
    assert response.status_code == 403
    assert Message.objects.get().content == "mine"
    assert counter(general) == 1


@pytest.mark.parametrize(("content", "status"), [("   ", 400), ("x" * 1001, 400), (7, 400), (None, 400)])
def test_edit_content_follows_the_posting_rules(alice, general, auth_client, content, status):
    message = post(alice, "hello")
    response = auth_client(alice).patch(f"/api/messages/{message.id}", {"content": content}, format="json")
    assert response.status_code == status
    assert Message.objects.get().content == "hello"


def test_a_deleted_message_cannot_be_edited_or_reacted_to(alice, general, auth_client):
    message = post(alice, "gone soon")
    client = auth_client(alice)
    assert client.delete(f"/api/messages/{message.id}").status_code == 204
    edit = client.patch(f"/api/messages/{message.id}", {"content": "back"}, format="json")
    react = client.post(f"/api/messages/{message.id}/reactions", {"emoji": "👍"}, format="json")
    assert (edit.status_code, react.status_code) == (400, 400)
    assert "deleted" in edit.json()["detail"]
    assert set(react.json()) == {"detail"}


@pytest.mark.parametrize("message_id", ["not-a-uuid", str(uuid.uuid4())])
def test_unknown_or_malformed_ids_are_404(alice, auth_client, message_id):
    client = auth_client(alice)
    assert client.get(f"/api/messages/{message_id}").status_code == 404
    assert client.patch(f"/api/messages/{message_id}", {"content": "x"}, format="json").status_code == 404
    assert client.delete(f"/api/messages/{message_id}").status_code == 404


def test_a_channel_you_cannot_read_hides_its_messages(alice, general, make_user, auth_client):
    message = post(alice, "members only")
    outsider = auth_client(make_user("eve"))
    assert outsider.get(f"/api/messages/{message.id}").status_code == 404
    assert outsider.delete(f"/api/messages/{message.id}").status_code == 404
    assert (
        outsider.post(f"/api/messages/{message.id}/reactions", {"emoji": "x"}, format="json").status_code
        == 404
    )


# --- delete -------------------------------------------------------------------------


def test_a_deletion_leaves_a_tombstone(alice, bob, general, auth_client):
    message = post(alice, "hello @bob", reply_to=str(post(bob, "first").id))
    auth_client(bob).post(f"/api/messages/{message.id}/reactions", {"emoji": "👍"}, format="json")
    assert auth_client(alice).delete(f"/api/messages/{message.id}").status_code == 204
    body = auth_client(bob).get(f"/api/messages/{message.id}").json()
    assert body["deleted"] is True
    assert (body["content"], body["reactions"], body["mentions"]) == ("", [], [])
    assert (body["seq"], body["rev"], body["username"]) == (2, 4, "alice")
    assert body["reply_to"] is not None
    row = Message.objects.get(id=message.id)
    assert row.content == "" and not row.reaction_rows.exists() and not row.mention_rows.exists()


def test_owner_and_staff_delete_others_messages_other_readers_cannot(
    alice, bob, general, make_user, auth_client
):
    carol = make_user("carol")
    channel_services.channel_join(user=carol, name="General")
    staff = make_user("mod")
    staff.is_staff = True
    staff.save()
    channel_services.channel_join(user=staff, name="General")
    first, second = post(bob, "one"), post(bob, "two")
    assert auth_client(carol).delete(f"/api/messages/{first.id}").status_code == 403
    assert auth_client(alice).delete(f"/api/messages/{first.id}").status_code == 204  # the owner
    assert auth_client(staff).delete(f"/api/messages/{second.id}").status_code == 204
    assert list(Message.objects.filter(deleted=True).order_by("seq").values_list("seq", flat=True)) == [1, 2]


def test_deleting_twice_changes_nothing(alice, general, auth_client):
    message = post(alice, "hello")
    client = auth_client(alice)
    assert client.delete(f"/api/messages/{message.id}").status_code == 204
    assert client.delete(f"/api/messages/{message.id}").status_code == 204
    assert counter(general) == 2


def test_lobby_messages_are_deleted_by_author_or_staff_only(alice, bob, auth_client):
    message = post(alice, "in the lobby", channel=None)
    assert auth_client(bob).delete(f"/api/messages/{message.id}").status_code == 403
    assert auth_client(alice).delete(f"/api/messages/{message.id}").status_code == 204


# --- reactions ----------------------------------------------------------------------


def test_reactions_group_by_emoji_in_order_of_first_use(alice, bob, general, make_user, auth_client):
    carol = make_user("Carol")
    channel_services.channel_join(user=carol, name="General")
    message = post(alice, "react to me")
    for user, emoji in [(bob, "👍"), (alice, ":tada:"), (carol, "👍"), (alice, "👍")]:
        response = auth_client(user).post(
            f"/api/messages/{message.id}/reactions", {"emoji": emoji}, format="json"
        )
        assert response.status_code == 200
    assert response.json()["reactions"] == [
        {"emoji": "👍", "usernames": ["alice", "bob", "Carol"]},
        {"emoji": ":tada:", "usernames": ["alice"]},
    ]
    assert response.json()["rev"] == 5


def test_reacting_twice_changes_nothing_and_unreacting_removes(alice, general, auth_client):
    message = post(alice, "hi")
    client = auth_client(alice)
    client.post(f"/api/messages/{message.id}/reactions", {"emoji": "👍"}, format="json")
    again = client.post(f"/api/messages/{message.id}/reactions", {"emoji": "👍"}, format="json")
    assert again.json()["rev"] == 2
    removed = client.delete(f"/api/messages/{message.id}/reactions/{quote('👍')}")
    assert removed.status_code == 200
    assert (removed.json()["reactions"], removed.json()["rev"]) == ([], 3)
    none_left = client.delete(f"/api/messages/{message.id}/reactions/{quote('👍')}")
    assert (none_left.status_code, none_left.json()["rev"]) == (200, 3)


def test_at_most_20_distinct_emoji(alice, general, auth_client):
    message = post(alice, "so many")
    client = auth_client(alice)
    for n in range(20):
        assert (
            client.post(
                f"/api/messages/{message.id}/reactions", {"emoji": f":e{n}:"}, format="json"
            ).status_code
            == 200
        )
    refused = client.post(f"/api/messages/{message.id}/reactions", {"emoji": ":e20:"}, format="json")
    assert refused.status_code == 400
    assert set(refused.json()) == {"detail"}
    assert len(client.get(f"/api/messages/{message.id}").json()["reactions"]) == 20
    assert counter(general) == 21


@pytest.mark.parametrize("emoji", ["", "two words", "tab\t", "x" * 33, "\x00", 5, None])
def test_invalid_emoji_are_refused(alice, general, auth_client, emoji):
    """Strings that break the emoji rules are ``invalid_emoji``: 400 with ``{"detail"}``."""
    message = post(alice, "hi")
    response = auth_client(alice).post(
        f"/api/messages/{message.id}/reactions", {"emoji": emoji}, format="json"
    )
    assert response.status_code == 400
    if isinstance(emoji, str) and "\x00" not in emoji:
        assert set(response.json()) == {"detail"}
    assert counter(general) == 1


# --- replies ------------------------------------------------------------------------


def test_replies_are_checked_and_listed(alice, bob, general, auth_client):
    question = post(alice, "question?")
    client = auth_client(bob)
    answers = []
    for text in ("one", "two"):
        response = client.post(
            "/api/messages",
            {"channel": "General", "content": text, "reply_to": str(question.id)},
            format="json",
        )
        assert response.status_code == 201
        assert response.json()["reply_to"] == str(question.id)
        answers.append(response.json()["id"])
    post(alice, "unrelated")
    listed = client.get(f"/api/messages?reply_to={question.id}").json()
    assert [m["id"] for m in listed["results"]] == answers


def test_a_reply_must_answer_a_message_of_the_same_channel(alice, general, auth_client):
    lobby_message = post(alice, "lobby", channel=None)
    client = auth_client(alice)
    for reply_to in ("nope", str(uuid.uuid4()), str(lobby_message.id), 5):
        response = client.post(
            "/api/messages", {"channel": "General", "content": "x", "reply_to": reply_to}, format="json"
        )
        assert response.status_code == 400, reply_to
    assert not Message.objects.filter(channel=general).exists()


def test_replying_to_a_deleted_message_is_allowed(alice, general, auth_client):
    message = post(alice, "soon gone")
    client = auth_client(alice)
    client.delete(f"/api/messages/{message.id}")
    response = client.post(
        "/api/messages",
        {"channel": "General", "content": "still", "reply_to": str(message.id)},
        format="json",
    )
    assert response.status_code == 201


def test_listing_replies_to_a_message_you_cannot_read_is_400(alice, general, make_user, auth_client):
    message = post(alice, "secret")
    response = auth_client(make_user("eve")).get(f"/api/messages?reply_to={message.id}")
    assert response.status_code == 400


# --- mentions -----------------------------------------------------------------------


def test_mentions_name_readers_of_the_channel(alice, bob, general, make_user, auth_client):
    make_user("eve")  # not a member of General
    make_user("bob.smith")
    channel_services.channel_join(user=make_user("dot"), name="General")
    message = post(alice, "thanks @BOB. and @eve, @alice-, @dot... @nobody @bob again")
    assert auth_client(alice).get(f"/api/messages/{message.id}").json()["mentions"] == ["alice", "bob", "dot"]


def test_the_lobby_mentions_any_active_user(alice, make_user, auth_client):
    gone = make_user("gone")
    gone.is_active = False
    gone.save()
    make_user("Zed")
    message = post(alice, "@zed @gone", channel=None)
    assert auth_client(alice).get(f"/api/messages/{message.id}").json()["mentions"] == ["Zed"]


def test_mentions_are_found_again_on_every_edit(alice, bob, general, auth_client):
    message = post(alice, "hi @bob")
    response = auth_client(alice).patch(
        f"/api/messages/{message.id}", {"content": "hi @alice"}, format="json"
    )
    assert response.json()["mentions"] == ["alice"]
    assert list(message.mention_rows.values_list("user__username", flat=True)) == ["alice"]


def test_at_most_50_mentions_the_first_named(alice, general, make_user):
    users = [make_user(f"user{n:02d}") for n in range(55)]
    for user in users:
        channel_services.channel_join(user=user, name="General")
    message = post(alice, " ".join(f"@{user.username}" for user in reversed(users)))
    named = set(message.mention_rows.values_list("user__username", flat=True))
    assert named == {user.username for user in users[5:]}


# --- positions and announcements ------------------------------------------------------


def test_positions_stay_gapless_across_mixed_changes(alice, bob, general, auth_client):
    client = auth_client(alice)
    first, second = post(alice, "one"), post(bob, "two")
    client.patch(f"/api/messages/{first.id}", {"content": "one!"}, format="json")
    client.post(f"/api/messages/{second.id}/reactions", {"emoji": "👍"}, format="json")
    client.post(f"/api/messages/{second.id}/reactions", {"emoji": "👍"}, format="json")  # no change
    client.delete(f"/api/messages/{second.id}/reactions/{quote('👍')}")
    third = post(alice, "three")
    client.delete(f"/api/messages/{first.id}")
    rows = {m.id: (m.seq, m.rev) for m in Message.objects.all()}
    assert rows == {first.id: (1, 7), second.id: (2, 5), third.id: (6, 6)}
    assert counter(general) == 7


def test_each_change_is_announced_once_after_commit_at_its_position(alice, general, auth_client, published):
    message = post(alice, "hello")
    client = auth_client(alice)
    with published.capture():
        client.patch(f"/api/messages/{message.id}", {"content": "hello!"}, format="json")
        client.patch(f"/api/messages/{message.id}", {"content": "hello!"}, format="json")  # no change
        client.post(f"/api/messages/{message.id}/reactions", {"emoji": "👍"}, format="json")
        client.delete(f"/api/messages/{message.id}")
    assert [group for group, _ in published.calls] == [channel_group(general.id)] * 3
    envelopes = [event for _, event in published.calls]
    assert [(e["kind"], e["stream"], e["seq"]) for e in envelopes] == [
        ("message", general.id.hex, 2),
        ("message", general.id.hex, 3),
        ("message", general.id.hex, 4),
    ]
    frames = [orjson.loads(e["frame"]) for e in envelopes]
    assert [(f["type"], f["change"], f["message"]["rev"]) for f in frames] == [
        ("message_updated", "edited", 2),
        ("message_updated", "reactions", 3),
        ("message_updated", "deleted", 4),
    ]
    assert frames[2]["message"]["content"] == ""


def test_changes_count_against_the_rate_limit_refusals_do_not(alice, general, auth_client, settings):
    from messaging.ratelimit import reset_message_rate_limiter

    message = post(alice, "hello")
    settings.CHAT_MESSAGE_BURST, settings.CHAT_MESSAGE_RATE = 2, 0.001
    reset_message_rate_limiter()
    client = auth_client(alice)
    assert (
        client.post(
            f"/api/messages/{message.id}/reactions", {"emoji": "bad emoji"}, format="json"
        ).status_code
        == 400
    )
    assert client.patch(f"/api/messages/{message.id}", {"content": "hello"}, format="json").status_code == 200
    assert client.patch(f"/api/messages/{message.id}", {"content": "one"}, format="json").status_code == 200
    assert (
        client.post(f"/api/messages/{message.id}/reactions", {"emoji": "👍"}, format="json").status_code
        == 200
    )
    refused = client.patch(f"/api/messages/{message.id}", {"content": "three"}, format="json")
    assert refused.status_code == 429
    assert Message.objects.get().content == "one"
