"""What an idle WebSocket connection keeps alive in the server, by allocation site.

Opens N connections in process through ``chatsite.asgi.application`` (the
same ASGI app the server runs), each waiting for its connect ``history``, and
traces only the second half: a warm-up connection and the first N/2 load
code and fill whatever grows once per process, so the ``tracemalloc``
difference over the last N/2 is what each further idle connection keeps. It
prints the KiB per connection, grouped by the first frame in the project or a
library (not the standard library), and the top single lines.

What it does not see: the ASGI server's own objects per connection (uvicorn's
protocol, parser and buffers; stood in for here by a plain scope dict and a
receive coroutine, reported apart as "harness") and the allocator's
fragmentation. ``bench/run --scenarios idle`` reads the whole process's RSS.

Data live in a throwaway SQLite file: N users seeded with ``seed_chat`` (in
no channel, invisible, as the benchmark's idle users), plus a lobby of 60
messages.

Run from the repository root::

    .venv/bin/python bench/idle_memory.py [--connections 500] [--top 25] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import tracemalloc
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARNESS = str(Path(__file__).resolve())
STDLIB = os.path.dirname(os.__file__)
HARNESS_SITE = "harness (stands in for the ASGI server)"

ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "chatsite.settings.base",
    "DEBUG": "0",
    "SECRET_KEY": "idle-memory-benchmark-secret-key-0123456789abcdefghijklmnop",
    "REDIS_URL": "",
    "CHAT_MAX_CONNECTIONS_PER_USER": "1000",
    "CHAT_CONNECT_RATE": "100000/m",
    # No housekeeping round during a measurement.
    "CHAT_HOUSEKEEPING_SECONDS": "3600",
    "CHAT_PRESENCE_TTL": "7200",
    "CHAT_LOG_LEVEL": "WARNING",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--top", type=int, default=25, help="sites and lines to print")
    parser.add_argument("--frames", type=int, default=12, help="traceback depth kept by tracemalloc")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    return parser.parse_args()


def start_django(folder: str, users: int) -> dict[str, str]:
    """Settings, a migrated SQLite file, ``users`` seeded users; return {username: access token}."""
    os.environ.update(ENVIRONMENT, DATABASE_URL=f"sqlite:///{Path(folder) / 'idle.sqlite3'}")
    sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent)]
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    tokens = Path(folder) / "tokens.json"
    call_command(
        "seed_chat",
        "--prefix=idle",
        f"--users={users + 1}",
        "--channels=0",
        "--messages=60",
        "--status=offline",
        f"--tokens={tokens}",
        "--token-seconds=86400",
        "--no-progress",
        verbosity=0,
    )
    return json.loads(tokens.read_text())


class Connection:
    """One socket as the ASGI server would drive it: connect, then silence."""

    def __init__(self, application, username: str, token: str) -> None:
        self.application = application
        self.scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": f"/api/ws/{username}",
            "raw_path": f"/api/ws/{username}".encode(),
            "query_string": f"token={token}".encode(),
            "headers": [(b"host", b"127.0.0.1:8000"), (b"upgrade", b"websocket")],
            "subprotocols": [],
            "state": {},
            "extensions": {"websocket.http.response": {}},
        }
        self.connected = False
        self.ready = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.application(self.scope, self.receive, self.send))

    async def receive(self) -> dict:
        if not self.connected:
            self.connected = True
            return {"type": "websocket.connect"}
        await self.closed
        return {"type": "websocket.disconnect", "code": 1000}

    async def send(self, message: dict) -> None:
        if message["type"] == "websocket.close":
            if not self.ready.done():
                self.ready.set_exception(RuntimeError(f"closed: {message}"))
        elif (
            message["type"] == "websocket.send"
            and '"type":"history"' in message.get("text", "")[:40]
            and not self.ready.done()
        ):
            self.ready.set_result(None)

    async def close(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.task is not None:
            await self.task


async def open_all(application, tokens: list[tuple[str, str]], concurrency: int = 50) -> list[Connection]:
    connections = []
    for start in range(0, len(tokens), concurrency):
        batch = [Connection(application, *pair) for pair in tokens[start : start + concurrency]]
        for connection in batch:
            connection.start()
        await asyncio.gather(*(connection.ready for connection in batch))
        connections += batch
    return connections


def site_of(trace: tracemalloc.Traceback) -> str:
    """The innermost frame outside the standard library ("harness" when that is this script)."""
    frames = list(trace)  # most recent call last
    for frame in reversed(frames):
        if not frame.filename.startswith(STDLIB) or "site-packages" in frame.filename:
            if frame.filename == HARNESS:
                return HARNESS_SITE
            return f"{_short(frame.filename)}:{frame.lineno}"
    frame = frames[-1]
    return f"{_short(frame.filename)}:{frame.lineno}"


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.replace(STDLIB + "/", "")


def measure(tokens: dict[str, str], n: int, frames: int) -> dict:
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    pairs = sorted(tokens.items())

    async def run() -> dict:
        from chatsite.asgi import application

        warm = await open_all(application, pairs[:1])
        await warm[0].close()
        # A first half untraced: whatever grows once per process (caches, pools) grows here.
        first = await open_all(application, pairs[1 : n // 2 + 1])
        gc.collect()
        tracemalloc.start(frames)
        before = tracemalloc.take_snapshot()
        connections = await open_all(application, pairs[n // 2 + 1 : n + 1])
        await asyncio.sleep(0.2)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        for connection in first + connections:
            await connection.close()
        return _report(before, after, len(connections))

    return async_to_sync(run)()


def _report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int) -> dict:
    sites: dict[str, int] = defaultdict(int)
    for stat in after.compare_to(before, "traceback"):
        sites[site_of(stat.traceback)] += stat.size_diff
    lines = after.compare_to(before, "lineno")
    harness = sites.pop(HARNESS_SITE, 0)
    total = sum(sites.values())
    return {
        "connections": n,
        "kib_per_connection": total / n / 1024,
        "harness_kib_per_connection": harness / n / 1024,
        "sites": sorted(((site, size / n) for site, size in sites.items()), key=lambda item: -item[1]),
        "lines": [(str(stat.traceback[0]), stat.size_diff / n) for stat in lines],
    }


def print_report(result: dict, top: int) -> None:
    print(
        f"{result['connections']} idle connections traced:"
        f" {result['kib_per_connection']:.2f} KiB per connection allocated by the application"
        f" (harness: {result['harness_kib_per_connection']:.2f} KiB)"
    )
    print("\nbytes per connection, by the first frame outside the standard library:")
    for site, size in result["sites"][:top]:
        print(f"{size:9.0f}  {site}")
    print("\nbytes per connection, by line:")
    for line, size in result["lines"][:top]:
        print(f"{size:9.0f}  {_short(line)}")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="idle_memory-") as folder:
        tokens = start_django(folder, args.connections)
        result = measure(tokens, args.connections, args.frames)
        from django.db import connections

        connections.close_all()
    print_report(result, args.top)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
