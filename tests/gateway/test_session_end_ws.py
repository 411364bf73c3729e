"""Sockets close with 4401 at their next check when their session's row is gone or its lifetime is over."""

from __future__ import annotations

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from accounts.models import LoginSession
from tests.conftest import login_tokens

pytestmark = pytest.mark.django_db(transaction=True)


async def test_housekeeping_closes_sockets_of_missing_and_expired_sessions(make_user, ws_connect, settings):
    settings.CHAT_HOUSEKEEPING_SECONDS = 0.2
    settings.CHAT_SESSION_MAX_SECONDS = 3600
    gone_user, old_user, fine_user = [await database_sync_to_async(make_user)() for _ in range(3)]
    gone_tokens = await database_sync_to_async(login_tokens)(gone_user)
    old_tokens = await database_sync_to_async(login_tokens)(old_user)
    gone = await ws_connect(gone_user, gone_tokens["access"])
    old = await ws_connect(old_user, old_tokens["access"])
    fine = await ws_connect(fine_user)
    await database_sync_to_async(LoginSession.objects.filter(id=gone_tokens["session"].id).delete)()
    await database_sync_to_async(LoginSession.objects.filter(id=old_tokens["session"].id).update)(
        created_at=timezone.now() - timedelta(seconds=3601)
    )
    assert (await gone.recv_type("__closed__", timeout=5))["code"] == 4401
    assert (await old.recv_type("__closed__", timeout=5))["code"] == 4401
    await fine.send({"type": "ping"})
    await fine.recv_type("pong")
