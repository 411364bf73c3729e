"""POST /api/auth/register, login, refresh and logout, as the contract states them."""

from __future__ import annotations

from unittest import mock

import pytest
from django.contrib.auth import hashers
from django.test import override_settings

from accounts import services
from accounts.models import LoginSession, User
from tests.accounts.helpers import OWN_USER_KEYS, TIMESTAMP, UUID_RE, assert_own_user, bearer
from tests.conftest import DEFAULT_PASSWORD, login_tokens

pytestmark = pytest.mark.django_db

REGISTER = "/api/auth/register"
LOGIN = "/api/auth/login"
REFRESH = "/api/auth/refresh"
LOGOUT = "/api/auth/logout"
ME = "/api/users/me"


def register(api, username="ada", email=None, password=DEFAULT_PASSWORD):
    body = {"username": username, "email": email or f"{username.lower()}@example.com", "password": password}
    return api.post(REGISTER, body, format="json")


def login(api, username, password=DEFAULT_PASSWORD):
    return api.post(LOGIN, {"username": username, "password": password}, format="json")


# --- register ----------------------------------------------------------------


def test_register_answers_201_with_own_user(api):
    response = register(api, "Ada.Lovelace_1", email="Ada@Example.COM")
    assert response.status_code == 201
    body = response.json()
    user = User.objects.get()
    assert_own_user(body, user)
    assert body["username"] == "Ada.Lovelace_1"
    assert UUID_RE.match(body["id"])
    assert body["status"] == "online"
    assert body["is_online"] is False
    assert body["last_seen"] is None
    assert body["email"] == "Ada@example.com"  # the domain is normalised, the local part kept
    assert "password" not in response.content.decode()
    assert user.check_password(DEFAULT_PASSWORD)


@pytest.mark.parametrize(
    "username",
    ["ab", "a" * 33, "ada lovelace", "ada!", "ada/x", "ädä", "", "a\nda", "ada@x", "ada\x00x"],
)
def test_register_refuses_a_bad_username(api, username):
    response = register(api, username, email="someone@example.com")
    assert response.status_code == 400
    assert "username" in response.json()
    assert not User.objects.exists()


@pytest.mark.parametrize("username", ["abc", "a" * 32, "A-b.c_9", "..."])
def test_register_accepts_username_edges(api, username):
    assert register(api, username, email="edge@example.com").status_code == 201


@pytest.mark.parametrize("username", ["me", "ME", "online", "Online", "ONLINE"])
def test_register_refuses_names_of_user_routes(api, username):
    """``/api/users/me`` and ``/api/users/online`` would hide a user of that name."""
    response = register(api, username, email="route@example.com")
    assert response.status_code == 400
    assert "username" in response.json()
    assert not User.objects.exists()


def test_service_refuses_names_of_user_routes(db):
    with pytest.raises(services.InvalidInput) as caught:
        services.user_register(username="Online", email="o@example.com", password=DEFAULT_PASSWORD)
    assert caught.value.field == "username"


@pytest.mark.parametrize("email", ["not-an-email", "a@", "@example.com", "a b@example.com", ""])
def test_register_refuses_a_bad_email(api, email):
    response = api.post(
        REGISTER, {"username": "ada", "email": email, "password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert "email" in response.json()


@pytest.mark.parametrize("password", ["short1", "password123", "12345678901234", "ada-lovelace-x"])
def test_register_refuses_a_weak_password(api, password):
    response = api.post(
        REGISTER,
        {"username": "ada-lovelace-x", "email": "ada@example.com", "password": password},
        format="json",
    )
    assert response.status_code == 400
    assert "password" in response.json()
    assert not User.objects.exists()


@pytest.mark.parametrize("missing", ["username", "email", "password"])
def test_register_requires_every_field(api, missing):
    body = {"username": "ada", "email": "ada@example.com", "password": DEFAULT_PASSWORD}
    del body[missing]
    response = api.post(REGISTER, body, format="json")
    assert response.status_code == 400
    assert missing in response.json()


def test_register_refuses_a_username_differing_only_by_case(api):
    assert register(api, "Ada", email="one@example.com").status_code == 201
    response = register(api, "aDA", email="two@example.com")
    assert response.status_code == 400
    assert "username" in response.json()
    assert User.objects.count() == 1


def test_register_refuses_an_email_differing_only_by_case(api):
    assert register(api, "ada", email="Ada@Example.com").status_code == 201
    response = register(api, "bob", email="ADA@example.COM")
    assert response.status_code == 400
    assert "email" in response.json()
    assert User.objects.count() == 1


def test_register_ignores_extra_fields(api):
    response = api.post(
        REGISTER,
        {
            "username": "ada",
            "email": "ada@example.com",
            "password": DEFAULT_PASSWORD,
            "is_staff": True,
            "is_superuser": True,
            "status": "away",
            "id": "00000000-0000-0000-0000-000000000001",
        },
        format="json",
    )
    assert response.status_code == 201
    user = User.objects.get()
    assert not user.is_staff and not user.is_superuser
    assert user.status == "online"
    assert str(user.id) != "00000000-0000-0000-0000-000000000001"


def test_register_stores_password_with_bcrypt_under_base_hashers(api):
    base_hashers = [
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    with override_settings(PASSWORD_HASHERS=base_hashers):
        assert register(api, "ada").status_code == 201
        user = User.objects.get()
        assert user.password.startswith("bcrypt_sha256$")
        assert hashers.identify_hasher(user.password).algorithm == "bcrypt_sha256"
        # over bcrypt's 72-byte limit: pre-hashed, so long passwords stay safe
        long_password = "Q" * 100 + "-tail-1"
        user.set_password(long_password)
        assert user.check_password(long_password)
        assert not user.check_password("Q" * 100 + "-tail-2")


# --- login -------------------------------------------------------------------


def test_login_answers_tokens_and_own_user(api, make_user):
    user = make_user("ada")
    response = login(api, "ada")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in", "user"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["access"] != body["refresh"]
    assert_own_user(body["user"], user)
    me = api.get(ME, **bearer(body["access"]))
    assert me.status_code == 200
    assert me.json()["id"] == str(user.id)


def test_login_expires_in_follows_the_configured_lifetime(api, make_user, settings):
    from datetime import timedelta

    make_user("ada")
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(seconds=120)}
    assert login(api, "ada").json()["expires_in"] == 120


def test_login_creates_a_session_record(api, make_user):
    user = make_user("ada")
    response = api.post(
        LOGIN,
        {"username": "ada", "password": DEFAULT_PASSWORD},
        format="json",
        HTTP_USER_AGENT="chat-client/1.0",
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 200
    session = LoginSession.objects.get(user=user)
    assert session.ended_at is None
    assert session.user_agent == "chat-client/1.0"
    assert session.client_address == "10.1.2.3"
    assert session.refresh_jti


def test_login_username_is_case_insensitive(api, make_user):
    user = make_user("Ada")
    response = login(api, "aDA")
    assert response.status_code == 200
    assert response.json()["user"]["username"] == "Ada"
    assert response.json()["user"]["id"] == str(user.id)


def test_unknown_user_and_wrong_password_get_the_same_401(api, make_user):
    make_user("ada")
    wrong = login(api, "ada", "wrong-Password-1")
    unknown = login(api, "nobody", DEFAULT_PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert set(wrong.json()) == {"detail"}
    assert wrong.content == unknown.content


def test_inactive_user_cannot_log_in(api, make_user):
    user = make_user("ada")
    services.user_deactivate(user=user)
    response = login(api, "ada")
    assert response.status_code == 401
    assert response.json() == login(api, "nobody").json()


def test_login_of_unknown_user_still_hashes_a_password(api, make_user):
    """No user enumeration by timing: an unknown name pays for one hash too."""
    make_user("ada")
    real_verify = hashers.MD5PasswordHasher.verify
    calls = []

    def spy(self, password, encoded):
        calls.append(password)
        return real_verify(self, password, encoded)

    with mock.patch.object(hashers.MD5PasswordHasher, "verify", spy):
        assert login(api, "nobody", "some-Password-1").status_code == 401
        assert calls == ["some-Password-1"]
        assert login(api, "ada", "some-Password-2").status_code == 401
        assert calls == ["some-Password-1", "some-Password-2"]


def test_login_of_unknown_user_hashes_with_the_preferred_hasher(make_user):
    """The dummy hash must cost what a real one does: same hasher as real users get."""
    with (
        mock.patch("accounts.services.check_password", wraps=hashers.check_password) as spy,
        pytest.raises(services.NotAuthenticated),
    ):
        services.session_login(username="nobody", password="x-Password-1", client_address="", user_agent="")
    assert spy.call_count == 1
    encoded = spy.call_args.args[1]
    assert hashers.identify_hasher(encoded).algorithm == hashers.get_hasher("default").algorithm


@pytest.mark.parametrize(
    "body", [{}, {"username": "ada"}, {"password": "x"}, {"username": "", "password": ""}]
)
def test_login_with_missing_fields_is_400(api, body):
    response = api.post(LOGIN, body, format="json")
    assert response.status_code == 400


def test_login_user_is_own_user(api, make_user):
    make_user("ada")
    user = login(api, "ada").json()["user"]
    assert set(user) == OWN_USER_KEYS


# --- refresh -----------------------------------------------------------------


def test_refresh_rotates_the_pair(api, make_user):
    make_user("ada")
    tokens = login(api, "ada").json()
    response = api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 200
    fresh = response.json()
    assert set(fresh) == {"access", "refresh"}
    assert fresh["refresh"] != tokens["refresh"]
    assert api.get(ME, **bearer(fresh["access"])).status_code == 200
    # the new refresh token works in turn
    again = api.post(REFRESH, {"refresh": fresh["refresh"]}, format="json")
    assert again.status_code == 200


def test_reusing_a_rotated_refresh_token_ends_the_whole_session(api, make_user):
    user = make_user("ada")
    tokens = login(api, "ada").json()
    fresh = api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").json()

    reuse = api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json")
    assert reuse.status_code == 401
    assert set(reuse.json()) == {"detail"}
    # token theft: neither party keeps the session
    assert api.get(ME, **bearer(fresh["access"])).status_code == 401
    assert api.get(ME, **bearer(tokens["access"])).status_code == 401
    assert api.post(REFRESH, {"refresh": fresh["refresh"]}, format="json").status_code == 401
    session = LoginSession.objects.get(user=user)
    assert session.end_reason == LoginSession.EndReason.REFRESH_REUSE


def test_refresh_reuse_does_not_touch_other_sessions(api, make_user):
    make_user("ada")
    first = login(api, "ada").json()
    second = login(api, "ada").json()
    api.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    api.post(REFRESH, {"refresh": first["refresh"]}, format="json")
    assert api.get(ME, **bearer(second["access"])).status_code == 200


def test_refresh_with_an_access_token_is_401(api, make_user):
    make_user("ada")
    tokens = login(api, "ada").json()
    response = api.post(REFRESH, {"refresh": tokens["access"]}, format="json")
    assert response.status_code == 401
    # and the session survives the attempt
    assert api.get(ME, **bearer(tokens["access"])).status_code == 200


@pytest.mark.parametrize("refresh", ["garbage", "a.b.c", "", "x" * 5000])
def test_refresh_with_garbage_is_400_or_401(api, refresh):
    response = api.post(REFRESH, {"refresh": refresh}, format="json")
    assert response.status_code in (400, 401)
    assert response.json()


def test_refresh_needs_no_access_token(api, make_user):
    make_user("ada")
    tokens = login(api, "ada").json()
    api.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 200


def test_refresh_after_logout_is_401(api, make_user):
    make_user("ada")
    tokens = login(api, "ada").json()
    assert api.post(LOGOUT, **bearer(tokens["access"])).status_code == 204
    assert api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 401


def test_refresh_of_deactivated_user_is_401(api, make_user):
    user = make_user("ada")
    tokens = login(api, "ada").json()
    services.user_deactivate(user=user)
    assert api.post(REFRESH, {"refresh": tokens["refresh"]}, format="json").status_code == 401


# --- logout ------------------------------------------------------------------


def test_logout_ends_the_session(api, make_user):
    user = make_user("ada")
    tokens = login(api, "ada").json()
    response = api.post(LOGOUT, **bearer(tokens["access"]))
    assert response.status_code == 204
    assert response.content == b""
    after = api.get(ME, **bearer(tokens["access"]))
    assert after.status_code == 401
    assert set(after.json()) == {"detail"}
    session = LoginSession.objects.get(user=user)
    assert session.ended_at is not None
    assert session.end_reason == LoginSession.EndReason.LOGOUT
    # logging out twice with the dead token is 401, not a 500
    assert api.post(LOGOUT, **bearer(tokens["access"])).status_code == 401


def test_logout_needs_a_token(api):
    response = api.post(LOGOUT)
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}


def test_logout_ends_only_that_session(api, make_user):
    make_user("ada")
    first = login(api, "ada").json()
    second = login(api, "ada").json()
    assert api.post(LOGOUT, **bearer(first["access"])).status_code == 204
    assert api.get(ME, **bearer(second["access"])).status_code == 200
    assert api.post(REFRESH, {"refresh": second["refresh"]}, format="json").status_code == 200


def test_logout_with_another_sessions_refresh_token_changes_only_the_callers_session(api, make_user):
    make_user("ada")
    mine = login(api, "ada").json()
    other = login(api, "ada").json()
    response = api.post(LOGOUT, {"refresh": other["refresh"]}, format="json", **bearer(mine["access"]))
    assert response.status_code == 204
    assert api.get(ME, **bearer(mine["access"])).status_code == 401
    assert api.post(REFRESH, {"refresh": mine["refresh"]}, format="json").status_code == 401
    assert api.get(ME, **bearer(other["access"])).status_code == 200
    assert api.post(REFRESH, {"refresh": other["refresh"]}, format="json").status_code == 200


def test_logout_of_another_users_refresh_token_changes_nothing_for_them(api, make_user):
    make_user("ada")
    make_user("bob")
    ada = login(api, "ada").json()
    bob = login(api, "bob").json()
    assert (
        api.post(LOGOUT, {"refresh": bob["refresh"]}, format="json", **bearer(ada["access"])).status_code
        == 204
    )
    assert api.get(ME, **bearer(bob["access"])).status_code == 200


def test_logout_closes_the_sessions_sockets(make_user):
    from realtime.groups import session_group

    user = make_user("ada")
    tokens = login_tokens(user)
    with mock.patch("accounts.services.close_group_on_commit") as close:
        services.session_logout(session=tokens["session"])
    close.assert_called_once_with(session_group(tokens["session"].id), 4401)


def test_timestamps_have_milliseconds_and_z(api, make_user):
    make_user("ada")
    body = login(api, "ada").json()
    assert TIMESTAMP.match(body["user"]["date_joined"])
