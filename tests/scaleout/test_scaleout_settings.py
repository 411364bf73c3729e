"""The scale-out settings read from the environment: channel layer choice, presence timing."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.servers import ROOT

PRINT = (
    "from django.conf import settings; "
    "print(settings.CHANNEL_LAYERS['default']['BACKEND'], "
    "settings.CHAT_PRESENCE_TTL_SECONDS, settings.CHAT_HOUSEKEEPING_SECONDS)"
)


def settings_with(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHAT_", "REDIS_", "DJANGO_"))}
    clean.update(DJANGO_SETTINGS_MODULE="chatsite.settings.test", **env)
    code = f"import django; django.setup(); {PRINT}"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)


def test_pubsub_layer_and_presence_timing_by_default():
    result = settings_with(REDIS_URL="redis://127.0.0.1:6379/14")
    assert result.stdout.split() == ["realtime.layers.PubSubLayer", "45.0", "15.0"]


def test_core_layer_and_shorter_presence_timing_on_request():
    result = settings_with(
        REDIS_URL="redis://127.0.0.1:6379/14",
        CHAT_CHANNEL_LAYER="core",
        CHAT_PRESENCE_TTL="3",
        CHAT_HOUSEKEEPING_SECONDS="1",
    )
    assert result.stdout.split() == ["channels_redis.core.RedisChannelLayer", "3.0", "1.0"]


def test_unknown_layer_and_a_ttl_below_two_heartbeats_are_refused():
    for env in (
        {"CHAT_CHANNEL_LAYER": "carrier-pigeon"},
        {"CHAT_PRESENCE_TTL": "20", "CHAT_HOUSEKEEPING_SECONDS": "15"},
    ):
        result = settings_with(REDIS_URL="redis://127.0.0.1:6379/14", **env)
        assert result.returncode != 0
        assert "ImproperlyConfigured" in result.stderr
