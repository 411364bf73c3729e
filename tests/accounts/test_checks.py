"""chat.E001: with DEBUG off, the server refuses a JWT signing key under 32 bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from accounts.checks import jwt_signing_key_check

ROOT = Path(__file__).resolve().parent.parent.parent


def with_key(settings, key: str, *, debug: bool = False) -> list:
    settings.DEBUG = debug
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": key}
    return jwt_signing_key_check()


def test_short_key_is_an_error_with_debug_off(settings):
    errors = with_key(settings, "x" * 31)
    assert [e.id for e in errors] == ["chat.E001"]
    assert isinstance(errors[0], checks.Error)
    assert "31 bytes" in errors[0].msg


def test_key_length_is_counted_in_bytes(settings):
    assert with_key(settings, "é" * 16) == []  # 32 bytes in UTF-8
    assert [e.id for e in with_key(settings, "é" * 15 + "x")] == ["chat.E001"]


def test_long_key_or_debug_passes(settings):
    assert with_key(settings, "x" * 32) == []
    assert with_key(settings, "short", debug=True) == []


def test_the_check_is_registered(settings):
    settings.DEBUG = False
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": "short"}
    assert "chat.E001" in [m.id for m in checks.run_checks(tags=["chat"])]
    settings.SIMPLE_JWT = {**settings.SIMPLE_JWT, "SIGNING_KEY": "x" * 40}
    assert checks.run_checks(tags=["chat"]) == []


def test_test_settings_pass():
    """The test servers (tests/servers.py) use these settings: they must pass the check."""
    assert checks.run_checks(tags=["chat"]) == []


@pytest.mark.parametrize(("key", "starts"), [("short-key", False), ("k" * 48, True)])
def test_the_server_application_refuses_to_load_with_a_short_key(tmp_path, key, starts):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "CHAT_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings.base",
        SECRET_KEY="s" * 64,
        CHAT_JWT_SIGNING_KEY=key,
        CHAT_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DEBUG="",
    )
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "-c", "import chatsite.asgi"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert (result.returncode == 0) is starts, result.stderr[-2000:]
    if not starts:
        assert "chat.E001" in result.stderr
