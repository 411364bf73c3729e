"""What a WebSocket connect costs for a user who is a member of N channels.

For N in 2, 20 and 200 it measures, in process (no server, no network):

- the SQL queries run from the handshake until the connect ``history`` frame
  arrives, once with a cold history cache and once warm;
- the wall time of that same span (handshake to ``history``), as the median,
  min and max over 15 connects, cold (``messaging.selectors.reset_recent_cache()``
  before each, where it exists) and warm (right after another connect).

Each socket is disconnected cleanly before the next one opens.

The data live in a throwaway database: a SQLite file in a temporary folder by
default, or with ``--postgres`` a fresh database ``connect_cost`` on
postgres://postgres@127.0.0.1:5432/ (dropped and created through the
``postgres`` maintenance database, dropped again at the end). It holds a lobby
of 60 messages and 200 channels of 60 messages each; the user for N is a
member of the first N channels. Seeding uses only the public services
(``user_register``, ``session_login``, ``channel_create``, ``channel_join``,
``message_send``), so the script runs unchanged on other trees.

The ASGI app ``chatsite.asgi.application`` is driven by Channels'
``WebsocketCommunicator`` under ``async_to_sync`` from the main thread, so
every ``database_sync_to_async`` step runs in the main thread, on the
connection that ``CaptureQueriesContext`` watches.

Run from the repository root::

    .venv/bin/python bench/connect_cost.py [--postgres] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://postgres@127.0.0.1:5432"
PG_DATABASE = "connect_cost"
SIZES = (2, 20, 200)
MESSAGES_PER_STREAM = 60
REPEATS = 15
PASSWORD = "Bench-connect-cost-2024"
TIMEOUT = 30.0

# Fixed, not defaults: the figures must not depend on the caller's environment.
ENVIRONMENT = {
    "DJANGO_SETTINGS_MODULE": "chatsite.settings.base",
    "DEBUG": "0",
    "SECRET_KEY": "connect-cost-benchmark-secret-key-0123456789abcdefghijklmnop",
    "REDIS_URL": "",  # embedded: in-process channel layer, presence and cache
    "CHAT_MESSAGE_BURST": "10000000",
    "CHAT_MESSAGE_RATE": "10000000",
    "CHAT_LOGIN_RATE": "100000/m",
    "CHAT_REGISTER_RATE": "100000/m",
    "CHAT_CHANNEL_CREATE_RATE": "100000/m",
    "CHAT_MEMBERSHIP_RATE": "100000/m",
    "CHAT_READ_RATE": "100000/m",
    "CHAT_CONNECT_RATE": "100000/m",
    # No housekeeping round (and its queries) during a measurement.
    "CHAT_HOUSEKEEPING_SECONDS": "3600",
    "CHAT_PRESENCE_TTL": "7200",
    "CHAT_LOG_LEVEL": "WARNING",
}


# --- set-up -------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help=f"use {PG_SERVER}/{PG_DATABASE}")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed connects per N and cache state")
    return parser.parse_args()


def postgres_admin(statement: str) -> None:
    """Run one statement in the ``postgres`` maintenance database (only to drop or create ours)."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(statement)


def fresh_postgres() -> str:
    postgres_admin(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    postgres_admin(f"CREATE DATABASE {PG_DATABASE}")
    return f"{PG_SERVER}/{PG_DATABASE}"


def fresh_sqlite(folder: str) -> str:
    return f"sqlite:///{Path(folder) / 'connect_cost.sqlite3'}"


def start_django(database_url: str) -> None:
    os.environ.update(ENVIRONMENT, DATABASE_URL=database_url)
    # The project's packages, not bench/'s own modules (client, report...), come first.
    sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent)]
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


# --- data -----------------------------------------------------------------------


def register(username: str):
    from accounts.services import user_register

    return user_register(username=username, email=f"{username}@bench.invalid", password=PASSWORD)


def access_token(username: str) -> str:
    from accounts.services import session_login

    result = session_login(
        username=username, password=PASSWORD, client_address="127.0.0.1", user_agent="connect_cost"
    )
    return result.tokens.access


def send_messages(user, channel_name: str | None, count: int) -> None:
    """``count`` messages through the service, in one transaction (one commit, not ``count``)."""
    from django.db import transaction

    from messaging.services import message_send

    with transaction.atomic():
        for i in range(count):
            message_send(user=user, channel_name=channel_name, content=f"Message {i + 1} of {count}.")


def seed_channels(count: int) -> list[str]:
    """The lobby's messages and ``count`` channels of messages, all by one owner."""
    from chatrooms.services import channel_create

    owner = register("bench_owner")
    send_messages(owner, None, MESSAGES_PER_STREAM)
    names = [f"bench-{j:04d}" for j in range(count)]
    for name in names:
        channel_create(user=owner, name=name)
        send_messages(owner, name, MESSAGES_PER_STREAM)
    return names


def seed_member(n: int, names: list[str]) -> str:
    """A user in the first ``n`` channels; return their socket path."""
    from chatrooms.services import channel_join

    username = f"bench_n{n}"
    user = register(username)
    for name in names[:n]:
        channel_join(user=user, name=name)
    return f"/api/ws/{username}?token={access_token(username)}"


def seed(sizes: tuple[int, ...]) -> dict[int, str]:
    started = time.perf_counter()
    names = seed_channels(max(sizes))
    paths = {n: seed_member(n, names) for n in sizes}
    print(f"seeded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return paths


# --- measurement ------------------------------------------------------------------


def reset_cache() -> None:
    from messaging import selectors

    reset = getattr(selectors, "reset_recent_cache", None)
    if reset is not None:
        reset()


async def until_history(communicator) -> None:
    while True:
        output = await communicator.receive_output(TIMEOUT)
        if output["type"] == "websocket.close":
            raise RuntimeError(f"socket closed before history: {output}")
        if json.loads(output["text"]).get("type") == "history":
            return


async def connect_once(path: str, *, cold: bool, capture=None) -> float:
    """Seconds from handshake to ``history``; ``capture`` (a CaptureQueriesContext) records that span."""
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator

    from chatsite.asgi import application

    gc.collect()  # not inside the timed span
    if cold:
        reset_cache()
    communicator = WebsocketCommunicator(application, path)
    if capture is not None:
        await sync_to_async(capture.__enter__)()  # in the main thread, with the database work
    started = time.perf_counter()
    connected, code = await communicator.connect(TIMEOUT)
    if not connected:
        raise RuntimeError(f"handshake refused: {code}")
    await until_history(communicator)
    elapsed = time.perf_counter() - started
    if capture is not None:
        await sync_to_async(capture.__exit__)(None, None, None)
    await communicator.disconnect()
    return elapsed


async def captured_sql(path: str, *, cold: bool) -> list[str]:
    """The SQL of one connect, handshake to ``history``."""
    from asgiref.sync import sync_to_async
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    capture = CaptureQueriesContext(connection)
    await connect_once(path, cold=cold, capture=capture)
    # ``connection`` is per thread: read the log in the main thread too.
    sql = await sync_to_async(lambda: [query["sql"] for query in capture.captured_queries])()
    if not sql:
        raise RuntimeError("no query captured: the database work did not run in the main thread")
    return sql


def summary(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms)}


async def measure_size(n: int, path: str, repeats: int) -> dict:
    await connect_once(path, cold=True)  # warm-up: hub start, code paths, database pages
    sql_cold = await captured_sql(path, cold=True)
    sql_warm = await captured_sql(path, cold=False)
    cold = [await connect_once(path, cold=True) for _ in range(repeats)]
    await connect_once(path, cold=False)
    warm = [await connect_once(path, cold=False) for _ in range(repeats)]
    return {
        "n": n,
        "queries_cold": len(sql_cold),
        "queries_warm": len(sql_warm),
        "cold": summary(cold),
        "warm": summary(warm),
        "sql_cold": sql_cold,
    }


async def measure_all(paths: dict[int, str], repeats: int) -> list[dict]:
    return [await measure_size(n, path, repeats) for n, path in paths.items()]


def measure(paths: dict[int, str], repeats: int) -> list[dict]:
    """All connects on one event loop, run from the main thread."""
    from asgiref.sync import async_to_sync
    from channels.layers import channel_layers

    channel_layers.backends.clear()  # the layer seeding published through belongs to no loop now
    return async_to_sync(measure_all)(paths, repeats)


# --- report -------------------------------------------------------------------------


def spread(figures: dict[str, float]) -> str:
    return f"{figures['median_ms']:8.1f} ({figures['min_ms']:.1f}-{figures['max_ms']:.1f})"


def table(results: list[dict], vendor: str, repeats: int) -> str:
    lines = [
        f"connect cost on {vendor}: handshake -> history frame; ms as median (min-max) of {repeats}",
        f"{'N':>5} {'queries':>7} {'warm q':>6}  {'cold ms':<22} {'warm ms':<22}",
    ]
    for row in results:
        lines.append(
            f"{row['n']:>5} {row['queries_cold']:>7} {row['queries_warm']:>6}  "
            f"{spread(row['cold']):<22} {spread(row['warm']):<22}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace, database_url: str) -> list[dict]:
    start_django(database_url)
    paths = seed(SIZES)
    results = measure(paths, args.repeats)
    from django.db import connections

    connections.close_all()
    return results


def main() -> None:
    args = parse_args()
    vendor = "postgresql" if args.postgres else "sqlite"
    with tempfile.TemporaryDirectory(prefix="connect_cost-") as folder:
        database_url = fresh_postgres() if args.postgres else fresh_sqlite(folder)
        try:
            results = run(args, database_url)
        finally:
            if args.postgres:
                postgres_admin(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
    print(table(results, vendor, args.repeats))
    if args.json:
        document = {"database": vendor, "repeats": args.repeats, "results": results}
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
