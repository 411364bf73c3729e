"""DRF authentication: a Bearer access token of an open session of an active user."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request

from accounts.models import LoginSession, User
from accounts.tokens import InactiveUser, InvalidToken, authenticate_access_token

# Record a session's use at most this often, not once per request.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class SessionTokenAuthentication(BaseAuthentication):
    """Sets ``request.user`` and ``request.auth`` (the LoginSession)."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[User, LoginSession] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        try:
            raw = header[1].decode("ascii")
            user, session = authenticate_access_token(raw)
        except (UnicodeDecodeError, InvalidToken, InactiveUser) as exc:
            raise exceptions.AuthenticationFailed("Token is invalid, expired or revoked.") from exc
        now = timezone.now()
        if now - session.last_used_at > LAST_USED_GRANULARITY:
            LoginSession.objects.filter(pk=session.pk).update(last_used_at=now)
        return user, session

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
