"""Fixed-window limits on the default cache: per client address, and per any key.

The counters live in the default cache (Redis once ``REDIS_URL`` is set, so
every process shares them). While that cache is unreachable the limits are
counted in this process instead: logins and registrations keep working (they
need only the database) and each process still limits its own share, rather
than every attempt failing while Redis restarts.

Address limits count an IPv6 client by its /64 (``core.client_address``).
Besides counting every attempt (:func:`enforce_address_rate`,
:func:`enforce_key_rate`), a limit can be checked without counting
(:func:`check_key_rate`) and counted only when an attempt fails
(:func:`count_key_failure`): that is how login counts failed passwords.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time

from django.core.cache import cache
from django.core.cache.backends.locmem import LocMemCache
from django_ratelimit.core import _split_rate

from core.client_address import client_address_bucket
from core.errors import RateLimited

logger = logging.getLogger(__name__)

TOO_MANY = "Too many attempts; try again later."

# Only used while the shared cache is away; entries expire with their window.
_fallback = LocMemCache("chat-address-rate-fallback", {"OPTIONS": {"MAX_ENTRIES": 100_000}})
_fallback_lock = threading.Lock()


def _window(rate: str) -> tuple[int, str, float]:
    """(limit, the window's key suffix, seconds until it ends) of ``rate`` now."""
    limit, period = _split_rate(rate)
    now = time.time()
    window = math.floor(now / period)
    return limit, f"{period}:{window}", max(1.0, (window + 1) * period - now)


def _cache_key(group: str, key: str, suffix: str) -> str:
    digest = hashlib.sha256(f"{group}\0{key}".encode()).hexdigest()
    return f"rl:{group}:{digest}:{suffix}"


def _count(group: str, key: str, rate: str, *, increment: bool) -> tuple[int, int, float]:
    """(count in this window after this call, limit, seconds left in the window)."""
    limit, suffix, left = _window(rate)
    cache_key = _cache_key(group, key, suffix)
    timeout = int(left) + 2
    try:
        if not increment:
            return int(cache.get(cache_key, 0)), limit, left
        if cache.add(cache_key, 1, timeout=timeout):
            return 1, limit, left
        return int(cache.incr(cache_key)), limit, left
    except ValueError:  # the key expired between add and incr
        cache.add(cache_key, 1, timeout=timeout)
        return 1, limit, left
    except Exception as exc:  # the cache backend's own errors (redis.RedisError, OSError)
        logger.warning("%s rate limit: shared cache unavailable (%s); counting in this process", group, exc)
        with _fallback_lock:
            if not increment:
                return int(_fallback.get(cache_key, 0)), limit, left
            if _fallback.add(cache_key, 1, timeout=timeout):
                return 1, limit, left
            return int(_fallback.incr(cache_key)), limit, left


def enforce_key_rate(*, group: str, key: str, rate: str, detail: str = TOO_MANY) -> None:
    """Count this attempt against ``key``; past ``rate`` raise RateLimited (429, Retry-After)."""
    count, limit, left = _count(group, key, rate, increment=True)
    if count > limit:
        raise RateLimited(detail, retry_after=left, kind=group)


def check_key_rate(*, group: str, key: str, rate: str, detail: str = TOO_MANY) -> None:
    """Raise RateLimited if ``key`` has already used up ``rate`` in this window; count nothing."""
    count, limit, left = _count(group, key, rate, increment=False)
    if count >= limit:
        raise RateLimited(detail, retry_after=left, kind=group)


def count_key_failure(*, group: str, key: str, rate: str) -> None:
    """Count one failed attempt against ``key`` (checked later by :func:`check_key_rate`)."""
    _count(group, key, rate, increment=True)


def enforce_address_rate(request, *, group: str, rate: str) -> None:
    """Count this attempt against the caller's address (IPv6: its /64); past ``rate`` raise a 429."""
    enforce_key_rate(group=group, key=client_address_bucket(request), rate=rate)
