"""The admin moderates messages through the API's own path: a deletion is an announced tombstone."""

from __future__ import annotations

import orjson
import pytest

from accounts.models import AuditRecord
from messaging.models import Message
from messaging.services import message_send

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/messaging/message/"


@pytest.fixture
def staff_client(client, make_user):
    staff = make_user("moderator")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


def test_the_change_page_shows_a_message_read_only(staff_client, alice):
    message = message_send(user=alice, channel_name=None, content="look but do not touch").message
    page = staff_client.get(f"{CHANGELIST}{message.id}/change/")
    assert page.status_code == 200
    assert b"look but do not touch" in page.content
    assert "content" not in page.context["adminform"].form.fields


def test_deleting_in_the_admin_leaves_an_announced_tombstone(staff_client, alice, published):
    message = message_send(user=alice, channel_name=None, content="rude words").message
    with published.capture():
        response = staff_client.post(f"{CHANGELIST}{message.id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    tombstone = Message.objects.get(id=message.id)
    assert (tombstone.deleted, tombstone.content, tombstone.rev) == (True, "", 2)
    (frame,) = [orjson.loads(event["frame"]) for _, event in published.calls]
    assert (frame["type"], frame["change"], frame["message"]["id"]) == (
        "message_updated",
        "deleted",
        str(message.id),
    )
    record = AuditRecord.objects.get()
    assert (record.actor, record.action, record.target, record.detail) == (
        "moderator",
        "message_deleted",
        f"message {message.id}",
        "by alice in the lobby (seq 1)",
    )


def test_the_bulk_delete_action_makes_tombstones(staff_client, alice):
    ids = [str(message_send(user=alice, channel_name=None, content=f"m{n}").message.id) for n in range(3)]
    response = staff_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert response.status_code == 302
    rows = Message.objects.values_list("deleted", "content", "rev")
    assert sorted(rows) == [(True, "", 4), (True, "", 5), (True, "", 6)]


def test_bulk_deletion_is_not_stopped_by_the_message_rate_limit(staff_client, alice, settings):
    """The moderator's own rate limit does not apply in the admin: a cleanup must not stop halfway."""
    from messaging.ratelimit import reset_message_rate_limiter

    ids = [
        str(message_send(user=alice, channel_name=None, content=f"spam {n}").message.id) for n in range(25)
    ]
    settings.CHAT_MESSAGE_BURST, settings.CHAT_MESSAGE_RATE = 2, 0.001
    reset_message_rate_limiter()
    response = staff_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": ids, "post": "yes"}
    )
    assert response.status_code == 302
    assert Message.objects.filter(deleted=True).count() == 25
    assert AuditRecord.objects.count() == 25


def test_the_change_page_cannot_save(staff_client, alice):
    """View only: a save would write back the row as read, undoing a change committed meanwhile."""
    message = message_send(user=alice, channel_name=None, content="as it was").message
    response = staff_client.post(f"{CHANGELIST}{message.id}/change/", {})
    assert response.status_code == 403
