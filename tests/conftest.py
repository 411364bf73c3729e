"""Shared fixtures: users, authenticated API clients, and a real server process."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import User
from core.userlimits import reset_user_limits
from messaging.ratelimit import reset_message_rate_limiter
from messaging.reads import deferred_reads
from messaging.selectors import reset_recent_cache
from realtime.envelopes import HUB_EVENT_TYPE
from realtime.presence_store import get_presence_store
from realtime.typing_throttle import reset_typing_throttle

DEFAULT_PASSWORD = "correct-Horse-battery-9"
_counter = itertools.count(1)

pytest_plugins = ["tests.servers"]


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with empty rate-limit counters and buckets."""
    from django.core.cache import cache

    cache.clear()
    reset_message_rate_limiter()
    reset_user_limits()
    reset_recent_cache()
    reset_typing_throttle()
    yield
    reset_message_rate_limiter()
    reset_user_limits()
    deferred_reads.reset()
    reset_typing_throttle()


@pytest.fixture
def rates(settings):
    """``rates(CHAT_MEMBERSHIP_RATE="2/h", ...)``: these per-user limits from now on in this test."""

    def set_rates(**values: str) -> None:
        for name, value in values.items():
            setattr(settings, name, value)
        reset_user_limits()

    return set_rates


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


@pytest.fixture
def connections():
    """Mark users as connected in the presence store; forget them afterwards."""
    opened: list[tuple] = []

    def connect(user) -> None:
        connection_id = f"conn-{uuid.uuid4().hex}"
        assert get_presence_store().open(user.id, connection_id, limit=10) is not None
        opened.append((user.id, connection_id))

    yield connect
    for user_id, connection_id in opened:
        get_presence_store().close(user_id, connection_id)


@pytest.fixture
def published(monkeypatch, django_capture_on_commit_callbacks):
    """``(group, envelope)`` pairs published by on-commit callbacks run in the block.

    Use as ``with published.capture(): service(...)`` then read ``published.calls``.
    """

    class Published:
        calls: list[tuple[str, dict]] = []

        def capture(self):
            return django_capture_on_commit_callbacks(execute=True)

    recorder = Published()
    recorder.calls = []
    monkeypatch.setattr("realtime.publish.publish_all", recorder.calls.extend)
    return recorder


def envelope(kind: str, **fields) -> dict:
    """The wire shape of an envelope, written out here rather than built by the code under test."""
    return {"type": HUB_EVENT_TYPE, "kind": kind, **fields}


@pytest.fixture
def superuser(make_user) -> User:
    """A moderator with every admin permission."""
    user = make_user("moderator")
    user.is_staff = user.is_superuser = True
    user.save(update_fields=["is_staff", "is_superuser"])
    return user


@pytest.fixture
def admin_client(superuser):
    """Django's test client logged in as ``superuser``, as a moderator's browser would be."""
    from django.test import Client

    client = Client()
    client.force_login(superuser)
    return client
