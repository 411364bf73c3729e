"""The profile and login-failure limits hold across server processes (counted in Redis)."""

from __future__ import annotations

import pytest
import requests

from tests.servers import register_and_login

pytestmark = pytest.mark.services


def test_profile_and_login_failure_limits_are_shared_by_every_process(cluster):
    first, second = cluster(
        2, CHAT_PROFILE_RATE="3/m", CHAT_LOGIN_FAILURE_RATE="100/m", CHAT_LOGIN_USERNAME_RATE="2/m"
    )
    account = register_and_login(first.base_url, "lim")
    headers = {"Authorization": f"Bearer {account['access']}"}
    statuses = [
        requests.patch(f"{server.base_url}/api/users/me", json={}, headers=headers, timeout=30).status_code
        for server in (first, second, first)
    ]
    assert statuses == [200, 200, 200]
    refused = requests.patch(f"{second.base_url}/api/users/me", json={}, headers=headers, timeout=30)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60

    body = {"username": "nobody-here", "password": "wrong-Password-1"}
    assert requests.post(f"{first.base_url}/api/auth/login", json=body, timeout=30).status_code == 401
    assert requests.post(f"{second.base_url}/api/auth/login", json=body, timeout=30).status_code == 401
    refused = requests.post(f"{first.base_url}/api/auth/login", json=body, timeout=30)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
