"""Reads for users and sessions: lookups ignoring case, lists sorted by name ignoring case.

Who is online is presence's question (``accounts.presence``).
"""

from __future__ import annotations

import re
from uuid import UUID

from django.db.models import QuerySet
from django.db.models.functions import Lower

from accounts.models import USERNAME_PATTERN, LoginSession, User
from accounts.tokens import session_started_after
from core.client_address import address_bucket
from core.errors import UserNotFound

_USERNAME = re.compile(USERNAME_PATTERN)


def user_get(*, username: str) -> User:
    """The user of that name ignoring case, or UserNotFound (404).

    A name no user could have is answered without a query: some databases
    refuse such strings (PostgreSQL refuses NUL) instead of finding nothing.
    """
    if not _USERNAME.match(username):
        raise UserNotFound("No such user.")
    user = User.objects.filter(username__lower=username.lower()).first()
    if user is None:
        raise UserNotFound("No such user.")
    return user


def user_list() -> QuerySet[User]:
    return User.objects.order_by(Lower("username"), "id")


def sessions_revoked(*, session_ids: list[UUID]) -> dict[UUID, bool]:
    """Which of these sessions are no longer valid: ``{session id: the user is still active}``.

    An ended session, one past ``CHAT_SESSION_MAX_SECONDS``, a session whose
    row is gone (it counts as ended), or any session of a deactivated user;
    valid ones are left out.
    """
    started_after = session_started_after()
    rows = LoginSession.objects.filter(id__in=session_ids).values_list(
        "id", "ended_at", "created_at", "user__is_active"
    )
    revoked: dict[UUID, bool] = {session_id: True for session_id in session_ids}
    for session_id, ended_at, created_at, active in rows:
        if ended_at is None and active and created_at > started_after:
            del revoked[session_id]
        else:
            revoked[session_id] = active
    return revoked


def user_address_known(*, username: str, address: str, since) -> bool:
    """Whether ``username`` logged in from ``address`` (a rate-limit bucket: IPv6 by /64) since ``since``."""
    recent = (
        LoginSession.objects.filter(user__username__lower=username.lower(), created_at__gte=since)
        .order_by("-created_at")
        .values_list("client_address", flat=True)[:100]
    )
    return any(address_bucket(known) == address for known in recent)
