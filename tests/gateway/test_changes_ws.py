"""Version 4 over the WebSocket: edit, delete, react and unreact frames, their acks and announcements,
and sync by position."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chatrooms import services as channel_services
from messaging import changes
from messaging.services import message_send

pytestmark = pytest.mark.django_db(transaction=True)


async def members(make_user):
    alice = await database_sync_to_async(make_user)("alice")
    bob = await database_sync_to_async(make_user)("bob")
    await database_sync_to_async(channel_services.channel_create)(user=alice, name="General")
    await database_sync_to_async(channel_services.channel_join)(user=bob, name="General")
    return alice, bob


async def two_members(make_user, ws_connect):
    alice, bob = await members(make_user)
    return await ws_connect(alice), await ws_connect(bob)


async def send(client, content: str, **extra) -> dict:
    await client.send({"type": "message", "channel": "General", "content": content, **extra})
    return (await client.collect("ack", "message"))["ack"]


async def test_change_frames_are_acked_with_rev_and_announced(make_user, ws_connect):
    alice, bob = await two_members(make_user, ws_connect)
    ack = await send(alice, "helo")
    await bob.recv_type("message")
    frames = [
        ({"type": "edit", "id": ack["id"], "content": "hello", "client_id": "e1"}, "edited", 2),
        ({"type": "react", "id": ack["id"], "emoji": "👍", "client_id": "r1"}, "reactions", 3),
        ({"type": "unreact", "id": ack["id"], "emoji": "👍", "client_id": "u1"}, "reactions", 4),
        ({"type": "delete", "id": ack["id"], "client_id": "d1"}, "deleted", 5),
    ]
    for frame, change, rev in frames:
        await alice.send(frame)
        got = await alice.collect("ack", "message_updated")
        assert got["ack"] == {
            "type": "ack",
            "client_id": frame["client_id"],
            "id": ack["id"],
            "seq": 1,
            "rev": rev,
        }
        updated = await bob.recv_type("message_updated")
        assert (updated["change"], updated["message"]["rev"]) == (change, rev)
        assert updated["message"] == got["message_updated"]["message"]
    assert updated["message"]["content"] == "" and updated["message"]["deleted"] is True


async def test_a_change_that_changes_nothing_is_acked_with_the_same_rev_and_not_announced(
    make_user, ws_connect
):
    alice, bob = await two_members(make_user, ws_connect)
    ack = await send(alice, "same")
    await bob.recv_type("message")
    await alice.send({"type": "edit", "id": ack["id"], "content": "same"})
    assert await alice.recv_type("ack") == {
        "type": "ack",
        "client_id": None,
        "id": ack["id"],
        "seq": 1,
        "rev": 1,
    }
    await bob.nothing()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "edit", "content": "x"}, "message_not_found"),  # no id
        ({"type": "edit", "id": "not-a-uuid", "content": "x"}, "message_not_found"),
        ({"type": "react", "id": "TARGET", "emoji": "two words"}, "invalid_emoji"),
        ({"type": "react", "id": "TARGET", "emoji": 5}, "invalid_emoji"),
        ({"type": "edit", "id": "TARGET", "content": ""}, "content_empty"),
        ({"type": "edit", "id": "TARGET"}, "invalid_message"),  # no content
    ],
)
async def test_refused_change_frames_get_error_frames(make_user, ws_connect, frame, code):
    alice, _bob = await two_members(make_user, ws_connect)
    ack = await send(alice, "target")
    if frame.get("id") == "TARGET":
        frame = {**frame, "id": ack["id"]}
    await alice.send({**frame, "client_id": "c-9"})
    error = await alice.recv_type("error")
    assert (error["code"], error["client_id"]) == (code, "c-9")


async def test_others_cannot_edit_and_deleted_messages_refuse_changes(make_user, ws_connect):
    alice, bob = await two_members(make_user, ws_connect)
    ack = await send(alice, "mine")
    await bob.recv_type("message")
    await bob.send({"type": "edit", "id": ack["id"], "content": "yours"})
    assert (await bob.recv_type("error"))["code"] == "not_allowed"
    await bob.send({"type": "delete", "id": ack["id"]})
    assert (await bob.recv_type("error"))["code"] == "not_allowed"
    await alice.send({"type": "delete", "id": ack["id"]})
    await alice.collect("ack", "message_updated")
    await alice.send({"type": "react", "id": ack["id"], "emoji": "👍"})
    assert (await alice.recv_type("error"))["code"] == "message_deleted"


async def test_reply_to_over_the_socket(make_user, ws_connect):
    alice, bob = await two_members(make_user, ws_connect)
    ack = await send(alice, "question")
    await bob.recv_type("message")
    await bob.send({"type": "message", "channel": "General", "content": "answer", "reply_to": ack["id"]})
    got = await bob.collect("ack", "message")
    assert got["message"]["message"]["reply_to"] == ack["id"]
    await bob.send(
        {"type": "message", "channel": "General", "content": "x", "reply_to": "nope", "client_id": "b"}
    )
    assert (await bob.recv_type("error"))["code"] == "invalid_message"


async def test_sync_returns_current_states_in_rev_order(make_user, ws_connect):
    user, bob_user = await members(make_user)
    one = (
        await database_sync_to_async(message_send)(user=user, channel_name="General", content="one")
    ).message
    two = (
        await database_sync_to_async(message_send)(user=user, channel_name="General", content="two")
    ).message
    three = (
        await database_sync_to_async(message_send)(user=user, channel_name="General", content="three")
    ).message
    await database_sync_to_async(changes.message_edit)(user=user, message_id=str(one.id), content="one!")
    await database_sync_to_async(changes.reaction_add)(user=user, message_id=str(three.id), emoji="👍")
    await database_sync_to_async(changes.message_delete)(user=user, message_id=str(two.id))
    bob = await ws_connect(bob_user)  # missed all of it
    await bob.send({"type": "sync", "after": {"General": 3}})
    history = await bob.recv_type("history")
    assert (history["reason"], history["channel"], history["has_more"]) == ("sync", "General", False)
    assert [(m["content"], m["rev"]) for m in history["messages"]] == [("one!", 4), ("three", 5), ("", 6)]
    await bob.recv_type("synced")
    await bob.send({"type": "sync", "after": {"General": 6}})
    await bob.recv_type("synced")  # nothing missed: no history frame


async def test_sync_sends_at_most_chat_sync_max_then_has_more(make_user, ws_connect, settings):
    settings.CHAT_SYNC_MAX = 250
    alice, bob_user = await members(make_user)
    for n in range(260):
        await database_sync_to_async(message_send)(user=alice, channel_name="General", content=f"m{n}")
    bob = await ws_connect(bob_user)
    await bob.send({"type": "sync", "after": {"General": 0}})
    first, second = await bob.recv_type("history"), await bob.recv_type("history")
    assert (len(first["messages"]), first["has_more"]) == (200, False)
    assert (len(second["messages"]), second["has_more"]) == (50, True)
    await bob.recv_type("synced")
    await bob.send({"type": "sync", "after": {"General": second["messages"][-1]["rev"]}})
    rest = await bob.recv_type("history")
    assert ([m["rev"] for m in rest["messages"]], rest["has_more"]) == (list(range(251, 261)), False)
