"""The audit log in the admin: staff read it; nobody, superusers included, adds, changes or deletes."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.audit import Action, audit_record
from accounts.models import AuditRecord
from accounts.services import user_deactivate

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/auditrecord/"


@pytest.fixture
def record(superuser, make_user) -> AuditRecord:
    user_deactivate(user=make_user("ada"), actor=superuser)
    return AuditRecord.objects.get()


def shown(response) -> list[str]:
    return [record.target for record in response.context["cl"].result_list]


def test_the_changelist_shows_records_newest_first(admin_client, record, superuser):
    audit_record(actor=superuser, action=Action.PASSWORD_SET, target="user bob", detail="1 session(s) ended")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert shown(response) == ["user bob", "user ada"]
    assert b"user_deactivated" in response.content and b"moderator" in response.content
    # Nothing to add, and no actions at all ("delete selected" needs the delete permission).
    assert response.context["has_add_permission"] is False
    assert response.context["action_form"] is None


def test_filter_and_search(admin_client, record, superuser):
    audit_record(actor=superuser, action=Action.PASSWORD_SET, target="user bob")
    assert shown(admin_client.get(CHANGELIST, {"action__exact": "password_set"})) == ["user bob"]
    assert shown(admin_client.get(CHANGELIST, {"q": "ada"})) == ["user ada"]
    assert shown(admin_client.get(CHANGELIST, {"q": "moderator"})) == ["user bob", "user ada"]


def test_a_superuser_cannot_add_change_or_delete(admin_client, record):
    url = f"{CHANGELIST}{record.pk}/"
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}add/", {"action": "user_banned", "target": "x"}).status_code == 403
    page = admin_client.get(f"{url}change/")  # viewing is allowed, read-only
    assert page.status_code == 200 and page.context["has_change_permission"] is False
    assert admin_client.post(f"{url}change/", {"detail": "rewritten"}).status_code == 403
    assert admin_client.get(f"{url}delete/").status_code == 403
    assert admin_client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    bulk = admin_client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [str(record.pk)], "post": "yes"}
    )
    assert bulk.status_code in {200, 302}
    record.refresh_from_db()
    assert (AuditRecord.objects.count(), record.detail) == (1, "0 session(s) ended")


def test_staff_without_permissions_may_read_it(make_user, record):
    staff = make_user("helper")
    staff.is_staff = True
    staff.save()
    client = Client()
    client.force_login(staff)
    assert shown(client.get(CHANGELIST)) == ["user ada"]
    assert client.get(f"{CHANGELIST}{record.pk}/change/").status_code == 200
    assert client.post(f"{CHANGELIST}{record.pk}/change/", {"detail": "x"}).status_code == 403
    assert b"/admin/accounts/auditrecord/" in client.get("/admin/").content


def test_other_users_cannot_see_it(make_user, record):
    client = Client()
    client.force_login(make_user("bob"))
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_records_refuse_changes_and_deletion_in_code(record):
    record.detail = "rewritten"
    with pytest.raises(PermissionError):
        record.save()
    with pytest.raises(PermissionError):
        record.delete()
    with pytest.raises(PermissionError):
        AuditRecord.objects.all().delete()
    with pytest.raises(PermissionError):
        AuditRecord.objects.update(detail="x")
