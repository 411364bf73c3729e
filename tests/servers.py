"""Real server processes for end-to-end tests: ``bin/server`` on a free port.

Each server gets its own database: a temporary SQLite file, or, when the suite
runs with ``DATABASE_URL`` on PostgreSQL, a fresh database on that server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent


def register_and_login(base_url: str, prefix: str = "e2e") -> dict:
    """A fresh user on a live server, through the REST routes: ``{"username", "access", "refresh", ...}``."""
    from tests.conftest import DEFAULT_PASSWORD

    username = f"{prefix}{uuid.uuid4().hex[:10]}"
    body = {"username": username, "email": f"{username}@example.com", "password": DEFAULT_PASSWORD}
    response = requests.post(f"{base_url}/api/auth/register", json=body, timeout=30)
    assert response.status_code == 201, response.text
    login = requests.post(
        f"{base_url}/api/auth/login", json={"username": username, "password": DEFAULT_PASSWORD}, timeout=30
    )
    assert login.status_code == 200, login.text
    return {"username": username, **login.json()}


def bearer(account: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {account['access']}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)
    # Sent with the start-up probe, e.g. X-Forwarded-Proto when CHAT_SSL_REDIRECT=1.
    probe_headers: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(ROOT / "bin" / "server")],
            cwd=ROOT,
            env={**self.env, "PORT": str(self.port)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                probe = requests.get(f"{self.base_url}/api/health", headers=self.probe_headers, timeout=1)
                if probe.status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=timeout)


def _postgres_database(url: str) -> tuple[str, str]:
    """Create a fresh database beside the one in ``url``; return (new url, name)."""
    import psycopg

    name = f"chat_e2e_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}")), name


def _drop_postgres_database(url: str, name: str) -> None:
    import psycopg

    parts = urlsplit(url)
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ServerDatabase:
    env: dict[str, str]
    cleanup: list = field(default_factory=list)


def server_database(tmp_path: Path, extra_env: dict[str, str] | None = None) -> ServerDatabase:
    """Environment for server processes sharing one fresh, migrated database."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "DJANGO_")) and k != "CHAT_DATA_DIR"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatsite.settings.test",
        CHAT_DATA_DIR=str(tmp_path),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    cleanup = []
    database_url = env.get("DATABASE_URL", "")
    if database_url.startswith(("postgres://", "postgresql://")):
        new_url, name = _postgres_database(database_url)
        env["DATABASE_URL"] = new_url
        cleanup.append(lambda: _drop_postgres_database(database_url, name))
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    return ServerDatabase(env=env, cleanup=cleanup)


@contextmanager
def running_server(folder: Path, extra_env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """A real server on a free port over a fresh database in ``folder``; stopped and its database
    dropped on the way out, whatever the test did."""
    database = server_database(folder, extra_env)
    server = ServerProcess(port=free_port(), env=database.env, log_path=folder / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        for step in database.cleanup:
            step()


@pytest.fixture(scope="session")
def live_server_proc(tmp_path_factory) -> Iterator[ServerProcess]:
    """One real server process for the whole session, on a free port."""
    with running_server(tmp_path_factory.mktemp("server")) as server:
        yield server
