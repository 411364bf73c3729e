"""Per-user limits on actions (``CHAT_*_RATE``): so many attempts per window, for every process.

One limiter serves every such limit. A rate is a setting like ``10/h`` or
``60/m`` (``N/[k]s|m|h|d``, as django-ratelimit writes them), parsed once.
Each user gets a fixed window per kind of action, opened by their first
attempt: the first ``N`` attempts pass, the rest are refused until the window
ends, and ``retry_after`` is the time left in it. With ``REDIS_URL`` set the
windows live in Redis (one atomic script: INCR, and PEXPIRE on the first
attempt), so the limit holds across processes; otherwise, and while Redis is
unreachable, in this process.

The services call ``enforce_user_rate`` (a ``RateLimited``, 429 over REST and
a ``rate_limited`` error frame over the WebSocket) or ``user_rate_allows``
(for the limits that drop silently or close the socket instead).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import redis
from django.conf import settings

from core.errors import RateLimited
from core.rates import Rate, parse_rate
from core.redis import redis_client

logger = logging.getLogger(__name__)

# The limits, by kind: the setting each reads and the refusal its users see.
LIMITS: dict[str, tuple[str, str]] = {
    "channel_create": ("CHAT_CHANNEL_CREATE_RATE", "Too many channels created"),
    "membership": ("CHAT_MEMBERSHIP_RATE", "Too many membership changes"),
    "read": ("CHAT_READ_RATE", "Too many read requests"),
    "connect": ("CHAT_CONNECT_RATE", "Too many connections opened"),
    "profile": ("CHAT_PROFILE_RATE", "Too many profile changes"),
}


class WindowCounter(Protocol):
    def hit(self, key: str, rate: Rate) -> float | None:
        """Count one attempt under ``key``: None within ``rate``, else the seconds left in the window."""


class LocalWindows:
    """Windows in this process (the embedded mode, and Redis's stand-in while it is away)."""

    MAX_KEYS = 100_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}

    def hit(self, key: str, rate: Rate) -> float | None:
        now = time.monotonic()
        with self._lock:
            count, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + rate.period
                if len(self._windows) >= self.MAX_KEYS:
                    self._forget_ended(now)
            count += 1
            self._windows[key] = (count, ends)
        return None if count <= rate.limit else ends - now

    def _forget_ended(self, now: float) -> None:
        for key in [k for k, (_, ends) in self._windows.items() if ends <= now]:
            del self._windows[key]


# KEYS: the user's window for one kind. ARGV: the period in ms. Returns
# {attempts in the window, ms until it ends}; the first attempt opens the
# window, on Redis's clock, so every process counts in the same one.
_LUA_WINDOW = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


class RedisWindows:
    """Windows in Redis, shared by every process; counted locally while Redis is unreachable."""

    def __init__(self, client: redis.Redis, *, prefix: str) -> None:
        self.prefix = prefix
        self._script = client.register_script(_LUA_WINDOW)
        self._fallback = LocalWindows()

    def hit(self, key: str, rate: Rate) -> float | None:
        try:
            count, ttl_ms = self._script(keys=[f"{self.prefix}{key}"], args=[rate.period * 1000])
        except redis.RedisError as exc:
            logger.warning("user rate limit: Redis unavailable (%s); counting in this process", exc)
            return self._fallback.hit(key, rate)
        return None if int(count) <= rate.limit else max(int(ttl_ms), 1) / 1000


@dataclass(frozen=True)
class UserLimit:
    kind: str
    rate: Rate
    refusal: str
    counter: WindowCounter

    def hit(self, user_id: UUID) -> float | None:
        """Count one attempt by ``user_id``; None when allowed, else the seconds to wait."""
        return self.counter.hit(f"{self.kind}:{user_id.hex}", self.rate)


_counter: WindowCounter | None = None
_limits: dict[str, UserLimit] = {}
_lock = threading.Lock()


def _window_counter() -> WindowCounter:
    global _counter
    if _counter is None:
        if settings.REDIS_URL:
            prefix = getattr(settings, "CHAT_RATE_KEY_PREFIX", "chat:rate:")
            _counter = RedisWindows(redis_client(settings.REDIS_URL), prefix=f"{prefix}user:")
        else:
            _counter = LocalWindows()
    return _counter


def user_limit(kind: str) -> UserLimit:
    """The process's limit of this kind (its rate read from settings once)."""
    limit = _limits.get(kind)
    if limit is None:
        with _lock:
            limit = _limits.get(kind)
            if limit is None:
                setting, refusal = LIMITS[kind]
                rate = parse_rate(getattr(settings, setting), name=setting)
                limit = _limits[kind] = UserLimit(kind, rate, refusal, _window_counter())
    return limit


def user_rate_allows(kind: str, user_id: UUID) -> bool:
    """Count one attempt; False past the limit (for limits that drop or close rather than refuse)."""
    return user_limit(kind).hit(user_id) is None


def enforce_user_rate(kind: str, user_id: UUID) -> None:
    """Count one attempt; past the limit raise ``RateLimited`` (429, or a ``rate_limited`` frame)."""
    limit = user_limit(kind)
    retry_after = limit.hit(user_id)
    if retry_after is not None:
        raise RateLimited(
            f"{limit.refusal}; try again in {max(1, math.ceil(retry_after))} s.",
            retry_after=retry_after,
            kind=kind,
        )


def reset_user_limits() -> None:
    """Forget the limits and this process's windows, so the next attempt reads the settings again (tests)."""
    global _counter
    with _lock:
        _limits.clear()
        _counter = None
