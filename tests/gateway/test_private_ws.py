"""Private and direct channels on open sockets: hidden channels answer frames as missing ones
(same frame, same queries), and members added or removed, bans, direct channels and staff
deletes take effect on sockets at once."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import connections
from django.test.utils import CaptureQueriesContext

from chatrooms import bans, direct
from chatrooms import services as channel_services
from chatrooms.models import Membership
from messaging.models import Message, StreamSequence
from messaging.services import message_send

pytestmark = pytest.mark.django_db(transaction=True)


def run(fn):
    return database_sync_to_async(fn)


async def users(make_user, *names):
    return [await run(make_user)(name) for name in names]


async def answer(socket, frame: dict, count: int) -> tuple[list[dict], int]:
    """The ``count`` frames answering ``frame`` and the SQL queries run meanwhile (in the database thread)."""
    capture = await run(lambda: CaptureQueriesContext(connections["default"]))()
    await run(capture.__enter__)()
    try:
        await socket.send(frame)
        got = [await socket.recv_type(kind) for kind in ["error", "synced"][:count]]
        await socket.nothing(timeout=0.2)
    finally:
        await run(capture.__exit__)(None, None, None)
    return got, len(capture.captured_queries)


def masked(answer: tuple[list[dict], int], name: str) -> tuple[list[dict], int]:
    frames, queries = answer
    return [
        {k: v.replace(name, "<name>") if k == "detail" else v for k, v in f.items()} for f in frames
    ], queries


FRAMES = [
    ({"type": "message", "channel": "{name}", "content": "hi", "client_id": "c1"}, 1),
    ({"type": "join", "channel": "{name}"}, 1),
    ({"type": "leave", "channel": "{name}"}, 1),
    ({"type": "typing", "channel": "{name}"}, 1),
    ({"type": "history", "channel": "{name}"}, 1),
    ({"type": "sync", "after": {"{name}": 0}}, 2),
    ({"type": "read", "channel": "{name}", "seq": 1}, 1),
]


def fill(value, name):
    if isinstance(value, dict):
        return {fill(k, name): fill(v, name) for k, v in value.items()}
    return name if value == "{name}" else value


@pytest.mark.parametrize(("frame", "count"), FRAMES, ids=[f["type"] for f, _ in FRAMES])
async def test_hidden_channels_answer_frames_as_missing_ones(make_user, ws_connect, frame, count):
    alice, bob, carol = await users(make_user, "alice", "bob", "carol")
    await run(channel_services.channel_create)(user=alice, name="secret", private=True)
    await run(direct.direct_open)(user=alice, username="bob")
    socket = await ws_connect(carol)
    await answer(socket, fill(frame, "warmup"), count)
    for hidden, missing in [("secret", "nosuch"), ("@alice+bob", "@alice+zed"), ("@Alice+BOB", "@alice+zoe")]:
        absent = await answer(socket, fill(frame, missing), count)
        private = await answer(socket, fill(frame, hidden), count)
        # A sync error names the channel asked for, as given: compare with each name masked.
        assert masked(private, hidden) == masked(absent, missing), hidden
        assert private[0][0]["code"] == "channel_not_found"
    assert await run(lambda: carol.memberships.count())() == 0


async def test_added_member_is_subscribed_and_members_told(make_user, ws_connect, auth_client):
    alice, bob, carol = await users(make_user, "alice", "bob", "carol")
    await run(channel_services.channel_create)(user=alice, name="den", private=True)
    await run(channel_services.member_add)(actor=alice, name="den", username="bob")
    a, b, c1, c2 = (
        await ws_connect(alice),
        await ws_connect(bob),
        await ws_connect(carol),
        await ws_connect(carol),
    )
    client = await run(auth_client)(bob)
    response = await run(client.post)("/api/channels/den/members", {"username": "carol"}, format="json")
    assert response.status_code == 200
    joined = {"type": "member_joined", "channel": "den", "username": "carol"}
    for own in (c1, c2):
        assert await own.recv_type("subscribed") == {"type": "subscribed", "channel": "den"}
        assert await own.recv_type("member_joined") == joined
    for other in (a, b):
        assert await other.recv_type("member_joined") == joined
    await a.send({"type": "message", "channel": "den", "content": "welcome"})
    for own in (c1, c2):
        assert (await own.recv_type("message"))["message"]["content"] == "welcome"
    # Adding again: nothing.
    await run(client.post)("/api/channels/den/members", {"username": "carol"}, format="json")
    await a.collect("ack", "message")
    await b.recv_type("message")
    for socket in (a, b, c1, c2):
        await socket.nothing()


async def test_removed_member_is_unsubscribed_and_members_told(make_user, ws_connect, auth_client):
    alice, bob = await users(make_user, "alice", "bob")
    await run(channel_services.channel_create)(user=alice, name="room")
    await run(channel_services.channel_join)(user=bob, name="room")
    a, b = await ws_connect(alice), await ws_connect(bob)
    client = await run(auth_client)(alice)
    assert (await run(client.delete)("/api/channels/room/members/bob")).status_code == 204
    left = {"type": "member_left", "channel": "room", "username": "bob"}
    assert await b.recv_type("member_left") == left
    assert await b.recv_type("unsubscribed") == {"type": "unsubscribed", "channel": "room"}
    assert await a.recv_type("member_left") == left
    await a.send({"type": "message", "channel": "room", "content": "gone"})
    await a.collect("ack", "message")
    await b.nothing()
    # Removing a non-member: nothing.
    assert (await run(client.delete)("/api/channels/room/members/bob")).status_code == 204
    await a.nothing()
    await b.nothing()


async def test_ban_unsubscribes_and_keeps_out(make_user, ws_connect):
    alice, bob = await users(make_user, "alice", "bob")
    await run(channel_services.channel_create)(user=alice, name="room")
    await run(channel_services.channel_join)(user=bob, name="room")
    a, b = await ws_connect(alice), await ws_connect(bob)
    await run(bans.ban_add)(actor=alice, name="room", username="bob", reason="spam")
    left = {"type": "member_left", "channel": "room", "username": "bob"}
    assert await b.recv_type("member_left") == left
    assert await b.recv_type("unsubscribed") == {"type": "unsubscribed", "channel": "room"}
    assert await a.recv_type("member_left") == left
    await b.send({"type": "join", "channel": "room"})
    error = await b.recv_type("error")
    assert error["code"] == "not_allowed"
    await b.send({"type": "message", "channel": "room", "content": "let me in", "client_id": "x"})
    assert (await b.recv_type("error"))["code"] == "not_a_member"
    await a.nothing()
    # Banning again: nothing new.
    await run(bans.ban_add)(actor=alice, name="room", username="bob")
    await a.nothing()
    await b.nothing()


async def test_opening_a_direct_channel_subscribes_both(make_user, ws_connect, auth_client):
    ada, bob = await users(make_user, "ada", "bob")
    a1, a2, b = await ws_connect(ada), await ws_connect(ada), await ws_connect(bob)
    client = await run(auth_client)(bob)
    assert (await run(client.post)("/api/dms/ada")).status_code == 201
    for socket in (a1, a2, b):
        assert await socket.recv_type("subscribed") == {"type": "subscribed", "channel": "@ada+bob"}
        await socket.nothing()
    await b.send({"type": "message", "channel": "@ADA+BOB", "content": "psst"})
    assert (await a1.recv_type("message"))["message"]["channel"] == "@ada+bob"
    await b.collect("ack", "message")
    await a2.recv_type("message")
    # Opening again sends nothing.
    assert (await run(client.post)("/api/dms/ADA")).status_code == 200
    for socket in (a1, a2, b):
        await socket.nothing()


async def test_notes_to_self_subscribe_once(make_user, ws_connect):
    (ada,) = await users(make_user, "ada")
    socket = await ws_connect(ada)
    await run(direct.direct_open)(user=ada, username="ada")
    assert await socket.recv_type("subscribed") == {"type": "subscribed", "channel": "@ada+ada"}
    await socket.nothing()
    await socket.send({"type": "message", "channel": "@ada+ada", "content": "todo"})
    await socket.collect("ack", "message")


async def test_direct_channels_refuse_join_and_leave_over_the_socket(make_user, ws_connect):
    ada, bob = await users(make_user, "ada", "bob")
    await run(direct.direct_open)(user=ada, username="bob")
    socket = await ws_connect(ada)
    assert socket.ready["channels"] == ["@ada+bob"]
    for kind in ("join", "leave"):
        await socket.send({"type": kind, "channel": "@ada+bob"})
        assert (await socket.recv_type("error"))["code"] == "not_allowed"
    await socket.send({"type": "message", "channel": "@ada+bob", "content": "still here"})
    await socket.collect("ack", "message")


async def test_a_direct_channels_messages_reach_only_its_two_users(make_user, ws_connect):
    ada, bob, eve = await users(make_user, "ada", "bob", "eve")
    await run(direct.direct_open)(user=ada, username="bob")
    b, e = await ws_connect(bob), await ws_connect(eve)
    await run(message_send)(user=ada, channel_name="@ada+bob", content="secret")
    assert (await b.recv_type("message"))["message"]["content"] == "secret"
    await e.nothing()


async def test_staff_delete_tells_subscribers(make_user, ws_connect, auth_client):
    alice, mod = await users(make_user, "alice", "mod")
    mod.is_staff = True
    await run(mod.save)(update_fields=["is_staff"])
    await run(channel_services.channel_create)(user=alice, name="doomed")
    socket = await ws_connect(alice)
    client = await run(auth_client)(mod)
    assert (await run(client.delete)("/api/channels/doomed")).status_code == 204
    assert await socket.recv_type("channel_deleted") == {"type": "channel_deleted", "channel": "doomed"}


@pytest.mark.parametrize(("private", "code"), [(False, "not_a_member"), (True, "channel_not_found")])
async def test_a_member_removed_before_the_socket_heard_of_it_is_refused(
    make_user, ws_connect, private, code
):
    """The socket sends to the channels it is subscribed to by id, and the write checks the
    membership again: a member removed a moment ago (the socket not yet unsubscribed) stores
    nothing and gets the refusal a non-member gets."""
    alice, bob = await users(make_user, "alice", "bob")
    channel = await run(channel_services.channel_create)(user=alice, name="room", private=private)
    if private:
        await run(channel_services.member_add)(actor=alice, name="room", username="bob")
    else:
        await run(channel_services.channel_join)(user=bob, name="room")
    socket = await ws_connect(bob)
    assert "room" in socket.ready["channels"]
    # Removed behind the socket's back: no unsubscribe envelope reaches it.
    await run(lambda: Membership.objects.filter(channel=channel, user=bob).delete())()
    await socket.send({"type": "message", "channel": "room", "content": "still here?", "client_id": "c1"})
    error = await socket.recv_type("error")
    assert (error["code"], error["client_id"]) == (code, "c1")
    assert await run(lambda: Message.objects.filter(channel=channel).count())() == 0
    assert await run(lambda: StreamSequence.objects.get(stream=channel.id.hex).last_seq)() == 0
    # Still a member elsewhere: the lobby takes the next message as usual.
    await socket.send({"type": "message", "channel": None, "content": "lobby", "client_id": "c2"})
    assert (await socket.collect("ack", "message"))["ack"]["client_id"] == "c2"
