"""The README's walk-through against a real server process over real HTTP."""

from __future__ import annotations

import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e

PASSWORD = "analytical-Engine-1843"


def test_register_login_me_logout(live_server_proc):
    base = f"{live_server_proc.base_url}/api"
    username = f"ada-{uuid.uuid4().hex[:12]}"
    email = f"{username}@example.com"

    registered = requests.post(
        f"{base}/auth/register", json={"username": username, "email": email, "password": PASSWORD}, timeout=10
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["username"] == username
    assert registered.json()["email"] == email

    login = requests.post(
        f"{base}/auth/login", json={"username": username.upper(), "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "Bearer"
    auth = {"Authorization": f"Bearer {tokens['access']}"}

    me = requests.get(f"{base}/users/me", headers=auth, timeout=10)
    assert me.status_code == 200
    assert me.json()["username"] == username
    assert me.json()["email"] == email

    public = requests.get(f"{base}/users/{username}", headers=auth, timeout=10)
    assert public.status_code == 200
    assert "email" not in public.json()

    logout = requests.post(f"{base}/auth/logout", headers=auth, timeout=10)
    assert logout.status_code == 204

    after = requests.get(f"{base}/users/me", headers=auth, timeout=10)
    assert after.status_code == 401
    assert set(after.json()) == {"detail"}
    assert (
        requests.post(f"{base}/auth/refresh", json={"refresh": tokens["refresh"]}, timeout=10).status_code
        == 401
    )


def test_real_server_never_answers_500_to_malformed_bodies(live_server_proc):
    base = f"{live_server_proc.base_url}/api"
    bodies = [b"[" * 5000, b"\xff\xfe", b'"str"', b'{"username": "\\ud800", "password": "x"}']
    for body in bodies:
        response = requests.post(
            f"{base}/auth/login", data=body, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert response.status_code == 400, (body[:20], response.status_code)
        assert response.json()
    bad_auth = requests.get(f"{base}/users/me", headers={"Authorization": "Bearer \xe9t\xe9"}, timeout=10)
    assert bad_auth.status_code == 401


def test_ready_on_the_real_server(live_server_proc):
    response = requests.get(f"{live_server_proc.base_url}/api/ready", timeout=10)
    assert response.status_code == 200
    assert response.json()["database"] == "ok"
