"""The one way the server opens a Redis client (presence, message rate limits)."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def redis_client(url: str) -> redis.Redis:
    """A thread-safe client that fails fast when Redis is away and reconnects when it is back."""
    return redis.Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
    )
