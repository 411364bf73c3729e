"""Every admin action, driven through the admin's own pages, reaches live sockets as the API does.

A superuser's browser is Django's test client; the sockets are the real ASGI
app under WebsocketCommunicator. Channels of every kind are made with the ORM.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from rest_framework.test import APIClient

from accounts.models import AuditRecord, LoginSession, User
from chatrooms import services as channel_services
from chatrooms.models import Channel
from messaging.models import Message
from messaging.services import message_send
from tests.accounts.test_admin import form_data
from tests.conftest import DEFAULT_PASSWORD
from tests.moderation.helpers import audit_rows, direct_channel, private_channel, stored_message

pytestmark = pytest.mark.django_db(transaction=True)

USERS = "/admin/accounts/user/"
MESSAGES = "/admin/messaging/message/"
CHANNELS = "/admin/chatrooms/channel/"

db = database_sync_to_async


async def admin_get(admin_client, url: str):
    response = await db(admin_client.get)(url)
    assert response.status_code == 200, url
    return response


async def admin_post(admin_client, url: str, data: dict):
    response = await db(admin_client.post)(url, data)
    assert response.status_code == 302, getattr(response, "context", None) and response.context.get("errors")
    return response


# --- messages -----------------------------------------------------------------


async def delete_through_the_delete_page(admin_client, message: Message) -> None:
    url = f"{MESSAGES}{message.id}/delete/"
    await admin_get(admin_client, url)  # the confirmation page
    await admin_post(admin_client, url, {"post": "yes"})


async def test_deleting_a_lobby_message_announces_it_and_audits(make_user, admin_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    watcher = await ws_connect(bob)
    message = (await db(message_send)(user=ada, channel_name=None, content="rude words")).message
    await watcher.recv_type("message")
    await delete_through_the_delete_page(admin_client, message)
    updated = await watcher.recv_type("message_updated")
    assert (updated["change"], updated["message"]["id"]) == ("deleted", str(message.id))
    assert (updated["message"]["deleted"], updated["message"]["content"]) == (True, "")
    record = await db(AuditRecord.objects.get)()
    assert (record.actor, record.action, record.target) == (
        "moderator",
        "message_deleted",
        f"message {message.id}",
    )
    assert record.detail == "by ada in the lobby (seq 1)"
    assert "rude" not in record.detail


async def test_the_admin_deletes_messages_of_private_and_direct_channels(make_user, admin_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    secret = await db(private_channel)("secret", owner=ada, members=[bob])
    direct = await db(direct_channel)(ada, bob)
    in_secret = await db(stored_message)(user=ada, channel=secret, content="private words")
    in_direct = await db(stored_message)(user=ada, channel=direct, content="direct words")
    watcher = await ws_connect(bob)
    assert {"secret", "@ada+bob"} <= set(watcher.ready["channels"])
    listed = await admin_get(admin_client, f"{MESSAGES}?q=words")
    assert {m.id for m in listed.context["cl"].result_list} == {in_secret.id, in_direct.id}
    for message, channel in ((in_secret, "secret"), (in_direct, "@ada+bob")):
        await delete_through_the_delete_page(admin_client, message)
        updated = await watcher.recv_type("message_updated")
        assert (updated["change"], updated["message"]["channel"]) == ("deleted", channel)
        assert updated["message"]["id"] == str(message.id)
    assert await db(audit_rows)() == [
        ("moderator", "message_deleted", f"message {in_secret.id}"),
        ("moderator", "message_deleted", f"message {in_direct.id}"),
    ]
    details = await db(list)(AuditRecord.objects.order_by("created_at").values_list("detail", flat=True))
    assert details == ["by ada in channel secret (seq 1)", "by ada in channel @ada+bob (seq 1)"]


async def test_the_bulk_delete_action_announces_each_and_audits_each(make_user, admin_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    await db(channel_services.channel_create)(user=ada, name="general")
    await db(channel_services.channel_join)(user=bob, name="general")
    watcher = await ws_connect(bob)
    messages = [await db(stored_message)(user=ada, channel=None, content=f"m{n}") for n in range(3)]
    ids = [str(message.id) for message in messages]
    data = {"action": "delete_selected", "_selected_action": ids}
    confirm = await db(admin_client.post)(MESSAGES, data)  # the confirmation page
    assert confirm.status_code == 200
    await admin_post(admin_client, MESSAGES, {**data, "post": "yes"})
    seen = set()
    for _ in ids:
        updated = await watcher.recv_type("message_updated")
        assert updated["change"] == "deleted"
        seen.add(updated["message"]["id"])
    assert seen == set(ids)
    assert sorted(target for _, _, target in await db(audit_rows)()) == sorted(f"message {i}" for i in ids)


async def test_the_admin_deleting_its_own_message_is_not_moderation(
    make_user, superuser, admin_client, ws_connect
):
    bob = await db(make_user)("bob")
    watcher = await ws_connect(bob)
    message = await db(stored_message)(user=superuser, channel=None, content="my own")
    await delete_through_the_delete_page(admin_client, message)
    assert (await watcher.recv_type("message_updated"))["change"] == "deleted"
    assert await db(audit_rows)() == []


async def test_deleting_a_deleted_message_in_the_admin_changes_nothing(make_user, admin_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    message = await db(stored_message)(user=ada, channel=None, content="once")
    watcher = await ws_connect(bob)
    await delete_through_the_delete_page(admin_client, message)
    await watcher.recv_type("message_updated")
    await delete_through_the_delete_page(admin_client, message)
    await watcher.nothing()
    assert len(await db(audit_rows)()) == 1
    assert (await db(Message.objects.get)(id=message.id)).rev == 2


# --- channels (their audit record is the channel moderation's) ------------------


async def test_deleting_a_channel_in_the_admin_announces_channel_deleted(make_user, admin_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    secret = await db(private_channel)("secret", owner=ada, members=[bob])
    watcher = await ws_connect(bob)
    url = f"{CHANNELS}{secret.id}/delete/"
    await admin_get(admin_client, url)
    await admin_post(admin_client, url, {"post": "yes"})
    assert await watcher.recv_type("channel_deleted") == {"type": "channel_deleted", "channel": "secret"}
    assert not await db(Channel.objects.filter(id=secret.id).exists)()


async def test_the_channel_changelist_shows_private_and_direct_channels(make_user, admin_client):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    await db(private_channel)("secret", owner=ada, members=[bob])
    await db(direct_channel)(ada, bob)
    listed = await admin_get(admin_client, CHANNELS)
    assert {channel.name for channel in listed.context["cl"].result_list} == {"secret", "@ada+bob"}


# --- users ----------------------------------------------------------------------


async def test_the_deactivate_action_closes_sockets_4403_and_audits(make_user, admin_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    ada_sockets = [await ws_connect(ada), await ws_connect(ada)]
    bob_socket = await ws_connect(bob)
    await admin_post(admin_client, USERS, {"action": "deactivate_users", "_selected_action": [str(ada.pk)]})
    for socket in ada_sockets:
        assert (await socket.recv_type("__closed__"))["code"] == 4403
    await bob_socket.nothing(ignore=("presence",))
    assert await db(audit_rows)() == [("moderator", "user_deactivated", "user ada")]
    assert (await db(AuditRecord.objects.get)()).detail == "2 session(s) ended"


async def test_unticking_active_in_the_change_form_closes_sockets_4403_and_audits(
    make_user, admin_client, ws_connect
):
    ada = await db(make_user)("ada")
    socket = await ws_connect(ada)
    url = f"{USERS}{ada.pk}/change/"
    page = await admin_get(admin_client, url)
    await admin_post(admin_client, url, await db(form_data)(page, skip={"is_active"}))
    assert (await socket.recv_type("__closed__"))["code"] == 4403
    assert not (await db(User.objects.get)(pk=ada.pk)).is_active
    assert await db(audit_rows)() == [("moderator", "user_deactivated", "user ada")]


async def login_status(username: str) -> int:
    response = await db(APIClient().post)(
        "/api/auth/login", {"username": username, "password": DEFAULT_PASSWORD}, format="json"
    )
    return response.status_code


async def test_the_reactivate_action_lets_the_user_back_in_and_audits(make_user, admin_client, ws_connect):
    ada = await db(make_user)("ada")
    await admin_post(admin_client, USERS, {"action": "deactivate_users", "_selected_action": [str(ada.pk)]})
    assert await login_status("ada") == 401
    await admin_post(admin_client, USERS, {"action": "reactivate_users", "_selected_action": [str(ada.pk)]})
    assert await login_status("ada") == 200
    socket = await ws_connect(ada)  # a socket opens again: ready and history
    assert socket.ready["user"]["username"] == "ada"
    assert await db(audit_rows)() == [
        ("moderator", "user_deactivated", "user ada"),
        ("moderator", "user_reactivated", "user ada"),
    ]


async def test_ticking_active_in_the_change_form_reactivates_and_audits(make_user, admin_client):
    ada = await db(make_user)("ada")
    await db(User.objects.filter(pk=ada.pk).update)(is_active=False)
    url = f"{USERS}{ada.pk}/change/"
    page = await admin_get(admin_client, url)
    await admin_post(admin_client, url, {**(await db(form_data)(page)), "is_active": "on"})
    assert await login_status("ada") == 200
    assert await db(audit_rows)() == [("moderator", "user_reactivated", "user ada")]


async def test_reactivating_an_active_user_records_nothing(make_user, admin_client):
    ada = await db(make_user)("ada")
    await admin_post(admin_client, USERS, {"action": "reactivate_users", "_selected_action": [str(ada.pk)]})
    assert await db(audit_rows)() == []


async def test_setting_a_password_closes_every_socket_4401_and_audits(make_user, admin_client, ws_connect):
    ada = await db(make_user)("ada")
    sockets = [await ws_connect(ada), await ws_connect(ada)]
    url = f"{USERS}{ada.pk}/password/"
    await admin_get(admin_client, url)
    password = "A-new-Password-for-ada-42"
    await admin_post(
        admin_client, url, {"password1": password, "password2": password, "usable_password": "true"}
    )
    for socket in sockets:
        assert (await socket.recv_type("__closed__"))["code"] == 4401
    assert not await db(LoginSession.objects.filter(user=ada, ended_at__isnull=True).exists)()
    assert await login_status("ada") == 401  # the old password no longer works
    record = await db(AuditRecord.objects.get)()
    assert (record.actor, record.action, record.target) == ("moderator", "password_set", "user ada")
    assert record.detail == "password set; 2 session(s) ended"
    assert password not in record.detail


async def test_changing_a_status_in_the_admin_announces_presence(make_user, admin_client, ws_connect):
    ada, bob = await db(make_user)("ada"), await db(make_user)("bob")
    await ws_connect(ada)
    watcher = await ws_connect(bob)
    url = f"{USERS}{ada.pk}/change/"
    page = await admin_get(admin_client, url)
    await admin_post(admin_client, url, {**(await db(form_data)(page)), "status": "away"})
    while True:
        frame = await watcher.recv_type("presence")
        if frame["username"] == "ada":
            break
    assert (frame["status"], frame["is_online"]) == ("away", True)
    assert await db(audit_rows)() == []  # a status is not moderation
