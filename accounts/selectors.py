"""Reads for users and sessions: lookups ignoring case, lists sorted by name ignoring case.

Who is online is presence's question (``accounts.presence``).
"""

from __future__ import annotations

import re
from uuid import UUID

from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from accounts.models import USERNAME_PATTERN, LoginSession, User
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

    An ended session, or any session of a deactivated user; valid ones are left out.
    """
    rows = LoginSession.objects.filter(id__in=session_ids).filter(
        Q(ended_at__isnull=False) | Q(user__is_active=False)
    )
    return dict(rows.values_list("id", "user__is_active"))
