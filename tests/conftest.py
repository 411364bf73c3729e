"""Shared fixtures: users, authenticated API clients, and a real server process."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import User
from messaging.ratelimit import reset_message_rate_limiter
from messaging.selectors import reset_recent_cache

DEFAULT_PASSWORD = "correct-Horse-battery-9"
_counter = itertools.count(1)

pytest_plugins = ["tests.servers"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with empty rate-limit counters and buckets."""
    from django.core.cache import cache

    cache.clear()
    reset_message_rate_limiter()
    reset_recent_cache()
    yield
    reset_message_rate_limiter()


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    def make(
        username: str | None = None, *, email: str | None = None, password: str = DEFAULT_PASSWORD
    ) -> User:
        n = next(_counter)
        username = username or f"user{n}"
        return services.user_register(
            username=username, email=email or f"{username.lower()}@example.com", password=password
        )

    return make


@pytest.fixture
def alice(make_user) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user) -> User:
    return make_user("bob")


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def login_tokens(user: User, password: str = DEFAULT_PASSWORD) -> dict:
    result = services.session_login(
        username=user.username, password=password, client_address="127.0.0.1", user_agent="pytest"
    )
    return {"access": result.tokens.access, "refresh": result.tokens.refresh, "session": result.session}


@pytest.fixture
def auth_client(db) -> Callable[[User], APIClient]:
    """``auth_client(user)``: an APIClient sending a fresh session's access token."""

    def make(user: User) -> APIClient:
        client = APIClient()
        tokens = login_tokens(user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        client.tokens = tokens
        return client

    return make
