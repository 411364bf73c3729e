"""The nginx configuration of docs/deploy.md, run for real in front of two server processes.

``deploy/nginx.conf`` is the documented file (docs/deploy.md quotes it, and a
test below holds the two equal). The live tests render it with only the
ports, the certificate and the log paths replaced, run Debian's ``nginx`` in
the foreground against two ``bin/server`` processes sharing one SQLite file,
and check through nginx over TLS what a deployment depends on: the public
Host and the https scheme reach the server, the client address the server
records is nginx's ``$remote_addr`` (never a client-sent X-Forwarded-For),
the WebSocket upgrade, nginx's own limits, the 1001 close when a process
stops, and that no token is written to any log.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import urllib3
import websockets
from requests.adapters import HTTPAdapter

from tests.conftest import DEFAULT_PASSWORD
from tests.servers import ROOT, ServerProcess, free_port, server_database

CONFIG = ROOT / "deploy" / "nginx.conf"
DOC = ROOT / "docs" / "deploy.md"
PUBLIC_HOST = "chat.example.com"
HEADERS = ("Host $host", "X-Forwarded-For $remote_addr", "X-Forwarded-Proto $scheme")

# /usr/sbin is not on every user's PATH.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin:/sbin")
NO_NGINX = "nginx or openssl is not installed (apt-get install nginx openssl; bin/test installs them in CI)"
needs_nginx = pytest.mark.skipif(NGINX is None or shutil.which("openssl") is None, reason=NO_NGINX)


def documented_block() -> str:
    """The ```nginx block that follows the marker naming deploy/nginx.conf in docs/deploy.md."""
    text = DOC.read_text()
    marker = "<!-- deploy/nginx.conf, quoted verbatim -->"
    assert text.count(marker) == 1, f"docs/deploy.md must quote deploy/nginx.conf once after {marker!r}"
    match = re.search(r"```nginx\n(.*?)```\n", text[text.index(marker) :], re.DOTALL)
    assert match, "no ```nginx block after the marker"
    return match.group(1)


def test_the_doc_quotes_the_tested_file_verbatim():
    assert documented_block() == CONFIG.read_text()


LOCATION = re.compile(r"^    location ([^{\n]+)\{(.*?)\n    \}", re.DOTALL | re.MULTILINE)


def uncommented(text: str) -> str:
    return re.sub(r"#.*", "", text)


def location_blocks(text: str) -> dict[str, str]:
    """Each ``location`` block's body by its argument (the file has no nested blocks in them)."""
    return {m.group(1).strip(): m.group(2) for m in LOCATION.finditer(uncommented(text))}


def test_every_proxying_location_sets_host_and_forwarded_headers():
    """nginx inherits proxy_set_header only into a location that sets none of its own."""
    text = CONFIG.read_text()
    proxying = {name: body for name, body in location_blocks(text).items() if "proxy_pass" in body}
    assert set(proxying) == {"/api/ws/", "/api/auth/", "/"}
    for name, body in proxying.items():
        for header in HEADERS:
            assert re.search(
                rf"proxy_set_header {header.split()[0]}\s+{re.escape(header.split()[1])};", body
            ), f"location {name} lacks proxy_set_header {header}"
    assert "proxy_set_header" not in LOCATION.sub("", uncommented(text))
    assert "$proxy_add_x_forwarded_for" not in uncommented(text)


def test_no_log_format_carries_the_query_string():
    text = uncommented(CONFIG.read_text())
    formats = re.findall(r"log_format\s+\w+\s+(.*?);", text, re.DOTALL)
    assert formats
    for variable in ("$request ", '$request"', "$request_uri", "$args", "$query_string", "$arg_"):
        assert all(variable not in fmt for fmt in formats), variable
    for line in re.findall(r"^\s*access_log .*$", text, re.MULTILINE):
        assert line.split()[-1] == "chat;", f"an access log without the chat format: {line.strip()}"


# --- Rendering and running the file --------------------------------------------


@dataclass
class Nginx:
    directory: Path
    https_port: int
    http_port: int
    process: subprocess.Popen | None = None
    servers: list[ServerProcess] = field(default_factory=list)
    database: Path | None = None
    tokens: list[str] = field(default_factory=list)

    @property
    def access_log(self) -> Path:
        return self.directory / "chat.access.log"

    @property
    def error_logs(self) -> list[Path]:
        return [self.directory / "chat.error.log", self.directory / "error.log"]

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.https_port}{path}"


def render(directory: Path, *, upstream_ports: list[int], http_port: int, https_port: int) -> Path:
    """Write nginx.conf (main context) around deploy/nginx.conf with test ports, paths and certificate."""
    site = CONFIG.read_text()
    upstream = re.compile(r"^    server 127\.0\.0\.1:800\d (.*)$", re.MULTILINE)
    params = upstream.search(site).group(1)
    site = upstream.sub("", site, count=0)
    site = site.replace(
        "upstream chat_backend {\n",
        "upstream chat_backend {\n"
        + "".join(f"    server 127.0.0.1:{port} {params}\n" for port in upstream_ports),
    )
    replacements = {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:80;": "",  # the test machine may have no IPv6
        "listen [::]:443 ssl;": "",
        f"/etc/letsencrypt/live/{PUBLIC_HOST}/fullchain.pem": str(directory / "cert.pem"),
        f"/etc/letsencrypt/live/{PUBLIC_HOST}/privkey.pem": str(directory / "key.pem"),
        "/var/log/nginx/": f"{directory}/",
    }
    for old, new in replacements.items():
        assert old in site, f"deploy/nginx.conf no longer has {old!r}; update the test's rendering"
        site = site.replace(old, new)
    (directory / "chat.conf").write_text(site)
    temp = {name: directory / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the test's 0700 directories
    main = directory / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        + "".join(f"    {name}_temp_path {path};\n" for name, path in temp.items())
        + f"    access_log {directory}/default.access.log;\n"
        f"    include {directory}/chat.conf;\n"
        "}\n"
    )
    return main


def make_certificate(directory: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={PUBLIC_HOST}", "-keyout", str(directory / "key.pem"),
         "-out", str(directory / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip


def wait_for_port(port: int, process: subprocess.Popen, log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited:\n{log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not listen")


@pytest.fixture(scope="module")
def nginx(tmp_path_factory) -> Iterator[Nginx]:
    if NGINX is None or shutil.which("openssl") is None:
        pytest.skip(NO_NGINX)
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("the nginx test runs in the SQLite pass: it tests the proxy, not the database")
    directory = tmp_path_factory.mktemp("nginx")
    database = server_database(
        directory,
        {
            "ALLOWED_HOSTS": f"{PUBLIC_HOST},127.0.0.1",
            "CHAT_TRUST_X_FORWARDED_FOR": "1",
            "CHAT_BEHIND_TLS_PROXY": "1",
            "CHAT_SSL_REDIRECT": "1",
        },
    )
    servers = [
        ServerProcess(
            port=free_port(),
            env=database.env,
            log_path=directory / f"server{n}.log",
            probe_headers={"X-Forwarded-Proto": "https"},
        )
        for n in range(2)
    ]
    proxy = Nginx(directory=directory, https_port=free_port(), http_port=free_port(), servers=servers)
    proxy.database = directory / "db.sqlite3"
    try:
        for server in servers:
            server.start()
        make_certificate(directory)
        main = render(
            directory,
            upstream_ports=[s.port for s in servers],
            http_port=proxy.http_port,
            https_port=proxy.https_port,
        )
        command = [NGINX, "-p", str(directory), "-c", str(main), "-e", str(directory / "error.log")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stderr
        proxy.process = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(proxy.https_port, proxy.process, directory / "error.log")
        yield proxy
    finally:
        if proxy.process is not None:
            proxy.process.send_signal(signal.SIGQUIT)
            try:
                proxy.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proxy.process.kill()
                proxy.process.wait()
        for server in servers:
            server.stop()
        for step in database.cleanup:
            step()


class SourceAddress(HTTPAdapter):
    """Connect from a chosen loopback address (127.0.0.0/8 is all local on Linux)."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def client(address: str = "127.0.0.1") -> requests.Session:
    session = requests.Session()
    session.mount("https://", SourceAddress(address))
    session.mount("http://", SourceAddress(address))
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify=False
    session.verify = False  # the test's self-signed certificate
    session.headers["Host"] = PUBLIC_HOST
    return session


@pytest.fixture(autouse=True)
def _quiet_tls_warnings():
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def account(proxy: Nginx, session: requests.Session | None = None) -> dict:
    """Register and log in through nginx; remember the tokens for the log checks."""
    session = session or client()
    username = f"ngx{uuid.uuid4().hex[:10]}"
    body = {"username": username, "email": f"{username}@example.com", "password": DEFAULT_PASSWORD}
    response = session.post(proxy.url("/api/auth/register"), json=body, timeout=30)
    assert response.status_code == 201, response.text
    login = session.post(
        proxy.url("/api/auth/login"),
        json={"username": username, "password": DEFAULT_PASSWORD},
        headers={"X-Forwarded-For": "203.0.113.9"},  # a client's spoof: nginx must overwrite it
        timeout=30,
    )
    assert login.status_code == 200, login.text
    tokens = login.json()
    proxy.tokens += [tokens["access"], tokens["refresh"]]
    return {"username": username, **tokens}


def tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def open_socket(proxy: Nginx, user: dict):
    """A WebSocket through nginx, opened as a browser on the public site would; ready and history read."""
    ws = await websockets.connect(
        f"wss://{PUBLIC_HOST}/api/ws/{user['username']}?token={user['access']}",
        host="127.0.0.1",
        port=proxy.https_port,
        ssl=tls_context(),
        origin=f"https://{PUBLIC_HOST}",
        max_size=None,
        open_timeout=10,
    )
    frames = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(2)]
    assert [f["type"] for f in frames] == ["ready", "history"], frames
    return ws


async def round_trip(ws, content: str) -> dict:
    client_id = uuid.uuid4().hex
    await ws.send(
        json.dumps({"type": "message", "channel": None, "content": content, "client_id": client_id})
    )
    seen: dict[str, dict] = {}
    while not {"ack", "message"} <= set(seen):
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame["type"] == "ack" and frame["client_id"] == client_id:
            seen["ack"] = frame
        elif frame["type"] == "message" and frame["message"]["client_id"] == client_id:
            seen["message"] = frame["message"]
    return seen["message"]


# --- Through nginx ------------------------------------------------------------------


@needs_nginx
def test_the_config_passes_nginx_t(tmp_path):
    make_certificate(tmp_path)
    main = render(tmp_path, upstream_ports=[free_port()], http_port=free_port(), https_port=free_port())
    checked = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


@pytest.mark.e2e
def test_host_and_scheme_reach_the_server(nginx):
    """REST answers 200 for the public host over https (not 400 DisallowedHost, nor a 301 to https)."""
    session = client()
    user = account(nginx, session)
    me = session.get(
        nginx.url("/api/users/me"), headers={"Authorization": f"Bearer {user['access']}"}, timeout=10
    )
    assert me.status_code == 200, me.text
    assert me.json()["username"] == user["username"]
    # Both processes serve it (round robin over the upstream).
    for _ in range(4):
        assert session.get(nginx.url("/api/ready"), timeout=10).status_code == 200
    ports = {str(server.port) for server in nginx.servers}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        served = set(
            re.findall(
                r"GET /api/ready HTTP/1.1\" 200 .* upstream=127\.0\.0\.1:(\d+)/200",
                nginx.access_log.read_text(),
            )
        )
        if served == ports:
            break
        time.sleep(0.1)
    assert served == ports
    # Plain http is redirected to https by nginx, path kept.
    plain = requests.get(
        f"http://127.0.0.1:{nginx.http_port}/api/ready",
        headers={"Host": PUBLIC_HOST},
        allow_redirects=False,
        timeout=10,
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"https://{PUBLIC_HOST}/api/ready"


@pytest.mark.e2e
def test_the_server_records_nginxs_client_address_not_a_spoofed_one(nginx):
    """Logged in from 127.0.0.2 with X-Forwarded-For: 203.0.113.9: the session says 127.0.0.2."""
    user = account(nginx, client("127.0.0.2"))
    with sqlite3.connect(nginx.database) as db:
        rows = db.execute(
            "SELECT s.client_address FROM accounts_loginsession s JOIN accounts_user u ON u.id = s.user_id"
            " WHERE u.username = ?",
            (user["username"],),
        ).fetchall()
    assert rows == [("127.0.0.2",)]


@pytest.mark.e2e
def test_nginx_limits_logins_per_client_address_with_429_and_retry_after(nginx):
    """Past the burst (20) at 1/s, nginx answers 429 itself, like the server's own limits."""
    flood = client("127.0.0.3")
    answers = [
        flood.post(nginx.url("/api/auth/login"), json={"username": f"x{n}", "password": "wrong"}, timeout=10)
        for n in range(40)
    ]
    statuses = [r.status_code for r in answers]
    assert set(statuses[:20]) == {401} and 429 in statuses[20:], statuses
    limited = [r for r in answers if r.status_code == 429]
    assert {r.status_code for r in answers} <= {401, 429}
    assert limited[0].headers["Retry-After"] == "1"
    assert limited[0].json() == {"detail": "Too many requests; try again shortly."}
    # Another address is not affected.
    account(nginx, client("127.0.0.2"))


@pytest.mark.e2e
def test_nginx_limits_websocket_handshakes_per_client_address(nginx):
    """Past the burst (20) at 2/s; the server answers the handshakes that pass (no token: 4xx)."""
    flood = client("127.0.0.4")
    answers = [flood.get(nginx.url("/api/ws/nobody"), timeout=10) for _ in range(40)]
    statuses = [r.status_code for r in answers]
    assert 429 in statuses and all(400 <= status < 500 for status in statuses), statuses
    assert answers[statuses.index(429)].headers["Retry-After"] == "1"


@pytest.mark.e2e
async def test_websocket_through_nginx(nginx):
    user = await asyncio.to_thread(account, nginx)
    first, second = await open_socket(nginx, user), await open_socket(nginx, user)
    for n, ws in enumerate((first, second)):
        message = await round_trip(ws, f"through nginx {n}")
        assert message["username"] == user["username"]
    await first.close()
    await second.close()


@pytest.mark.e2e
async def test_sigterm_closes_sockets_with_1001_through_nginx_and_no_log_has_a_token(nginx):
    """Runs last in this module: it stops one of the two processes."""
    user = await asyncio.to_thread(account, nginx)
    # Round robin with one worker: consecutive handshakes alternate between the processes.
    sockets = [await open_socket(nginx, user) for _ in range(4)]
    stopped, alive = nginx.servers
    # uvicorn re-raises the SIGTERM once it has shut down gracefully.
    assert await asyncio.to_thread(stopped.stop, signal.SIGTERM) in (0, -signal.SIGTERM)

    async def close_code(ws) -> int | None:
        try:
            await asyncio.wait_for(ws.recv(), 3)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else -1
        except TimeoutError:
            return None  # still open
        return None

    codes = await asyncio.gather(*(close_code(ws) for ws in sockets))
    closed = [code for code in codes if code is not None]
    assert closed and set(closed) == {1001} and None in codes, codes
    for ws, code in zip(sockets, codes, strict=True):
        if code is None:
            await round_trip(ws, "still here")
    # New handshakes fail over to the live process. nginx's failed attempt at
    # the stopped one is an error that quotes the request line, ?token= and
    # all: make sure one happened (the access log lists both upstreams).
    failed_over = re.compile(rf"GET /api/ws/{user['username']} HTTP/1.1\" 101 .* upstream=\S+, \S+/502, 101")
    for _ in range(4):
        ws = await open_socket(nginx, user)
        await round_trip(ws, "after failover")
        await ws.close()
        await asyncio.sleep(0.2)  # nginx writes the line when the socket ends
        if failed_over.search(nginx.access_log.read_text()):
            break
    else:
        pytest.fail("no WebSocket handshake went to the stopped process first")
    session = client()
    for _ in range(3):
        assert session.get(nginx.url("/api/ready"), timeout=10).status_code == 200
    for ws, code in zip(sockets, codes, strict=True):
        if code is None:
            await ws.close()

    assert alive.process.poll() is None
    time.sleep(0.2)  # nginx writes its logs on request end
    access = nginx.access_log.read_text()
    assert f'GET /api/ws/{user["username"]} HTTP/1.1" 101' in access
    assert "connect() failed" in "".join(log.read_text() for log in nginx.error_logs if log.exists())
    logs = [nginx.access_log, *nginx.error_logs, *(s.log_path for s in nginx.servers)]
    assert nginx.tokens
    for log in logs:
        text = log.read_text() if log.exists() else ""
        for token in nginx.tokens:
            assert token not in text, f"a token in {log.name}"
        assert "token=" not in text, f"a query string in {log.name}"
