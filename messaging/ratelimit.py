"""Per-user message rate: a token bucket (a burst, then a steady rate).

Only newly stored messages spend a token; refused messages and idempotent
resends do not. The embedded bucket lives in this process; the scaled-out one
keeps the same bucket in Redis so the limit holds across processes.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol
from uuid import UUID

from django.conf import settings


class MessageRateLimiter(Protocol):
    def consume(self, user_id: UUID) -> float | None:
        """Spend one token; return None, or the seconds until one is available."""

    def refund(self, user_id: UUID) -> None:
        """Give back a token spent on a message that turned out not to be new."""


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
                return (1.0 - tokens) / self.rate if self.rate > 0 else 60.0
            self._buckets[user_id] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:
                self._forget_full(now)
            return None

    def refund(self, user_id: UUID) -> None:
        now = time.monotonic()
        with self._lock:
            self._buckets[user_id] = (min(float(self.burst), self._level(user_id, now) + 1.0), now)

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled; they hold no information."""
        for user_id in [u for u in self._buckets if self._level(u, now) >= self.burst]:
            del self._buckets[user_id]


_limiter: MessageRateLimiter | None = None
_limiter_lock = threading.Lock()


def get_message_rate_limiter() -> MessageRateLimiter:
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                _limiter = LocalTokenBucket(
                    burst=settings.CHAT_MESSAGE_BURST, rate=settings.CHAT_MESSAGE_RATE
                )
    return _limiter


def reset_message_rate_limiter() -> None:
    """Forget every bucket (tests change the limits between cases)."""
    global _limiter
    with _limiter_lock:
        _limiter = None
