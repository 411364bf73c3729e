"""Who may delete a message over REST and the WebSocket, and the audit record moderation leaves.

The author, the channel's owner (never in a direct channel, which has none),
and staff, among those who can read the message; deleting someone else's
message is audited in the deletion's own transaction.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from accounts.models import AuditRecord, User
from chatrooms import services as channel_services
from chatrooms.models import Channel
from messaging.changes import may_delete
from messaging.models import Message
from tests.moderation.helpers import audit_rows, direct_channel, private_channel, stored_message

pytestmark = pytest.mark.django_db(transaction=True)

db = database_sync_to_async


async def staff_user(make_user, name: str = "staffer") -> User:
    user = await db(make_user)(name)
    user.is_staff = True
    await db(user.save)()
    return user


async def rest_delete(auth_client, user: User, message: Message) -> int:
    client = await db(auth_client)(user)
    return (await db(client.delete)(f"/api/messages/{message.id}")).status_code


async def ws_delete(socket, message: Message) -> dict:
    """Send a ``delete`` frame; the ``ack`` or ``error`` that answers it."""
    await socket.send({"type": "delete", "id": str(message.id), "client_id": "d1"})
    while True:
        frame = await socket.recv()
        if frame["type"] in {"ack", "error"}:
            return frame


async def general(make_user):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    await db(channel_services.channel_create)(user=ada, name="general")
    await db(channel_services.channel_join)(user=bob, name="general")
    return ada, bob, await db(Channel.objects.get)(name="general")


async def test_staff_delete_a_lobby_message_over_rest_announced_and_audited(
    make_user, auth_client, ws_connect
):
    bob, staff = await db(make_user)("bob"), await staff_user(make_user)
    watcher = await ws_connect(bob)
    message = await db(stored_message)(user=bob, channel=None, content="spam")
    assert await rest_delete(auth_client, staff, message) == 204
    updated = await watcher.recv_type("message_updated")
    assert (updated["change"], updated["message"]["id"]) == ("deleted", str(message.id))
    record = await db(AuditRecord.objects.get)()
    assert (record.actor, record.actor_id, record.action, record.target) == (
        "staffer",
        staff.id,
        "message_deleted",
        f"message {message.id}",
    )
    assert record.detail == "by bob in the lobby (seq 1)"


async def test_staff_delete_in_a_channel_they_read_over_the_socket(make_user, ws_connect):
    _ada, bob, channel = await general(make_user)
    staff = await staff_user(make_user)
    await db(channel_services.channel_join)(user=staff, name="general")
    message = await db(stored_message)(user=bob, channel=channel, content="off topic")
    watcher, moderator = await ws_connect(bob), await ws_connect(staff)
    ack = await ws_delete(moderator, message)
    assert (ack["type"], ack["id"], ack["rev"]) == ("ack", str(message.id), 2)
    assert (await watcher.recv_type("message_updated"))["change"] == "deleted"
    assert await db(audit_rows)() == [("staffer", "message_deleted", f"message {message.id}")]
    assert (await db(AuditRecord.objects.get)()).detail == "by bob in channel general (seq 1)"


async def test_staff_cannot_delete_what_they_cannot_read(make_user, auth_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    staff = await staff_user(make_user)
    secret = await db(private_channel)("secret", owner=ada, members=[bob])
    direct = await db(direct_channel)(ada, bob)
    for channel in (secret, direct):
        message = await db(stored_message)(user=bob, channel=channel, content="hidden")
        assert await rest_delete(auth_client, staff, message) == 404
        error = await ws_delete(await ws_connect(staff), message)
        assert error["code"] == "message_not_found"
        assert not (await db(Message.objects.get)(id=message.id)).deleted
    assert await db(audit_rows)() == []


async def test_the_owner_deletes_a_members_message_over_rest_and_the_socket(
    make_user, auth_client, ws_connect
):
    ada, bob, channel = await general(make_user)
    first = await db(stored_message)(user=bob, channel=channel, content="one")
    second = await db(stored_message)(user=bob, channel=channel, content="two")
    assert await rest_delete(auth_client, ada, first) == 204
    assert (await ws_delete(await ws_connect(ada), second))["type"] == "ack"
    assert await db(audit_rows)() == [
        ("ada", "message_deleted", f"message {first.id}"),
        ("ada", "message_deleted", f"message {second.id}"),
    ]


async def test_the_author_deleting_is_not_moderation_and_others_are_refused(
    make_user, auth_client, ws_connect
):
    ada, bob, channel = await general(make_user)
    cid = await db(make_user)("cid")
    await db(channel_services.channel_join)(user=cid, name="general")
    message = await db(stored_message)(user=bob, channel=channel, content="mine")
    assert await rest_delete(auth_client, cid, message) == 403
    assert (await ws_delete(await ws_connect(cid), message))["code"] == "not_allowed"
    assert await rest_delete(auth_client, bob, message) == 204
    assert await db(audit_rows)() == []


async def test_deleting_a_deleted_message_records_nothing_more(make_user, auth_client):
    ada, bob, channel = await general(make_user)
    message = await db(stored_message)(user=bob, channel=channel, content="once")
    assert await rest_delete(auth_client, ada, message) == 204
    assert await rest_delete(auth_client, ada, message) == 204
    assert len(await db(audit_rows)()) == 1


async def test_nobody_moderates_a_direct_channel_but_staff(make_user, auth_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    direct = await db(direct_channel)(ada, bob)
    message = await db(stored_message)(user=bob, channel=direct, content="between us")
    assert await rest_delete(auth_client, ada, message) == 403
    assert (await ws_delete(await ws_connect(ada), message))["code"] == "not_allowed"
    # The rule names the kind: even a direct channel that had an owner gives it no power.
    await db(Channel.objects.filter(id=direct.id).update)(owner=ada)
    assert await rest_delete(auth_client, ada, message) == 403
    assert not (await db(Message.objects.get)(id=message.id)).deleted
    assert await db(audit_rows)() == []


async def test_staff_in_a_direct_channel_may_delete_the_other_users_message(make_user, auth_client):
    ada = await db(make_user)("ada")
    staff = await staff_user(make_user)
    direct = await db(direct_channel)(ada, staff)
    message = await db(stored_message)(user=ada, channel=direct, content="hello")
    assert await rest_delete(auth_client, staff, message) == 204
    assert await db(audit_rows)() == [("staffer", "message_deleted", f"message {message.id}")]


def test_may_delete_rule(make_user):
    ada, bob, cid = make_user("ada"), make_user("bob"), make_user("cid")
    staff = make_user("staffer")
    staff.is_staff = True
    public = channel_services.channel_create(user=ada, name="general")
    secret = private_channel("secret", owner=ada, members=[bob])
    direct = direct_channel(ada, bob)
    Channel.objects.filter(id=direct.id).update(owner=ada)  # never so, but the rule must not rely on it
    direct.refresh_from_db()
    for channel in (None, public, secret, direct):
        message = stored_message(user=bob, channel=channel, content="x")
        assert may_delete(user=bob, message=message)
        assert may_delete(user=staff, message=message)
        assert not may_delete(user=cid, message=message)
        owner_may = channel is not None and channel.kind != Channel.Kind.DIRECT
        assert may_delete(user=ada, message=message) is owner_may
