"""Per-client-address limits (login, register) on django-ratelimit's counters.

The counters live in the default cache (Redis once ``REDIS_URL`` is set, so
every process shares them). While that cache is unreachable the limits are
counted in this process instead: logins and registrations keep working (they
need only the database) and each process still limits its own share, rather
than every attempt failing while Redis restarts.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from django.core.cache.backends.locmem import LocMemCache
from django_ratelimit import ALL
from django_ratelimit.core import _split_rate, get_usage

from core.client_address import client_address_meta
from core.errors import RateLimited

logger = logging.getLogger(__name__)

# Only used while the shared cache is away; entries expire with their window.
_fallback = LocMemCache("chat-address-rate-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
_fallback_lock = threading.Lock()


def _address_key(group: str, request) -> str:
    return client_address_meta(request)


def _local_usage(request, *, group: str, rate: str) -> tuple[bool, float]:
    """Count in this process: (over the limit?, seconds until the window ends)."""
    limit, period = _split_rate(rate)
    now = time.time()
    window = math.floor(now / period)
    key = f"{group}:{_address_key(group, request)}:{window}"
    with _fallback_lock:
        count = 1 if _fallback.add(key, 1, timeout=period + 1) else _fallback.incr(key)
    return count > limit, (window + 1) * period - now


def enforce_address_rate(request, *, group: str, rate: str) -> None:
    """Count this attempt against the caller's address; past ``rate`` raise a 429."""
    try:
        usage = get_usage(request, group=group, key=_address_key, rate=rate, method=ALL, increment=True)
    except Exception as exc:  # the cache backend's own errors (redis.RedisError, OSError)
        logger.warning("%s rate limit: shared cache unavailable (%s); counting in this process", group, exc)
        limited, retry_after = _local_usage(request, group=group, rate=rate)
        if limited:
            raise RateLimited("Too many attempts; try again later.", retry_after=retry_after) from None
        return
    if usage is not None and usage["should_limit"]:
        raise RateLimited("Too many attempts; try again later.", retry_after=usage["time_left"])
