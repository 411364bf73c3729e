"""Channel membership and its events on open sockets, by WebSocket frames and by REST."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chatrooms import services as channel_services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def create_channel():
    async def create(owner, name):
        return await database_sync_to_async(channel_services.channel_create)(user=owner, name=name)

    return create


async def test_channel_messages_reach_members_only(make_user, ws_connect, create_channel):
    owner, member, outsider = [await database_sync_to_async(make_user)() for _ in range(3)]
    await create_channel(owner, "Garden")
    await database_sync_to_async(channel_services.channel_join)(user=member, name="garden")
    o, m, x = await ws_connect(owner), await ws_connect(member), await ws_connect(outsider)
    assert m.ready["channels"] == ["Garden"]
    await o.send({"type": "message", "channel": "GARDEN", "content": "roses", "client_id": "r"})
    got = await o.collect("ack", "message")
    assert got["message"]["message"]["channel"] == "Garden"
    assert (await m.recv_type("message"))["message"]["content"] == "roses"
    await x.nothing(ignore=("presence",))


async def test_ws_join_subscribes_every_own_socket_and_tells_members(make_user, ws_connect, create_channel):
    owner, joiner = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "den")
    o = await ws_connect(owner)
    first, second = await ws_connect(joiner), await ws_connect(joiner)
    await first.send({"type": "join", "channel": "DEN"})
    for own in (first, second):
        assert await own.recv_type("subscribed") == {"type": "subscribed", "channel": "den"}
        assert await own.recv_type("member_joined") == {
            "type": "member_joined",
            "channel": "den",
            "username": joiner.username,
        }
    assert await o.recv_type("member_joined") == {
        "type": "member_joined",
        "channel": "den",
        "username": joiner.username,
    }
    # Delivery starts at once, without reconnecting.
    await o.send({"type": "message", "channel": "den", "content": "welcome"})
    for own in (first, second):
        assert (await own.recv_type("message"))["message"]["content"] == "welcome"
    # Joining twice is not an error and announces nothing.
    await first.send({"type": "join", "channel": "den"})
    await first.nothing(ignore=("presence",))


async def test_rest_join_reaches_open_sockets(make_user, ws_connect, create_channel, auth_client):
    owner, joiner = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "hall")
    socket = await ws_connect(joiner)
    client = await database_sync_to_async(auth_client)(joiner)
    response = await database_sync_to_async(client.post)("/api/channels/hall/join")
    assert response.status_code == 200
    assert await socket.recv_type("subscribed") == {"type": "subscribed", "channel": "hall"}


async def test_creating_a_channel_subscribes_the_owner(make_user, ws_connect, create_channel):
    owner = await database_sync_to_async(make_user)()
    socket = await ws_connect(owner)
    await create_channel(owner, "fresh")
    assert await socket.recv_type("subscribed") == {"type": "subscribed", "channel": "fresh"}
    await socket.send({"type": "message", "channel": "fresh", "content": "first"})
    assert (await socket.collect("ack", "message"))["ack"]["seq"] == 1


async def test_leave_stops_delivery_and_tells_members(make_user, ws_connect, create_channel):
    owner, member = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "room")
    await database_sync_to_async(channel_services.channel_join)(user=member, name="room")
    o, m = await ws_connect(owner), await ws_connect(member)
    await m.send({"type": "leave", "channel": "room"})
    assert await m.recv_type("member_left") == {
        "type": "member_left",
        "channel": "room",
        "username": member.username,
    }
    assert await m.recv_type("unsubscribed") == {"type": "unsubscribed", "channel": "room"}
    assert (await o.recv_type("member_left"))["username"] == member.username
    await o.send({"type": "message", "channel": "room", "content": "gone?"})
    await o.collect("ack", "message")
    await m.nothing(ignore=("presence",))


async def test_leave_errors(make_user, ws_connect, create_channel):
    owner, other = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "mine")
    o, x = await ws_connect(owner), await ws_connect(other)
    await o.send({"type": "leave", "channel": "mine"})
    assert (await o.recv_type("error"))["code"] == "owner_cannot_leave"
    await x.send({"type": "leave", "channel": "mine"})
    assert (await x.recv_type("error"))["code"] == "not_a_member"
    await x.send({"type": "join", "channel": "nope"})
    assert (await x.recv_type("error"))["code"] == "channel_not_found"


async def test_typing_reaches_other_subscribers_only(make_user, ws_connect, create_channel):
    owner, member, outsider = [await database_sync_to_async(make_user)() for _ in range(3)]
    await create_channel(owner, "quiet")
    await database_sync_to_async(channel_services.channel_join)(user=member, name="quiet")
    o, o2, m, x = (
        await ws_connect(owner),
        await ws_connect(owner),
        await ws_connect(member),
        await ws_connect(outsider),
    )
    await o.send({"type": "typing", "channel": "QUIET"})
    assert await m.recv_type("typing") == {"type": "typing", "channel": "quiet", "username": owner.username}
    await o.nothing(ignore=("presence",))
    await o2.nothing(ignore=("presence",))
    await x.nothing(ignore=("presence",))
    await x.send({"type": "typing", "channel": "quiet"})
    assert (await x.recv_type("error"))["code"] == "not_a_member"
    await m.send({"type": "typing", "channel": None})
    assert (await x.recv()) == {"type": "typing", "channel": None, "username": member.username}


async def test_channel_deleted_unsubscribes(make_user, ws_connect, create_channel):
    owner, member = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "doomed")
    await database_sync_to_async(channel_services.channel_join)(user=member, name="doomed")
    o, m = await ws_connect(owner), await ws_connect(member)
    await database_sync_to_async(channel_services.channel_delete)(user=owner, name="doomed")
    for socket in (o, m):
        assert await socket.recv_type("channel_deleted") == {"type": "channel_deleted", "channel": "doomed"}
        await socket.nothing(ignore=("presence",))


async def test_history_request_pages_one_channel(make_user, ws_connect, create_channel):
    from messaging.services import message_send

    owner = await database_sync_to_async(make_user)()
    await create_channel(owner, "log")
    for n in range(7):
        await database_sync_to_async(message_send)(user=owner, channel_name="log", content=f"c{n}")
        await database_sync_to_async(message_send)(user=owner, channel_name=None, content=f"l{n}")
    socket = await ws_connect(owner)
    await socket.send({"type": "history", "channel": "log", "limit": 3})
    page = await socket.recv_type("history")
    assert (page["reason"], page["channel"], page["has_more"]) == ("request", "log", True)
    assert [m["content"] for m in page["messages"]] == ["c4", "c5", "c6"]
    await socket.send(
        {"type": "history", "channel": "log", "before": page["messages"][0]["id"], "limit": 500}
    )
    older = await socket.recv_type("history")
    assert [m["content"] for m in older["messages"]] == ["c0", "c1", "c2", "c3"]
    assert older["has_more"] is False
    await socket.send({"type": "history", "channel": None})
    lobby = await socket.recv_type("history")
    assert lobby["channel"] is None and [m["content"] for m in lobby["messages"]] == [
        f"l{n}" for n in range(7)
    ]
    # An id from another channel is refused.
    await socket.send({"type": "history", "channel": None, "before": page["messages"][0]["id"]})
    assert (await socket.recv_type("error"))["code"] == "invalid_message"


async def test_sync_sends_missed_messages_per_channel_then_synced(make_user, ws_connect, create_channel):
    from messaging.services import message_send

    owner, stranger = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "alpha")
    await create_channel(stranger, "private")
    for n in range(3):
        await database_sync_to_async(message_send)(user=owner, channel_name="alpha", content=f"a{n}")
    await database_sync_to_async(message_send)(user=owner, channel_name=None, content="lobby")
    socket = await ws_connect(owner)
    await socket.send({"type": "sync", "after": {"alpha": 1, "": 1, "private": 0, "missing": 0}})
    alpha = await socket.recv()
    assert (alpha["type"], alpha["reason"], alpha["channel"]) == ("history", "sync", "alpha")
    assert [m["seq"] for m in alpha["messages"]] == [2, 3] and alpha["has_more"] is False
    # Nothing missed in the lobby: no frame for it; the two bad channels get errors.
    assert (await socket.recv())["code"] == "not_a_member"
    assert (await socket.recv())["code"] == "channel_not_found"
    assert await socket.recv() == {"type": "synced"}


async def test_sync_pages_large_gaps_in_frames_of_200(make_user, ws_connect):
    from messaging.models import Message

    user = await database_sync_to_async(make_user)()

    def bulk():
        Message.objects.bulk_create(Message(seq=n, rev=n, user=user, content=f"m{n}") for n in range(1, 451))

    await database_sync_to_async(bulk)()
    socket = await ws_connect(user)
    await socket.send({"type": "sync", "after": {"": 0}})
    sizes = []
    while (frame := await socket.recv())["type"] == "history":
        sizes.append(len(frame["messages"]))
    assert sizes == [200, 200, 50] and frame == {"type": "synced"}


async def test_a_new_member_gets_messages_after_the_join_not_before(make_user, ws_connect, create_channel):
    from messaging.services import message_send

    owner, joiner = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "older")
    for n in range(3):
        await database_sync_to_async(message_send)(user=owner, channel_name="older", content=f"before {n}")
    socket = await ws_connect(joiner)
    await database_sync_to_async(channel_services.channel_join)(user=joiner, name="older")
    await database_sync_to_async(message_send)(user=owner, channel_name="older", content="after")
    frames = []
    while len([f for f in frames if f["type"] == "message"]) < 1:
        frames.append(await socket.recv())
    assert [f["type"] for f in frames if f["type"] != "presence"] == [
        "subscribed",
        "member_joined",
        "message",
    ]
    assert frames[-1]["message"]["seq"] == 4
    await socket.nothing(ignore=("presence",))


async def test_housekeeping_repairs_subscriptions_whose_envelopes_were_lost(
    make_user, ws_connect, create_channel, settings
):
    """A join and a leave written with no envelope (as if lost in a Redis outage) reach the socket anyway."""
    from chatrooms.models import Channel, Membership
    from messaging.services import message_send

    settings.CHAT_HOUSEKEEPING_SECONDS = 0.2
    owner, user = await database_sync_to_async(make_user)(), await database_sync_to_async(make_user)()
    await create_channel(owner, "left")
    await create_channel(owner, "joined")
    await database_sync_to_async(channel_services.channel_join)(user=user, name="left")
    socket = await ws_connect(user)
    assert socket.ready["channels"] == ["left"]

    def change_behind_the_sockets_back():
        Membership.objects.filter(user=user, channel__name="left").delete()
        Membership.objects.create(user=user, channel=Channel.objects.get(name="joined"))

    await database_sync_to_async(change_behind_the_sockets_back)()
    frames = await socket.collect("subscribed", "unsubscribed", timeout=5)
    assert (frames["subscribed"]["channel"], frames["unsubscribed"]["channel"]) == ("joined", "left")
    await database_sync_to_async(message_send)(user=owner, channel_name="left", content="not for you")
    await database_sync_to_async(message_send)(user=owner, channel_name="joined", content="for you")
    assert (await socket.recv_type("message"))["message"]["content"] == "for you"
    await socket.nothing(ignore=("presence",))
