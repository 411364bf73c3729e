"""Login and register limits while the shared cache (Redis) is unreachable.

They must not fail the request (a 500): they count in the process instead,
and still refuse past the limit with a Retry-After.
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from core.errors import RateLimited
from core.ratelimits import enforce_address_rate

UNREACHABLE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}


@pytest.fixture
def unreachable_cache(settings):
    """The default cache on a Redis nobody listens to (Django resets its cache handler on change)."""
    settings.CACHES = UNREACHABLE
    yield


def test_limits_count_in_the_process_while_the_cache_is_unreachable(unreachable_cache):
    request = RequestFactory().post("/api/auth/login", REMOTE_ADDR="203.0.113.7")
    for _ in range(3):
        enforce_address_rate(request, group="test.fallback", rate="3/h")
    with pytest.raises(RateLimited) as refused:
        enforce_address_rate(request, group="test.fallback", rate="3/h")
    assert refused.value.retry_after > 0
    # Another address has its own count.
    other = RequestFactory().post("/api/auth/login", REMOTE_ADDR="203.0.113.8")
    enforce_address_rate(other, group="test.fallback", rate="3/h")
