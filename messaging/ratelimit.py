"""Per-user message rate: a token bucket (a burst, then a steady rate).

Only newly stored messages spend a token; refused messages and idempotent
resends do not. The embedded bucket lives in this process; the scaled-out one
keeps the same bucket in Redis so the limit holds across processes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol
from uuid import UUID

import redis
from django.conf import settings

from core.redis import redis_client

logger = logging.getLogger(__name__)


class MessageRateLimiter(Protocol):
    def consume(self, user_id: UUID) -> float | None:
        """Spend one token; return None, or the seconds until one is available."""

    def refund(self, user_id: UUID) -> None:
        """Give back a token spent on a message that turned out not to be new."""

    def consume_many(self, user_ids: list[UUID]) -> list[float | None]:
        """``consume`` for each of ``user_ids`` in order (a user may come more than once)."""


# A refusal always asks for a wait: a bucket a hair short of a token would otherwise answer
# 0 s (after the callers' rounding to the millisecond), and a client would retry at once.
SHORTEST_WAIT = 0.001


class LocalTokenBucket:
    def __init__(self, *, burst: int, rate: float) -> None:
        self.burst = burst
        self.rate = rate
        self._lock = threading.Lock()
        self._buckets: dict[UUID, tuple[float, float]] = {}

    def _level(self, user_id: UUID, now: float) -> float:
        tokens, stamp = self._buckets.get(user_id, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - stamp) * self.rate)

    def consume(self, user_id: UUID) -> float | None:
        now = time.monotonic()
        with self._lock:
            tokens = self._level(user_id, now)
            if tokens < 1.0:
                self._buckets[user_id] = (tokens, now)
                return max(SHORTEST_WAIT, (1.0 - tokens) / self.rate) if self.rate > 0 else 60.0
            self._buckets[user_id] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:
                self._forget_full(now)
            return None

    def consume_many(self, user_ids: list[UUID]) -> list[float | None]:
        return [self.consume(user_id) for user_id in user_ids]

    def refund(self, user_id: UUID) -> None:
        now = time.monotonic()
        with self._lock:
            self._buckets[user_id] = (min(float(self.burst), self._level(user_id, now) + 1.0), now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled; they hold no information."""
        for user_id in [u for u in self._buckets if self._level(u, now) >= self.burst]:
            del self._buckets[user_id]


# KEYS: the user's bucket. ARGV: burst, rate per second, cost (1 to spend a
# token, -1 to give one back), the shortest wait a refusal answers. Returns
# {1, "0"} when spent, {0, seconds until a token} when refused. The bucket
# lives in one hash on Redis's clock, so every
# process and connection of the user draws from it; it expires once full.
_LUA_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = burst
  stamp = now
end
local elapsed = now - stamp
if elapsed < 0 then
  elapsed = 0
end
tokens = math.min(burst, tokens + elapsed * rate)
local allowed = 1
local wait = 0
if cost > 0 and tokens < cost then
  allowed = 0
  if rate > 0 then
    wait = math.max(tonumber(ARGV[4]), (cost - tokens) / rate)
  else
    wait = 60
  end
else
  tokens = math.min(burst, tokens - cost)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'stamp', string.format('%.6f', now))
local keep = 86400000
if rate > 0 then
  keep = math.ceil((burst - tokens) / rate * 1000) + 1000
end
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', keep))
return {allowed, string.format('%.6f', wait)}
"""


class RedisTokenBucket:
    """The token bucket in Redis: one limit per user across every process.

    While Redis is unreachable the limit falls back to a bucket in this
    process, so messages keep flowing (the database is the source of truth)
    and each process still limits its own share.
    """

    def __init__(self, client: redis.Redis, *, burst: int, rate: float, prefix: str = "chat:rate:") -> None:
        self.burst = burst
        self.rate = rate
        self.prefix = prefix
        self._client = client
        self._script = client.register_script(_LUA_BUCKET)
        self._fallback = LocalTokenBucket(burst=burst, rate=rate)

    def _run(self, user_id: UUID, cost: int) -> float | None:
        allowed, wait = self._script(
            keys=[f"{self.prefix}{user_id.hex}"],
            args=[self.burst, repr(float(self.rate)), cost, SHORTEST_WAIT],
        )
        return None if int(allowed) else float(wait)

    def consume(self, user_id: UUID) -> float | None:
        try:
            return self._run(user_id, 1)
        except redis.RedisError as exc:
            logger.warning("message rate limit: Redis unavailable (%s); limiting in this process", exc)
            return self._fallback.consume(user_id)

    def consume_many(self, user_ids: list[UUID]) -> list[float | None]:
        """Every user's bucket in one round trip: the scripts run in order, in one pipeline."""
        if len(user_ids) <= 1:
            return [self.consume(user_id) for user_id in user_ids]
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    self._script(
                        keys=[f"{self.prefix}{user_id.hex}"],
                        args=[self.burst, repr(float(self.rate)), 1, SHORTEST_WAIT],
                        client=pipe,
                    )
                replies = pipe.execute()
        except redis.RedisError as exc:
            logger.warning("message rate limit: Redis unavailable (%s); limiting in this process", exc)
            return self._fallback.consume_many(user_ids)
        return [None if int(allowed) else float(wait) for allowed, wait in replies]

    def refund(self, user_id: UUID) -> None:
        try:
            self._run(user_id, -1)
        except redis.RedisError as exc:
            logger.warning("message rate limit: Redis unavailable (%s); refunding in this process", exc)
            self._fallback.refund(user_id)


_limiter: MessageRateLimiter | None = None
_limiter_lock = threading.Lock()


def get_message_rate_limiter() -> MessageRateLimiter:
    """The process's limiter: the Redis bucket when ``REDIS_URL`` is set, else a local one."""
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                if settings.REDIS_URL:
                    _limiter = RedisTokenBucket(
                        redis_client(settings.REDIS_URL),
                        burst=settings.CHAT_MESSAGE_BURST,
                        rate=settings.CHAT_MESSAGE_RATE,
                        prefix=getattr(settings, "CHAT_RATE_KEY_PREFIX", "chat:rate:"),
                    )
                else:
                    _limiter = LocalTokenBucket(
                        burst=settings.CHAT_MESSAGE_BURST, rate=settings.CHAT_MESSAGE_RATE
                    )
    return _limiter


def reset_message_rate_limiter() -> None:
    """Drop the limiter so the next call reads the limits again (tests change them).

    Local buckets go with it; Redis buckets stay in Redis (tests flush its
    database, and a full bucket expires by itself).
    """
    global _limiter
    with _limiter_lock:
        _limiter = None
