"""Moderation against a real server: a superuser's browser session in the admin reaches real sockets."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

from tests.conftest import DEFAULT_PASSWORD
from tests.e2e.wsclient import Socket, bearer, register_and_login
from tests.servers import ROOT

pytestmark = pytest.mark.e2e

CSRF_FIELD = re.compile(rb'name="csrfmiddlewaretoken" value="([^"]+)"')


class AdminBrowser:
    """The admin over real HTTP; cookies go by hand (the server marks them Secure, the test speaks HTTP)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.cookies: dict[str, str] = {}

    def _headers(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def get(self, path: str) -> requests.Response:
        response = requests.get(
            self.base_url + path, headers=self._headers(), allow_redirects=False, timeout=10
        )
        self.cookies.update(response.cookies.get_dict())
        return response

    def submit(self, path: str, data: dict) -> requests.Response:
        """GET the page, then POST its form with the page's CSRF token, as a browser does."""
        page = self.get(path)
        assert page.status_code == 200, (path, page.status_code)
        token = CSRF_FIELD.search(page.content).group(1).decode()
        response = requests.post(
            self.base_url + path,
            data={**data, "csrfmiddlewaretoken": token},
            headers=self._headers(),
            allow_redirects=False,
            timeout=10,
        )
        self.cookies.update(response.cookies.get_dict())
        return response


def make_superuser(server, username: str) -> None:
    code = (
        "from accounts.models import User; "
        f"User.objects.filter(username={username!r}).update(is_staff=True, is_superuser=True)"
    )
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=server.env, check=True, timeout=60
    )


async def test_admin_moderation_reaches_real_sockets(live_server_proc):
    base = live_server_proc.base_url
    moderator, ada, bob = (register_and_login(base, prefix) for prefix in ("mod", "ada", "bob"))
    make_superuser(live_server_proc, moderator["username"])
    admin = AdminBrowser(base)
    login = admin.submit(
        "/admin/login/?next=/admin/",
        {"username": moderator["username"], "password": DEFAULT_PASSWORD, "next": "/admin/"},
    )
    assert login.status_code == 302, login.text[-500:]

    # In a channel of its own: the lobby is shared with other tests on this server.
    channel = f"mod-{ada['username']}"
    created = requests.post(f"{base}/api/channels/", json={"name": channel}, headers=bearer(ada), timeout=10)
    assert created.status_code == 201, created.text
    joined = requests.post(f"{base}/api/channels/{channel}/join", headers=bearer(bob), timeout=10)
    assert joined.status_code == 200, joined.text
    watcher = await Socket.open(live_server_proc.ws_base, bob)
    doomed = await Socket.open(live_server_proc.ws_base, ada)
    try:
        posted = requests.post(
            f"{base}/api/messages",
            json={"channel": channel, "content": "rude words"},
            headers=bearer(ada),
            timeout=10,
        )
        assert posted.status_code == 201, posted.text
        message_id = posted.json()["id"]
        await watcher.recv_type("message")

        # Delete the message on its delete page: the member's socket sees the tombstone.
        deleted = admin.submit(f"/admin/messaging/message/{message_id}/delete/", {"post": "yes"})
        assert deleted.status_code == 302
        updated = await watcher.recv_type("message_updated")
        assert (updated["change"], updated["message"]["id"], updated["message"]["content"]) == (
            "deleted",
            message_id,
            "",
        )

        # Deactivate the author with the changelist action: their socket closes with 4403.
        user_id = requests.get(f"{base}/api/users/me", headers=bearer(ada), timeout=10).json()["id"]
        action = admin.submit(
            "/admin/accounts/user/", {"action": "deactivate_users", "_selected_action": user_id}
        )
        assert action.status_code == 302
        assert await doomed.close_code() == 4403

        # Both are in the audit log, which the admin lists.
        log = admin.get(f"/admin/accounts/auditrecord/?q={ada['username']}")
        assert log.status_code == 200
        assert f"message {message_id}".encode() in admin.get("/admin/accounts/auditrecord/").content
        assert f"user {ada['username']}".encode() in log.content
    finally:
        await watcher.close()
        await doomed.close()
