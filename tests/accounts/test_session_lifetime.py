"""A session's absolute lifetime (CHAT_SESSION_MAX_SECONDS), and a session whose row is gone.

Refreshing never extends a session past its end: both tokens' expiry are
capped at it; after it, 401 on REST and 4401 on sockets at their next check.
A missing row counts as an ended session.
"""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from accounts import selectors, services
from accounts.models import LoginSession
from tests.accounts.helpers import bearer
from tests.conftest import DEFAULT_PASSWORD, login_tokens

pytestmark = pytest.mark.django_db


def claims(raw: str) -> dict:
    return jwt.decode(raw, options={"verify_signature": False})


def refresh(api, token: str):
    return api.post("/api/auth/refresh", {"refresh": token})


def age(session: LoginSession, seconds: float) -> None:
    """Move the session's login ``seconds`` into the past."""
    LoginSession.objects.filter(pk=session.pk).update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_default_is_thirty_days():
    assert settings.CHAT_SESSION_MAX_SECONDS == 30 * 24 * 3600


@override_settings(CHAT_SESSION_MAX_SECONDS=600)
def test_tokens_never_outlive_the_session(api, make_user):
    response = api.post(
        "/api/auth/login", {"username": make_user("ada").username, "password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["expires_in"] == 600  # under the 900 s access lifetime
    session = LoginSession.objects.get()
    ends = int((session.created_at + timedelta(seconds=600)).timestamp())
    body = response.json()
    assert claims(body["refresh"])["exp"] == ends  # not the 7-day refresh lifetime
    assert claims(body["access"])["exp"] == ends
    # A refresh later on still ends at the session's end.
    age(session, 300)
    rotated = refresh(api, body["refresh"])
    assert rotated.status_code == 200
    ends = int((session.created_at - timedelta(seconds=300) + timedelta(seconds=600)).timestamp())
    assert abs(claims(rotated.json()["refresh"])["exp"] - ends) <= 1
    assert abs(claims(rotated.json()["access"])["exp"] - ends) <= 1


@override_settings(CHAT_SESSION_MAX_SECONDS=3600)
def test_refresh_cannot_extend_a_session_past_its_end(api, make_user):
    tokens = login_tokens(make_user("ada"))
    age(tokens["session"], 3500)
    # Still within the lifetime: the access token works and a refresh rotates.
    assert api.get("/api/users/me", **bearer(tokens["access"])).status_code == 200
    rotated = refresh(api, tokens["refresh"]).json()
    age(tokens["session"], 3601)
    # Past it: the (still unexpired) tokens are refused, and so is every refresh.
    assert api.get("/api/users/me", **bearer(rotated["access"])).status_code == 401
    assert refresh(api, rotated["refresh"]).status_code == 401
    assert selectors.sessions_revoked(session_ids=[tokens["session"].id]) == {tokens["session"].id: True}


def test_a_session_with_no_row_counts_as_ended(api, make_user):
    tokens = login_tokens(make_user("ada"))
    LoginSession.objects.filter(pk=tokens["session"].pk).delete()
    assert api.get("/api/users/me", **bearer(tokens["access"])).status_code == 401
    assert refresh(api, tokens["refresh"]).status_code == 401
    # The sockets' periodic check closes it (4401: the user is still active).
    assert selectors.sessions_revoked(session_ids=[tokens["session"].id]) == {tokens["session"].id: True}


def test_sessions_revoked_leaves_out_only_valid_sessions(make_user):
    ada, bob = make_user("ada"), make_user("bob")
    valid, ended, gone = (login_tokens(ada)["session"] for _ in range(3))
    inactive = login_tokens(bob)["session"]
    services.session_logout(session=ended)
    LoginSession.objects.filter(pk=gone.pk).delete()
    services.user_deactivate(user=bob)
    revoked = selectors.sessions_revoked(session_ids=[valid.id, ended.id, gone.id, inactive.id])
    assert revoked == {ended.id: True, gone.id: True, inactive.id: False}
