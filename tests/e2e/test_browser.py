"""A plain browser client, as the contract's example: fetch to log in, then ``ws.send(text)``.

Drives Debian's headless Chromium through the DevTools protocol; skipped where
no Chromium is installed (``apt-get install chromium``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websockets

from tests.servers import ServerProcess, free_port, server_database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed"),
]

PAGE = """<!doctype html><html><body><pre id="log"></pre><script>
const api = "http://127.0.0.1:%(port)d";
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
(async () => {
  const name = "web" + Math.random().toString(16).slice(2, 10);
  const password = "correct-Horse-battery-9";
  const json = {"Content-Type": "application/json"};
  await fetch(api + "/api/auth/register", {method: "POST", headers: json,
    body: JSON.stringify({username: name, email: name + "@example.com", password})});
  const login = await (await fetch(api + "/api/auth/login", {method: "POST", headers: json,
    body: JSON.stringify({username: name, password})})).json();
  const ws = new WebSocket("ws://127.0.0.1:%(port)d/api/ws/" + name + "?token=" + login.access);
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    log(frame.type + (frame.type === "message" ? " " + frame.message.content : ""));
    if (frame.type === "history") ws.send("hello from a browser");
  };
})().catch((error) => log("error " + error));
</script></body></html>"""


async def page_log(url: str, profile: str, seconds: float = 8.0) -> list[str]:
    """Open ``url`` in headless Chromium and return the page's log lines once it has a message."""
    port = free_port()
    chrome = subprocess.Popen(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--remote-debugging-port={port}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=1) as answer:
                    page = next(t for t in json.load(answer) if t["type"] == "page")
                break
            except (OSError, StopIteration):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as cdp:
            await cdp.send(json.dumps({"id": 1, "method": "Page.navigate", "params": {"url": url}}))
            lines: list[str] = []
            until = time.monotonic() + seconds
            while time.monotonic() < until and not any(line.startswith("ack") for line in lines):
                await asyncio.sleep(0.3)
                expression = (
                    "document.getElementById('log') ? document.getElementById('log').textContent : ''"
                )
                await cdp.send(
                    json.dumps({"id": 2, "method": "Runtime.evaluate", "params": {"expression": expression}})
                )
                while (reply := json.loads(await cdp.recv())).get("id") != 2:
                    pass
                lines = reply["result"]["result"].get("value", "").splitlines()
            return lines
    finally:
        chrome.kill()
        chrome.wait()


async def test_a_plain_browser_client_chats(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    server_port, site_port = free_port(), free_port()
    (site / "index.html").write_text(PAGE % {"port": server_port})
    origin = f"http://127.0.0.1:{site_port}"
    database = server_database(tmp_path, {"CORS_ALLOWED_ORIGINS": origin})
    server = ServerProcess(port=server_port, env=database.env, log_path=tmp_path / "server.log")
    static = ThreadingHTTPServer(
        ("127.0.0.1", site_port), functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    )
    threading.Thread(target=static.serve_forever, daemon=True).start()
    server.start()
    try:
        lines = await page_log(f"{origin}/index.html", str(tmp_path / "profile"))
    finally:
        static.shutdown()
        server.stop()
        for step in database.cleanup:
            step()
    assert lines[:2] == ["ready", "history"], lines
    assert "message hello from a browser" in lines and "ack" in lines, lines
