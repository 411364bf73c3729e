"""Read state over real sockets: the read frame, its broadcast, ready's unread, a connect's cost."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from chatrooms import services as channel_services
from messaging import changes
from messaging.services import message_send
from tests.conftest import login_tokens
from tests.gateway.conftest import Client, open_socket

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def setup_ops(alice, bob) -> None:
    channel_services.channel_create(user=alice, name="Ops")
    channel_services.channel_join(user=bob, name="ops")


@database_sync_to_async
def post(user, channel, content):
    return message_send(user=user, channel_name=channel, content=content).message


async def test_a_read_reaches_every_socket_of_the_user_and_a_no_op_sends_nothing(make_user, ws_connect):
    alice, bob = (
        await database_sync_to_async(make_user)("alice"),
        await database_sync_to_async(make_user)("bob"),
    )
    await setup_ops(alice, bob)
    for n in range(3):
        await post(bob, "ops", f"m{n} @alice" if n == 2 else f"m{n}")
    one, two = await ws_connect(alice), await ws_connect(alice)
    other = await ws_connect(bob)
    await one.send({"type": "read", "channel": "OPS", "seq": 1})
    expected = {"type": "read", "channel": "Ops", "last_read_seq": 1, "unread": 2, "mentions": 1}
    assert await one.recv_type("read") == expected
    assert await two.recv_type("read") == expected
    await other.nothing()  # another user's read is not theirs
    await one.send({"type": "read", "channel": "ops", "seq": 1})  # no move: nothing, no answer
    await one.send({"type": "read", "channel": None, "seq": 0})
    await one.nothing(ignore=("presence",))
    await two.nothing(ignore=("presence",))
    await two.send({"type": "read", "channel": "ops", "seq": 99})  # clamped to the last position
    expected = {"type": "read", "channel": "Ops", "last_read_seq": 3, "unread": 0, "mentions": 0}
    assert await one.recv_type("read") == expected
    assert await two.recv_type("read") == expected


async def test_read_frame_refusals_are_error_frames(make_user, ws_connect):
    alice, bob = (
        await database_sync_to_async(make_user)("alice"),
        await database_sync_to_async(make_user)("bob"),
    )
    await database_sync_to_async(channel_services.channel_create)(user=bob, name="bobs")
    client = await ws_connect(alice)
    cases = [
        ({"type": "read", "channel": "bobs", "seq": 1}, "not_a_member"),
        ({"type": "read", "channel": "nowhere", "seq": 1}, "channel_not_found"),
        ({"type": "read", "channel": None, "seq": True}, "invalid_message"),
        ({"type": "read", "channel": None, "seq": "1"}, "invalid_message"),
        ({"type": "read", "channel": None, "seq": -1}, "invalid_message"),
        ({"type": "read", "channel": None}, "invalid_message"),
        ({"type": "read", "seq": 1}, "invalid_message"),
    ]
    for frame, code in cases:
        await client.send(frame)
        error = await client.recv_type("error")
        assert error["code"] == code, (frame, error)
    await client.send({"type": "ping"})
    assert await client.recv_type("pong") == {"type": "pong"}


async def test_posting_moves_the_senders_position_and_tells_all_their_sockets(make_user, ws_connect):
    alice, bob = (
        await database_sync_to_async(make_user)("alice"),
        await database_sync_to_async(make_user)("bob"),
    )
    await setup_ops(alice, bob)
    await post(bob, "ops", "before")
    sender, tab = await ws_connect(alice), await ws_connect(alice)
    listener = await ws_connect(bob)
    await sender.send({"type": "message", "channel": "ops", "content": "mine", "client_id": "k"})
    frames = await sender.collect("ack", "message", "read")
    expected = {"type": "read", "channel": "Ops", "last_read_seq": 2, "unread": 0, "mentions": 0}
    assert frames["read"] == expected and frames["ack"]["seq"] == 2
    assert (await tab.collect("message", "read"))["read"] == expected
    assert (await listener.recv_type("message"))["message"]["seq"] == 2
    await listener.nothing()  # bob's position did not move: no read frame for him
    # An edit takes a position but makes nothing unread, and moves nobody's position.
    message = await post(bob, "ops", "later")
    await database_sync_to_async(changes.message_edit)(user=bob, message_id=str(message.id), content="edited")
    assert (await sender.recv_type("message"))["message"]["seq"] == 3
    assert (await sender.recv_type("message_updated"))["message"]["rev"] == 4
    await sender.send({"type": "read", "channel": "ops", "seq": 3})
    read = await sender.recv_type("read")
    assert (read["last_read_seq"], read["unread"]) == (3, 0)
    await sender.send({"type": "read", "channel": "ops", "seq": 4})  # the edit's position: nothing unread
    read = await sender.recv_type("read")
    assert (read["last_read_seq"], read["unread"]) == (4, 0)


async def test_ready_shows_unread_for_the_lobby_and_every_channel(make_user, ws_connect):
    alice, bob = (
        await database_sync_to_async(make_user)("alice"),
        await database_sync_to_async(make_user)("bob"),
    )
    await setup_ops(alice, bob)
    await post(alice, "ops", "mine")
    await post(bob, "ops", "hi @alice")
    deleted = await post(bob, "ops", "gone")
    await database_sync_to_async(changes.message_delete)(user=bob, message_id=str(deleted.id))
    await post(bob, None, "lobby @alice")
    await post(bob, None, "lobby")
    client = await ws_connect(alice)
    assert client.ready["unread"] == {
        "": {"last_read_seq": 0, "last_seq": 2, "unread": 2, "mentions": 1},
        "Ops": {"last_read_seq": 1, "last_seq": 4, "unread": 1, "mentions": 1},
    }


# --- what a connect costs ------------------------------------------------------------


@database_sync_to_async
def add_channels(user, other, first: int, count: int) -> None:
    for n in range(first, first + count):
        channel = channel_services.channel_create(user=other, name=f"room{n}")
        channel_services.channel_join(user=user, name=channel.name)
        message_send(user=other, channel_name=channel.name, content=f"hi @{user.username} {n}")


class QueryCounter:
    """Counts the statements run on the database thread's connection (where every consumer step runs)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


@database_sync_to_async
def _install(counter: QueryCounter) -> None:
    connection.execute_wrappers.append(counter)


@database_sync_to_async
def _remove(counter: QueryCounter) -> None:
    connection.execute_wrappers.remove(counter)


async def connect_cost(user) -> tuple[int, dict]:
    """Statements from the handshake to the connect ``history`` frame (cold history cache)."""
    from messaging.selectors import reset_recent_cache

    token = (await database_sync_to_async(login_tokens)(user))["access"]
    reset_recent_cache()
    counter = QueryCounter()
    await _install(counter)
    try:
        client = Client(await open_socket(user.username, token), user)
        ready = await client.recv_type("ready")
        history = await client.recv_type("history")
    finally:
        await _remove(counter)
    await client.close()
    assert history["messages"]
    return counter.count, ready


async def test_a_connect_costs_the_same_queries_in_2_and_in_200_channels(make_user):
    alice, bob = (
        await database_sync_to_async(make_user)("alice"),
        await database_sync_to_async(make_user)("bob"),
    )
    await post(bob, None, "lobby")
    costs = {}
    await add_channels(alice, bob, 0, 2)
    costs[2], ready = await connect_cost(alice)
    assert len(ready["unread"]) == 3
    await add_channels(alice, bob, 2, 18)
    costs[20], ready = await connect_cost(alice)
    await add_channels(alice, bob, 20, 180)
    costs[200], ready = await connect_cost(alice)
    assert len(ready["unread"]) == 201
    assert all(
        state["unread"] == 1 and state["mentions"] == 1 for name, state in ready["unread"].items() if name
    )
    print(f"connect queries by channel count: {costs}")
    assert costs[2] == costs[20] == costs[200], costs
