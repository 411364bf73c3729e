"""The per-user limiter itself: rate strings, fixed windows, settings that refuse a bad rate."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.errors import RateLimited
from core.rates import Rate, parse_rate
from core.userlimits import (
    LocalWindows,
    enforce_user_rate,
    reset_user_limits,
    user_limit,
    user_rate_allows,
)
from tests.servers import ROOT


@pytest.mark.parametrize(
    ("text", "rate"),
    [("10/h", Rate(10, 3600)), ("60/m", Rate(60, 60)), ("5/10m", Rate(5, 600)), (" 1 / s ", Rate(1, 1))],
)
def test_rates_parse(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "10", "10/x", "0/m", "-1/m", "ten/m", "10/0m", "10/m/h"])
def test_bad_rates_are_configuration_errors(text):
    with pytest.raises(ImproperlyConfigured, match="CHAT_X_RATE"):
        parse_rate(text, name="CHAT_X_RATE")


def test_a_window_allows_the_limit_then_refuses_until_it_ends(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("core.userlimits.time.monotonic", lambda: now[0])
    windows, rate = LocalWindows(), Rate(3, 60)
    assert [windows.hit("a", rate) for _ in range(3)] == [None] * 3
    now[0] += 20
    assert windows.hit("a", rate) == pytest.approx(40)
    assert windows.hit("b", rate) is None  # another key, another window
    now[0] += 40
    assert windows.hit("a", rate) is None  # a new window


def test_kinds_and_users_count_apart(settings):
    settings.CHAT_MEMBERSHIP_RATE = "2/m"
    settings.CHAT_READ_RATE = "1/m"
    reset_user_limits()
    me, other = uuid.uuid4(), uuid.uuid4()
    assert user_rate_allows("membership", me) and user_rate_allows("membership", me)
    assert not user_rate_allows("membership", me)
    assert user_rate_allows("membership", other)
    enforce_user_rate("read", me)
    with pytest.raises(RateLimited) as refused:
        enforce_user_rate("read", me)
    assert refused.value.code == "rate_limited" and refused.value.http_status == 429
    assert 59 < refused.value.retry_after <= 60
    assert "Too many read requests" in refused.value.detail


def test_the_rate_is_read_from_settings_once(settings):
    settings.CHAT_CONNECT_RATE = "7/h"
    reset_user_limits()
    assert user_limit("connect").rate == Rate(7, 3600)
    settings.CHAT_CONNECT_RATE = "8/h"
    assert user_limit("connect").rate == Rate(7, 3600)


def test_defaults_are_the_contracts_and_a_bad_rate_stops_the_start():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "DJANGO_"))}
    env.update(DJANGO_SETTINGS_MODULE="chatsite.settings.base", DEBUG="1")
    show = (
        "from django.conf import settings as s;"
        "print(s.CHAT_CHANNEL_CREATE_RATE, s.CHAT_MEMBERSHIP_RATE, s.CHAT_READ_RATE, s.CHAT_CONNECT_RATE)"
    )
    run = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {show}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.stdout.split() == ["10/h", "60/m", "120/m", "60/m"], run.stderr
    run = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {show}"],
        cwd=ROOT,
        env={**env, "CHAT_READ_RATE": "120 per minute"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "CHAT_READ_RATE must look like 10/h" in run.stderr
