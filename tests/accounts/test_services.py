"""The account services called directly: the one write path for each verb."""

from __future__ import annotations

from unittest import mock

import pytest

from accounts import presence, services
from accounts.models import LoginSession, User
from core.errors import InvalidInput, NotAuthenticated
from realtime.groups import session_group, user_group
from tests.conftest import DEFAULT_PASSWORD, login_tokens

pytestmark = pytest.mark.django_db


def register(username="ada", email=None):
    return services.user_register(
        username=username, email=email or f"{username}@example.com", password=DEFAULT_PASSWORD
    )


def test_register_race_on_username_reports_the_username():
    register("ada")
    # the pre-checks see no one (as when a concurrent registration has not
    # committed yet); the database constraint decides, and the re-check names it
    with (
        mock.patch("accounts.services.User.objects.filter") as filtered,
        pytest.raises(InvalidInput) as caught,
    ):
        filtered.return_value.exists.side_effect = [False, False, True]
        register("ADA", email="other@example.com")
    assert caught.value.field == "username"
    assert User.objects.count() == 1


def test_register_race_on_email_reports_the_email():
    register("ada", email="ada@example.com")
    with (
        mock.patch("accounts.services._check_email_free"),
        pytest.raises(InvalidInput) as caught,
    ):
        register("bob", email="ADA@example.com")
    assert caught.value.field == "email"
    assert User.objects.count() == 1


def test_login_records_the_session_and_stores_the_refresh_jti():
    user = register()
    result = services.session_login(
        username="ADA", password=DEFAULT_PASSWORD, client_address="203.0.113.9" * 10, user_agent="x" * 1000
    )
    assert result.user == user
    session = LoginSession.objects.get(pk=result.session.pk)
    assert len(session.client_address) <= 64 and len(session.user_agent) <= 256
    assert session.refresh_jti == result.tokens.refresh_jti


@pytest.mark.parametrize("password", ["wrong-Password-1", ""])
def test_login_refuses_bad_credentials(password):
    register()
    with pytest.raises(NotAuthenticated) as caught:
        services.session_login(username="ada", password=password, client_address="", user_agent="")
    assert caught.value.http_status == 401
    assert not LoginSession.objects.exists()


def test_refresh_rotation_keeps_one_valid_refresh_token():
    user = register()
    tokens = login_tokens(user)
    pair = services.session_refresh(refresh=tokens["refresh"])
    session = LoginSession.objects.get(pk=tokens["session"].pk)
    assert session.refresh_jti == pair.refresh_jti
    with pytest.raises(NotAuthenticated):
        services.session_refresh(refresh=tokens["refresh"])
    session.refresh_from_db()
    assert session.ended_at is not None
    assert session.end_reason == LoginSession.EndReason.REFRESH_REUSE


def test_refresh_of_a_deleted_session_is_refused():
    user = register()
    tokens = login_tokens(user)
    LoginSession.objects.all().delete()
    with pytest.raises(NotAuthenticated):
        services.session_refresh(refresh=tokens["refresh"])


def test_deactivate_ends_every_session_and_closes_the_users_sockets():
    user = register()
    first, second = login_tokens(user), login_tokens(user)
    with mock.patch("accounts.services.close_group_on_commit") as close:
        services.user_deactivate(user=user)
    user.refresh_from_db()
    assert not user.is_active
    assert set(LoginSession.objects.values_list("end_reason", flat=True)) == {"deactivated"}
    closed = {call.args for call in close.call_args_list}
    assert (user_group(user.id), 4403) in closed
    assert (session_group(first["session"].id), 4401) in closed
    assert (session_group(second["session"].id), 4401) in closed


def test_deactivate_twice_is_harmless():
    user = register()
    services.user_deactivate(user=user)
    services.user_deactivate(user=user)
    user.refresh_from_db()
    assert not user.is_active


def test_password_change_closes_only_the_other_sessions_sockets():
    user = register()
    mine, other = login_tokens(user), login_tokens(user)
    with mock.patch("accounts.services.close_group_on_commit") as close:
        services.user_update_profile(
            user=user,
            session=mine["session"],
            password="brand-New-secret-5",
            current_password=DEFAULT_PASSWORD,
        )
    assert [call.args for call in close.call_args_list] == [(session_group(other["session"].id), 4401)]


def test_profile_update_without_changes_checks_nothing():
    user = register()
    assert services.user_update_profile(user=user, session=None) is user


def test_set_status_updates_the_model():
    user = register()
    presence.user_set_status(user=user, status="away")
    user.refresh_from_db()
    assert user.status == "away"
