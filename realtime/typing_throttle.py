"""The typing throttle: at most one ``typing`` event per user per channel every 2 seconds.

Each frame forwarded fans out to every subscriber in every process, so the
rest are dropped silently (the contract: no error frame). A check in this
process comes first and answers most frames for free; only a frame that
passes it asks Redis (when ``REDIS_URL`` is set), with one ``SET NX PX`` on a
key per user and channel, so the limit holds across server processes too. If
Redis is away the local check alone decides: typing is best effort, and an
outage must not silence it or fail the frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import redis
from django.conf import settings

from core.redis import redis_client

logger = logging.getLogger(__name__)

TYPING_INTERVAL_SECONDS = 2.0  # the contract's window


class TypingThrottle:
    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        prefix: str = "chat:typing:",
        interval: float = TYPING_INTERVAL_SECONDS,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}  # (user hex, stream) -> when last forwarded here
        self._next_prune = 0.0

    def allowed_here(self, user_hex: str, stream: str) -> bool:
        """This process's check (and record): nothing forwarded for this user and channel lately."""
        now = time.monotonic()
        if now >= self._next_prune:  # forget stale entries, at most once per interval
            self._next_prune = now + self.interval
            self._last = {key: at for key, at in self._last.items() if now - at < self.interval}
        last = self._last.get((user_hex, stream))
        if last is not None and now - last < self.interval:
            return False
        self._last[(user_hex, stream)] = now
        return True

    async def allow(self, user_hex: str, stream: str) -> bool:
        """True when this typing event is to be forwarded; False to drop it silently."""
        if not self.allowed_here(user_hex, stream):
            return False
        if self.client is None:
            return True
        key = f"{self.prefix}{user_hex}:{stream or 'lobby'}"
        try:
            first = await asyncio.to_thread(
                self.client.set, key, b"1", nx=True, px=max(1, round(self.interval * 1000))
            )
        except redis.RedisError as exc:
            logger.info("typing throttle: Redis unavailable (%s); this process's check decides", exc)
            return True
        return bool(first)


_throttle: TypingThrottle | None = None
_lock = threading.Lock()


def get_typing_throttle() -> TypingThrottle:
    """The process's throttle: shared through Redis when ``REDIS_URL`` is set."""
    global _throttle
    if _throttle is None:
        with _lock:
            if _throttle is None:
                client = redis_client(settings.REDIS_URL) if settings.REDIS_URL else None
                _throttle = TypingThrottle(
                    client, prefix=getattr(settings, "CHAT_TYPING_KEY_PREFIX", "chat:typing:")
                )
    return _throttle


def reset_typing_throttle() -> None:
    """Forget the throttle and what it remembers (tests)."""
    global _throttle
    with _lock:
        _throttle = None
