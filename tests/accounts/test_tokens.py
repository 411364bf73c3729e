"""Access tokens: only a validly signed, unexpired access token of an open session of an active user."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone

from accounts import services, tokens
from accounts.models import LoginSession
from tests.accounts.helpers import bearer
from tests.conftest import login_tokens

pytestmark = pytest.mark.django_db

ME = "/api/users/me"


def signing_key() -> str:
    return settings.SIMPLE_JWT["SIGNING_KEY"]


def claims(raw: str) -> dict:
    return jwt.decode(raw, signing_key(), algorithms=["HS256"])


def sign(payload: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(payload, key or signing_key(), algorithm=algorithm)


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def session_tokens(make_user):
    return login_tokens(make_user("ada"))


def assert_401(api, access: str) -> None:
    response = api.get(ME, **bearer(access))
    assert response.status_code == 401, response.content
    assert set(response.json()) == {"detail"}


def test_the_issued_access_token_works(api, session_tokens):
    """The control for every refusal below: the unmodified token is accepted."""
    assert api.get(ME, **bearer(session_tokens["access"])).status_code == 200


def test_tokens_carry_the_session_id(session_tokens):
    session = session_tokens["session"]
    assert claims(session_tokens["access"])["sid"] == str(session.id)
    assert claims(session_tokens["refresh"])["sid"] == str(session.id)
    assert claims(session_tokens["access"])["token_type"] == "access"


def test_wrong_signature_is_401(api, session_tokens):
    forged = sign(claims(session_tokens["access"]), key="not-the-server-key-0123456789abcdef")
    assert_401(api, forged)


def test_alg_none_is_401(api, session_tokens):
    payload = claims(session_tokens["access"])
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."
    assert_401(api, unsigned)
    assert_401(api, jwt.encode(payload, None, algorithm="none"))


def test_other_algorithm_is_401(api, session_tokens):
    forged = sign(claims(session_tokens["access"]), algorithm="HS512")
    assert_401(api, forged)


def test_expired_token_is_401(api, session_tokens):
    payload = claims(session_tokens["access"])
    now = int(timezone.now().timestamp())
    payload.update(iat=now - 3600, exp=now - 60)
    assert_401(api, sign(payload))
    # the same claims, still valid, pass: only the expiry differs
    payload.update(exp=now + 600)
    assert api.get(ME, **bearer(sign(payload))).status_code == 200


def test_tampered_payload_is_401(api, session_tokens, make_user):
    other = make_user("bob")
    header, _payload, signature = session_tokens["access"].split(".")
    payload = claims(session_tokens["access"])
    payload["user_id"] = str(other.id)
    tampered = f"{header}.{b64(payload)}.{signature}"
    assert_401(api, tampered)


def test_token_without_session_claim_is_401(api, session_tokens):
    payload = claims(session_tokens["access"])
    del payload["sid"]
    assert_401(api, sign(payload))


@pytest.mark.parametrize("sid", ["not-a-uuid", 42, None, "00000000-0000-0000-0000-000000000000"])
def test_token_with_bad_or_unknown_session_is_401(api, session_tokens, sid):
    payload = claims(session_tokens["access"])
    payload["sid"] = sid
    assert_401(api, sign(payload))


def test_refresh_token_used_as_access_is_401(api, session_tokens):
    assert_401(api, session_tokens["refresh"])


def test_token_after_logout_is_401(api, session_tokens):
    services.session_logout(session=session_tokens["session"])
    assert_401(api, session_tokens["access"])


def test_token_after_deactivation_is_401(api, session_tokens):
    user = session_tokens["session"].user
    services.user_deactivate(user=user)
    assert_401(api, session_tokens["access"])
    user.refresh_from_db()
    assert not user.is_active
    assert not LoginSession.objects.filter(user=user, ended_at__isnull=True).exists()


def test_token_of_a_deleted_user_is_401(api, session_tokens):
    session_tokens["session"].user.delete()
    assert_401(api, session_tokens["access"])


def test_authenticate_access_token_names_the_failure(session_tokens):
    user, session = tokens.authenticate_access_token(session_tokens["access"])
    assert session.pk == session_tokens["session"].pk
    with pytest.raises(tokens.InvalidToken):
        tokens.authenticate_access_token(session_tokens["refresh"])
    services.user_deactivate(user=user)
    with pytest.raises(tokens.InactiveUser):
        tokens.authenticate_access_token(session_tokens["access"])


def test_session_last_used_is_recorded_coarsely(api, session_tokens):
    session = session_tokens["session"]
    old = timezone.now() - timedelta(hours=1)
    LoginSession.objects.filter(pk=session.pk).update(last_used_at=old)
    assert api.get(ME, **bearer(session_tokens["access"])).status_code == 200
    session.refresh_from_db()
    assert session.last_used_at > old


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",  # no token
        "Bearer ",  # empty token
        "Bearer a b",  # two tokens
        "Bearer not.a.jwt",
        "Bearer \u00e9t\u00e9",  # non-ASCII token
        "Token abc",  # another scheme
        "abc",  # no scheme
        "Basic YWRhOnB3",
        "",
    ],
)
def test_malformed_authorization_headers_are_401(api, db, header):
    response = api.get(ME, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}
    assert response.json()["detail"]


def test_bearer_scheme_is_case_insensitive(api, session_tokens):
    response = api.get(ME, HTTP_AUTHORIZATION=f"bearer {session_tokens['access']}")
    assert response.status_code == 200


def test_401_names_the_bearer_scheme(api, db):
    response = api.get(ME)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_verified_once_is_refused_once_it_expires(make_user):
    """Reconnects present the same token: its signature is checked once, its expiry every time."""
    import time as clock

    user = make_user()
    session = LoginSession.objects.create(user=user)
    raw = tokens.issue_token_pair(session, access_lifetime=timedelta(seconds=1)).access
    assert tokens.decode_access(raw) == session.id
    assert tokens.decode_access(raw) == session.id  # from what was verified
    clock.sleep(1.1)
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_access(raw)


def test_a_refused_token_is_checked_again_and_a_new_key_forgets_verified_ones(session_tokens, settings):
    tokens._verified.clear()
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_access("not-a-jwt")
    assert len(tokens._verified) == 0  # refusals are not kept
    assert tokens.decode_access(session_tokens["access"]) == session_tokens["session"].id
    assert len(tokens._verified) == 1
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": "another-key-" + "k" * 40}
    assert len(tokens._verified) == 0  # verified under the old settings


def test_verified_tokens_are_kept_up_to_a_bound_the_least_recently_used_going_first(make_user, monkeypatch):
    monkeypatch.setattr(tokens, "VERIFIED_TOKENS", 2)
    tokens._verified.clear()
    user = make_user()
    raws = [tokens.issue_token_pair(LoginSession.objects.create(user=user)).access for _ in range(3)]
    for raw in raws[:2]:
        tokens.decode_access(raw)
    tokens.decode_access(raws[0])  # used again: the most recent
    tokens.decode_access(raws[2])  # a third: the least recently used (raws[1]) goes
    assert len(tokens._verified) == 2
    digest = hashlib.blake2b(raws[1].encode(), digest_size=16).digest()
    assert digest not in tokens._verified
