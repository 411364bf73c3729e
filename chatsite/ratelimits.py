"""Per-client-address limits (login, register) on django-ratelimit's counters."""

from __future__ import annotations

from django_ratelimit import ALL
from django_ratelimit.core import get_usage

from chatsite.client_address import client_address_meta
from chatsite.errors import RateLimited


def _address_key(group: str, request) -> str:
    return client_address_meta(request)


def enforce_address_rate(request, *, group: str, rate: str) -> None:
    """Count this attempt against the caller's address; past ``rate`` raise a 429."""
    usage = get_usage(request, group=group, key=_address_key, rate=rate, method=ALL, increment=True)
    if usage is not None and usage["should_limit"]:
        raise RateLimited("Too many attempts; try again later.", retry_after=usage["time_left"])
