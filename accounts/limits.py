"""Limits on guessing passwords at login (API and admin).

(The profile route, which checks a password too, is a per-user limit:
``CHAT_PROFILE_RATE`` in ``core.userlimits``.)

Every login attempt counts against the caller's address (``CHAT_LOGIN_RATE``,
IPv6 by /64). Failed attempts also count against:

- the (username, address) pair, ``CHAT_LOGIN_FAILURE_RATE``: the tight limit.
  Only the guesser's own address is refused, so a stranger cannot lock the
  real user out with it;
- the username from every address, ``CHAT_LOGIN_USERNAME_RATE``: the slow
  limit against guessing from many addresses. Its window is short and it
  only delays; it never refuses an address the user has logged in from
  during the last ``CHAT_SESSION_MAX_SECONDS``, so the real user at their
  own address is not held up at all.

Successful logins count against neither. The checks run before the password
is hashed, so a refused attempt costs no bcrypt.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from accounts import selectors
from core.errors import RateLimited
from core.ratelimits import check_key_rate, count_key_failure

PAIR_GROUP = "login.failures.pair"
USERNAME_GROUP = "login.failures.username"


def _username_key(username: str) -> str:
    return username.strip().lower()[:150]


def login_allowed(*, username: str, address: str) -> None:
    """Raise RateLimited if this username's failures block a login from ``address`` (a bucket)."""
    name = _username_key(username)
    check_key_rate(
        group=PAIR_GROUP,
        key=f"{name}\0{address}",
        rate=settings.CHAT_LOGIN_FAILURE_RATE,
        detail="Too many failed logins for this account from your address; try again later.",
    )
    try:
        check_key_rate(
            group=USERNAME_GROUP,
            key=name,
            rate=settings.CHAT_LOGIN_USERNAME_RATE,
            detail="Too many failed logins for this account; try again shortly.",
        )
    except RateLimited:
        since = timezone.now() - timedelta(seconds=settings.CHAT_SESSION_MAX_SECONDS)
        if not selectors.user_address_known(username=name, address=address, since=since):
            raise


def login_failed(*, username: str, address: str) -> None:
    """Count one failed login (wrong password, unknown or inactive user)."""
    name = _username_key(username)
    count_key_failure(group=PAIR_GROUP, key=f"{name}\0{address}", rate=settings.CHAT_LOGIN_FAILURE_RATE)
    count_key_failure(group=USERNAME_GROUP, key=name, rate=settings.CHAT_LOGIN_USERNAME_RATE)
