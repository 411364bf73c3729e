"""Reads for users: lookups ignoring case, lists sorted by name ignoring case."""

from __future__ import annotations

import re

from django.db.models import QuerySet
from django.db.models.functions import Lower

from accounts.models import USERNAME_PATTERN, User
from accounts.presence import get_presence_store
from chatsite.errors import UserNotFound

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


def user_list_online() -> QuerySet[User]:
    """Users others see online: connected and not invisible."""
    connected = get_presence_store().all_connected()
    return user_list().filter(id__in=connected).exclude(status=User.Status.OFFLINE)


def connected_ids(users: list[User]) -> set:
    return get_presence_store().connected(user.id for user in users)
