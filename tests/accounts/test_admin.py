"""The Django admin for moderating users: list, search, filter, deactivate, status, password."""

from __future__ import annotations

import orjson
import pytest

from accounts.models import AuditRecord, LoginSession, User
from realtime.groups import LOBBY_GROUP, session_group
from tests.accounts.helpers import bearer
from tests.conftest import DEFAULT_PASSWORD, login_tokens

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/user/"


def inline_data(page) -> dict:
    """The inline formsets' management and hidden fields, as the browser would post them."""
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, field in formset.management_form.fields.items():
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value() or field.initial or 0
        for form in formset.forms:
            for name in form.fields:
                value = form[name].value()
                data[form.add_prefix(name)] = "" if value is None else value
    return data


def form_data(page, *, skip=()) -> dict:
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        if name == "password" or name in skip:
            continue
        value = form[name].value()
        if value is False:
            continue  # an unticked checkbox is not posted
        data[name] = "" if value is None else value
    data["groups"], data["user_permissions"] = [], []
    return {**data, **inline_data(page)}


def listed(response) -> set[str]:
    return {user.username for user in response.context["cl"].result_list}


def test_changelist_loads(admin_client, make_user):
    make_user("ada")
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    assert listed(response) == {"moderator", "ada"}


def test_non_staff_cannot_use_the_admin(client, make_user):
    user = make_user("ada")
    client.force_login(user)
    response = client.get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_search_by_username_and_email(admin_client, make_user):
    make_user("ada", email="lovelace@example.com")
    make_user("bob")
    assert listed(admin_client.get(CHANGELIST, {"q": "ADA"})) == {"ada"}
    assert listed(admin_client.get(CHANGELIST, {"q": "lovelace"})) == {"ada"}


def test_filters_by_active_staff_and_status(admin_client, make_user):
    ada, bob = make_user("ada"), make_user("bob")
    User.objects.filter(pk=ada.pk).update(is_active=False)
    User.objects.filter(pk=bob.pk).update(status="away")
    assert listed(admin_client.get(CHANGELIST, {"is_active__exact": "0"})) == {"ada"}
    assert listed(admin_client.get(CHANGELIST, {"status__exact": "away"})) == {"bob"}
    assert listed(admin_client.get(CHANGELIST, {"is_staff__exact": "1"})) == {"moderator"}


def test_change_and_add_pages_load(admin_client, make_user):
    ada = make_user("ada")
    login_tokens(ada)
    assert admin_client.get(f"{CHANGELIST}{ada.pk}/change/").status_code == 200
    assert admin_client.get(f"{CHANGELIST}add/").status_code == 200


def test_admin_can_add_a_user(admin_client):
    page = admin_client.get(f"{CHANGELIST}add/")
    password = "long-Pass-phrase-9"
    data = {
        **inline_data(page),
        "username": "newbie",
        "email": "newbie@example.com",
        "password1": password,
        "password2": password,
    }
    response = admin_client.post(f"{CHANGELIST}add/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(username="newbie")
    assert user.check_password(password)


def test_deactivate_action_deactivates_and_ends_sessions(admin_client, api, make_user):
    ada, bob, cid = make_user("ada"), make_user("bob"), make_user("cid")
    ada_tokens, bob_tokens, cid_tokens = login_tokens(ada), login_tokens(bob), login_tokens(cid)
    response = admin_client.post(
        CHANGELIST, {"action": "deactivate_users", "_selected_action": [str(ada.pk), str(bob.pk)]}
    )
    assert response.status_code == 302
    assert set(User.objects.filter(is_active=False).values_list("username", flat=True)) == {"ada", "bob"}
    assert not LoginSession.objects.filter(user__in=[ada, bob], ended_at__isnull=True).exists()
    assert api.get("/api/users/me", **bearer(ada_tokens["access"])).status_code == 401
    assert api.get("/api/users/me", **bearer(bob_tokens["access"])).status_code == 401
    assert api.get("/api/users/me", **bearer(cid_tokens["access"])).status_code == 200
    assert set(AuditRecord.objects.values_list("actor", "action", "target")) == {
        ("moderator", "user_deactivated", "user ada"),
        ("moderator", "user_deactivated", "user bob"),
    }


def test_reactivate_action_lets_users_log_in_again(admin_client, api, make_user):
    ada = make_user("ada")
    User.objects.filter(pk=ada.pk).update(is_active=False)
    response = admin_client.post(
        CHANGELIST, {"action": "reactivate_users", "_selected_action": [str(ada.pk)]}
    )
    assert response.status_code == 302
    ada.refresh_from_db()
    assert ada.is_active
    login = api.post("/api/auth/login", {"username": "ada", "password": DEFAULT_PASSWORD}, format="json")
    assert login.status_code == 200
    assert list(AuditRecord.objects.values_list("actor", "action", "target")) == [
        ("moderator", "user_reactivated", "user ada")
    ]


def test_unticking_active_in_the_change_form_ends_sessions(admin_client, api, make_user):
    ada = make_user("ada")
    tokens = login_tokens(ada)
    page = admin_client.get(f"{CHANGELIST}{ada.pk}/change/")
    response = admin_client.post(f"{CHANGELIST}{ada.pk}/change/", form_data(page, skip={"is_active"}))
    assert response.status_code == 302, response.context["adminform"].form.errors
    ada.refresh_from_db()
    assert not ada.is_active
    session = LoginSession.objects.get(pk=tokens["session"].pk)
    assert session.end_reason == LoginSession.EndReason.DEACTIVATED
    assert api.get("/api/users/me", **bearer(tokens["access"])).status_code == 401
    record = AuditRecord.objects.get()
    assert (record.actor, record.action, record.target, record.detail) == (
        "moderator",
        "user_deactivated",
        "user ada",
        "1 session(s) ended",
    )


def test_saving_the_form_without_change_keeps_sessions(admin_client, api, make_user):
    ada = make_user("ada")
    tokens = login_tokens(ada)
    page = admin_client.get(f"{CHANGELIST}{ada.pk}/change/")
    response = admin_client.post(f"{CHANGELIST}{ada.pk}/change/", form_data(page))
    assert response.status_code == 302, response.context["adminform"].form.errors
    ada.refresh_from_db()
    assert ada.is_active
    assert api.get("/api/users/me", **bearer(tokens["access"])).status_code == 200
    assert not AuditRecord.objects.exists()


def test_a_status_edit_in_the_admin_announces_presence(admin_client, make_user, connections, published):
    ada = make_user("ada")
    connections(ada)  # connected, so others see the change
    page = admin_client.get(f"{CHANGELIST}{ada.pk}/change/")
    data = {**form_data(page), "status": "away"}
    with published.capture():
        response = admin_client.post(f"{CHANGELIST}{ada.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    ada.refresh_from_db()
    assert ada.status == "away"
    presence = [orjson.loads(event["frame"]) for group, event in published.calls if group == LOBBY_GROUP]
    assert presence == [
        {"type": "presence", "username": "ada", "status": "away", "is_online": True, "last_seen": None}
    ]


def test_saving_the_admin_form_without_a_status_change_announces_nothing(
    admin_client, make_user, connections, published
):
    ada = make_user("ada")
    connections(ada)
    page = admin_client.get(f"{CHANGELIST}{ada.pk}/change/")
    with published.capture():
        response = admin_client.post(f"{CHANGELIST}{ada.pk}/change/", form_data(page))
    assert response.status_code == 302
    assert published.calls == []


def test_setting_a_password_in_the_admin_ends_every_session(admin_client, api, make_user, published):
    ada = make_user("ada")
    first, second = login_tokens(ada), login_tokens(ada)
    password = "A-new-Password-for-ada-42"
    with published.capture():
        response = admin_client.post(
            f"{CHANGELIST}{ada.pk}/password/",
            {"password1": password, "password2": password, "usable_password": "true"},
        )
    assert response.status_code == 302, response.context["form"].errors
    ada.refresh_from_db()
    assert ada.check_password(password)
    for tokens in (first, second):
        session = LoginSession.objects.get(pk=tokens["session"].pk)
        assert session.end_reason == LoginSession.EndReason.PASSWORD_CHANGED
        assert api.get("/api/users/me", **bearer(tokens["access"])).status_code == 401
    closes = {group for group, event in published.calls if event["kind"] == "close" and event["code"] == 4401}
    assert closes == {session_group(first["session"].id), session_group(second["session"].id)}
    record = AuditRecord.objects.get()
    assert (record.actor, record.action, record.target) == ("moderator", "password_set", "user ada")
    assert password not in record.detail


def test_disabling_password_login_in_the_admin_is_audited(admin_client, make_user):
    ada = make_user("ada")
    response = admin_client.post(
        f"{CHANGELIST}{ada.pk}/password/", {"usable_password": "false", "unset-password": "1"}
    )
    assert response.status_code == 302, response.context["form"].errors
    ada.refresh_from_db()
    assert not ada.has_usable_password()
    assert AuditRecord.objects.get().detail == "password login disabled; 0 session(s) ended"


def test_a_users_own_password_change_is_not_moderation(auth_client, make_user):
    ada = make_user("ada")
    client = auth_client(ada)
    response = client.patch(
        "/api/users/me",
        {"password": "Another-long-Pass-7", "current_password": DEFAULT_PASSWORD},
        format="json",
    )
    assert response.status_code == 200
    assert not AuditRecord.objects.exists()


def test_users_cannot_be_deleted_in_the_admin(admin_client, make_user):
    """Deleting would take a user's messages away unannounced; moderators deactivate instead."""
    ada = make_user("ada")
    assert admin_client.get(f"{CHANGELIST}{ada.pk}/delete/").status_code == 403
    assert admin_client.post(f"{CHANGELIST}{ada.pk}/delete/", {"post": "yes"}).status_code == 403
    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert "delete_selected" not in {name for name, _ in actions}
    assert User.objects.filter(pk=ada.pk).exists()
