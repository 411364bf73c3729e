"""JWTs that carry their login session's id (``sid``).

simplejwt checks signature, algorithm, expiry and token type; the session
check here is what makes logout revoke access tokens too (simplejwt's own
blacklist covers refresh tokens only).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.signals import setting_changed
from django.db import DEFAULT_DB_ALIAS
from django.dispatch import receiver
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import LoginSession, User
from core.prepared import prepared_rows

SESSION_CLAIM = "sid"


class InvalidToken(Exception):
    """Missing, malformed, expired or revoked: 401, or 4401 on a WebSocket."""


class InactiveUser(Exception):
    """A valid token of a deactivated user: 401 on REST, 4403 on a WebSocket."""


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    refresh_jti: str


def issue_token_pair(session: LoginSession, *, access_lifetime: timedelta | None = None) -> TokenPair:
    """A refresh token carrying the session's id, and its access token.

    ``access_lifetime`` overrides the configured one (seeded benchmark
    sessions); the refresh token then lives at least as long. Neither token
    outlives the session (``CHAT_SESSION_MAX_SECONDS`` after its login).
    """
    refresh = RefreshToken.for_user(session.user)
    refresh[SESSION_CLAIM] = str(session.id)
    if access_lifetime is not None:
        refresh.set_exp(lifetime=max(settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"], access_lifetime))
    ends = int(session_ends_at(session).timestamp())
    refresh["exp"] = min(int(refresh["exp"]), ends)
    access = refresh.access_token
    if access_lifetime is not None:
        access.set_exp(from_time=refresh.current_time, lifetime=access_lifetime)
    access["exp"] = min(int(access["exp"]), ends)
    return TokenPair(access=str(access), refresh=str(refresh), refresh_jti=str(refresh["jti"]))


def session_ends_at(session: LoginSession) -> datetime:
    """When a session ends whatever its refreshes: ``CHAT_SESSION_MAX_SECONDS`` after its login."""
    return session.created_at + timedelta(seconds=settings.CHAT_SESSION_MAX_SECONDS)


def session_started_after() -> datetime:
    """Sessions created at or before this instant have outlived ``CHAT_SESSION_MAX_SECONDS``."""
    return timezone.now() - timedelta(seconds=settings.CHAT_SESSION_MAX_SECONDS)


def session_expired(session: LoginSession) -> bool:
    return timezone.now() >= session_ends_at(session)


def access_token_seconds() -> int:
    return int(settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds())


def _session_id(token) -> UUID:
    try:
        return UUID(str(token[SESSION_CLAIM]))
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidToken("Token carries no session.") from exc


def decode_access(raw: str) -> UUID:
    """Return the session id of a valid access token (refresh tokens are refused).

    A token string verified once is not verified again while it has not
    expired (``_verified``): clients reconnecting after a network blip
    or a deploy present the same token, and its signature check cost more
    than the session look-up that follows. Once its expiry has come, it goes
    through simplejwt again (which refuses it, with its leeway).
    """
    digest = hashlib.blake2b(raw.encode(), digest_size=16).digest()
    with _verified_lock:
        known = _verified.get(digest)
        if known is not None:
            _verified.move_to_end(digest)
    if known is None:
        token = _verify_access(raw)
        known = (_session_id(token), float(token["exp"]))
        with _verified_lock:
            _verified[digest] = known
            if len(_verified) > VERIFIED_TOKENS:
                _verified.popitem(last=False)
    session_id, expires = known
    if expires <= time.time():
        _verify_access(raw)  # raises: expired
    return session_id


# Verified access tokens, by a 16-byte BLAKE2b digest of the token rather than the
# token itself (about 300 bytes; another token passing for a verified one would
# need a 128-bit second preimage): {digest: (session id, expiry in epoch
# seconds)}, the most recently used last. Refusals are never kept.
VERIFIED_TOKENS = 4096
_verified: OrderedDict[bytes, tuple[UUID, float]] = OrderedDict()
_verified_lock = threading.Lock()


def _verify_access(raw: str) -> AccessToken:
    try:
        return AccessToken(raw)
    except TokenError as exc:
        raise InvalidToken(str(exc)) from exc


@receiver(setting_changed)
def _forget_verified_tokens(*, setting: str, **kwargs) -> None:
    """A new signing key or lifetime (tests, mostly) must not meet tokens checked under the old."""
    if setting in {"SIMPLE_JWT", "SECRET_KEY"}:
        with _verified_lock:
            _verified.clear()


def decode_refresh(raw: str) -> tuple[UUID, str]:
    """Return the session id and jti of a valid refresh token."""
    try:
        token = RefreshToken(raw, verify=True)
    except TokenError as exc:
        raise InvalidToken(str(exc)) from exc
    return _session_id(token), str(token.get("jti", ""))


_SESSION_FIELDS = [field.attname for field in LoginSession._meta.concrete_fields]
_USER_FIELDS = [field.attname for field in User._meta.concrete_fields]


def _session_with_user(session_id: UUID) -> LoginSession | None:
    """The session and its user, read in one query (a join), compiled once (``core.prepared``)."""
    rows = prepared_rows(
        "accounts.session_with_user",
        lambda value: LoginSession.objects.filter(id=value).values_list(
            *_SESSION_FIELDS, *(f"user__{name}" for name in _USER_FIELDS)
        ),
        field=LoginSession._meta.pk,
        value=session_id,
    )
    if not rows:
        return None
    row, split = rows[0], len(_SESSION_FIELDS)
    session = LoginSession.from_db(DEFAULT_DB_ALIAS, _SESSION_FIELDS, row[:split])
    session.user = User.from_db(DEFAULT_DB_ALIAS, _USER_FIELDS, row[split:])
    return session


def authenticate_access_token(raw: str) -> tuple[User, LoginSession]:
    """Resolve an access token to its user and open session, or raise.

    The one check shared by REST authentication and the WebSocket handshake:
    one query for the session joined to its user.
    """
    session_id = decode_access(raw)
    session = _session_with_user(session_id)
    if session is None:
        raise InvalidToken("Session not found.")
    if not session.user.is_active:
        raise InactiveUser("User is inactive.")
    if session.ended_at is not None or session_expired(session):
        raise InvalidToken("Session has ended.")
    return session.user, session
