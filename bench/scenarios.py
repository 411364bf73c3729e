"""The benchmark scenarios, each driving the public contract over real sockets.

Every scenario returns rows (plain dicts) with its figures, the delivery
tally (lost, duplicated, out of order, unacknowledged), the server's and
the load tool's CPU share, and ``flagged`` when any count is non-zero or a
request failed. The users come from ``seed_chat --tokens`` (see
``bench.orchestrate.seed`` for the prefixes and their layout).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field

import aiohttp
import orjson

from bench.accounting import Ledger, Tally
from bench.client import (
    ChatClient,
    close_all,
    connect,
    connect_many,
    make_content,
    parse_sent_at,
    quiet,
    stream_of,
    tokens_for,
)
from bench.procstats import CpuWindow, server_rss_kib

_run_numbers = itertools.count(1)


@dataclass
class Context:
    http_base: str  # http://127.0.0.1:PORT
    tokens: dict[str, str]
    server_pid: int | None = None
    fan_prefix: str = "fan"
    room_prefix: str = "room"
    idle_prefix: str = "idle"
    drain_seconds: float = 30.0
    notes: list[str] = field(default_factory=list)

    @property
    def ws_base(self) -> str:
        return "ws" + self.http_base.removeprefix("http")

    def new_tag(self, kind: str) -> str:
        """A client_id prefix unique to one measured phase."""
        return f"b{kind}{int(time.time()) % 100000}x{next(_run_numbers)}-"


def percentiles_ms(samples: list[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(samples)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return round(ordered[min(last, int(q * len(ordered)))] * 1000, 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": round(ordered[last] * 1000, 3)}


def cdf_points(samples: list[float], points: int = 200) -> list[float]:
    """Latency quantiles in ms, evenly spaced in probability, for the CDF plot."""
    if not samples:
        return []
    ordered = sorted(samples)
    return [
        round(ordered[min(len(ordered) - 1, int(i * len(ordered) / points))] * 1000, 3) for i in range(points)
    ]


def _row(scenario: str, label: str, cpu: CpuWindow, tally: Tally | None, **figures) -> dict:
    row = {"scenario": scenario, "label": label, "seconds": round(cpu.wall, 3), **figures, **cpu.as_dict()}
    if tally is not None:
        row.update(tally.as_dict())
    # ``pending``: sent but never acknowledged, even after the drain.
    failures = (figures.get("errors") or 0) + (figures.get("pending") or 0)
    row["flagged"] = bool((tally is not None and not tally.clean) or failures)
    return row


def _retarget(clients: list[ChatClient], tag: str, ledger: Ledger) -> None:
    """Point connected clients at a new phase: its tag, a fresh ledger, no hooks."""
    for client in clients:
        client.tag, client.ledger, client.tracks = tag, ledger, {}
        client.on_message = client.on_ack = None


async def _drain(done, *, limit: float, stall: float = 3.0) -> None:
    """Wait until ``done()`` or no progress for ``stall`` s (losses) or ``limit`` s."""
    deadline = time.monotonic() + limit
    last, last_change = None, time.monotonic()
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        now_progress = done.progress()
        if now_progress != last:
            last, last_change = now_progress, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return


class _Progress:
    """Callable 'finished?' plus a progress reading for ``_drain``."""

    def __init__(self, finished, progress) -> None:
        self._finished, self.progress = finished, progress

    def __call__(self) -> bool:
        return self._finished()


# --- fanout -----------------------------------------------------------------


async def fanout(
    ctx: Context, *, subscribers: int, seconds: float, window: int, rate: float, rate_seconds: float
):
    """One channel, ``subscribers`` connected members, one of them sending.

    Two phases on the same connections: a closed loop at most ``window``
    messages ahead of the slowest delivery count (deliveries/s at
    saturation), then a fixed ``rate`` (latency from the send time embedded
    in each message's content).
    """
    users = tokens_for(ctx.tokens, ctx.fan_prefix, subscribers)
    clients = await connect_many(ctx.ws_base, users, tag="-", concurrency=50)
    try:
        rooms = [
            name for name in clients[0].channels if name.lower().startswith(f"{ctx.fan_prefix}-".lower())
        ]
        if not rooms:
            raise RuntimeError(f"{clients[0].username} is in no {ctx.fan_prefix} channel")
        channel = rooms[0]
        await quiet(clients)
        rows = [await _fanout_saturation(ctx, clients, channel, seconds=seconds, window=window)]
        await quiet(clients)
        rows.append(await _fanout_rate(ctx, clients, channel, rate=rate, seconds=rate_seconds))
    finally:
        await close_all(clients)
    return rows


async def _fanout_saturation(
    ctx: Context, clients: list[ChatClient], channel: str, *, seconds: float, window: int
):
    n = len(clients)
    tag = ctx.new_tag("f")
    ledger = Ledger()
    _retarget(clients, tag, ledger)
    stream = stream_of(channel)
    for client in clients:
        client.subscribe(stream)
    sender = clients[0]
    state = {"sent": 0, "delivered": 0, "stop": False, "last": 0.0}
    deadline = time.perf_counter() + seconds
    budget = window * n

    def top_up() -> None:
        while not state["stop"] and state["sent"] * n - state["delivered"] < budget:
            number = state["sent"]
            state["sent"] = number + 1
            sender.send_message(channel, make_content(tag, number, time.perf_counter()), f"{tag}{number}")

    def on_message(client: ChatClient, message: dict, now: float) -> None:
        state["delivered"] += 1
        state["last"] = now
        if now >= deadline:
            state["stop"] = True
        else:
            top_up()

    def on_ack(client: ChatClient, frame: dict) -> None:
        ledger.acked(stream, frame["seq"])

    for client in clients:
        client.on_message = on_message
    sender.on_ack = on_ack
    cpu = CpuWindow(ctx.server_pid)
    cpu.start()
    started = time.perf_counter()
    top_up()
    while time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
        top_up()  # after a loss nothing else would refill the window
    state["stop"] = True
    await _drain(
        _Progress(
            lambda: ledger.acked_count() == state["sent"] and state["delivered"] >= state["sent"] * n,
            lambda: (state["delivered"], ledger.acked_count()),
        ),
        limit=ctx.drain_seconds,
    )
    cpu.stop()
    span = max(state["last"] - started, 1e-9)
    tally = ledger.tally()
    return _row(
        "fanout",
        f"fanout n={n}",
        cpu,
        tally,
        subscribers=n,
        window=window,
        sent=state["sent"],
        pending=state["sent"] - ledger.acked_count(),
        deliveries_per_s=round(tally.delivered / span, 1),
        messages_per_s=round(ledger.acked_count() / span, 1),
    )


async def _fanout_rate(ctx: Context, clients: list[ChatClient], channel: str, *, rate: float, seconds: float):
    n = len(clients)
    tag = ctx.new_tag("r")
    ledger = Ledger()
    _retarget(clients, tag, ledger)
    stream = stream_of(channel)
    for client in clients:
        client.subscribe(stream)
    sender = clients[0]
    latencies: list[float] = []

    def on_message(client: ChatClient, message: dict, now: float) -> None:
        latencies.append(now - parse_sent_at(message["content"]))

    for client in clients:
        client.on_message = on_message
    sender.on_ack = lambda client, frame: ledger.acked(stream, frame["seq"])
    total = max(1, int(rate * seconds))
    cpu = CpuWindow(ctx.server_pid)
    cpu.start()
    started = time.perf_counter()
    for number in range(total):
        delay = started + number / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sender.send_message(channel, make_content(tag, number, time.perf_counter()), f"{tag}{number}")
    await _drain(
        _Progress(
            lambda: ledger.acked_count() == total and len(latencies) >= total * n,
            lambda: (len(latencies), ledger.acked_count()),
        ),
        limit=ctx.drain_seconds,
    )
    cpu.stop()
    return _row(
        "fanout-latency",
        f"fanout n={n} at {rate:g} msg/s",
        cpu,
        ledger.tally(),
        subscribers=n,
        rate=rate,
        sent=total,
        pending=total - ledger.acked_count(),
        latency_ms=percentiles_ms(latencies),
        latency_cdf_ms=cdf_points(latencies),
    )


# --- rooms ------------------------------------------------------------------


async def rooms(ctx: Context, *, channels: int, members: int, seconds: float, depth: int = 2):
    """``channels`` rooms of ``members`` connected members, every member sending.

    Each member keeps ``depth`` of its own messages in flight: it sends the
    next one when its previous one comes back to it.
    """
    users = tokens_for(ctx.tokens, ctx.room_prefix, channels * members)
    tag = ctx.new_tag("m")
    ledger = Ledger()
    clients = await connect_many(ctx.ws_base, users, tag=tag, ledger=ledger, concurrency=50)
    try:
        prefix = f"{ctx.room_prefix}-".lower()
        room_of: dict[ChatClient, str] = {}
        for client in clients:
            mine = [name for name in client.channels if name.lower().startswith(prefix)]
            if not mine:
                raise RuntimeError(f"{client.username} is in no {ctx.room_prefix} channel")
            room_of[client] = mine[0]
        for client in clients:
            client.subscribe(stream_of(room_of[client]))
        await quiet(clients)
        state = {"delivered": 0, "stop": False, "last": 0.0, "sent": 0}
        numbers = itertools.count()
        deadline = time.perf_counter() + seconds

        def send(client: ChatClient) -> None:
            number = next(numbers)
            state["sent"] += 1
            client.send_message(
                room_of[client], make_content(tag, number, time.perf_counter()), f"{tag}{number}"
            )

        def on_message(client: ChatClient, message: dict, now: float) -> None:
            state["delivered"] += 1
            state["last"] = now
            if now >= deadline:
                state["stop"] = True
            elif message["username"] == client.username:
                send(client)

        def on_ack(client: ChatClient, frame: dict) -> None:
            ledger.acked(stream_of(room_of[client]), frame["seq"])

        for client in clients:
            client.on_message, client.on_ack = on_message, on_ack
        cpu = CpuWindow(ctx.server_pid)
        cpu.start()
        started = time.perf_counter()
        for _ in range(depth):
            for client in clients:
                send(client)
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        state["stop"] = True
        await _drain(
            _Progress(
                lambda: (
                    ledger.acked_count() == state["sent"] and state["delivered"] >= state["sent"] * members
                ),
                lambda: (state["delivered"], ledger.acked_count()),
            ),
            limit=ctx.drain_seconds,
        )
        cpu.stop()
        span = max(state["last"] - started, 1e-9)
        tally = ledger.tally()
        return [
            _row(
                "rooms",
                f"rooms {channels}x{members}",
                cpu,
                tally,
                channels=channels,
                members=members,
                sent=state["sent"],
                pending=state["sent"] - ledger.acked_count(),
                deliveries_per_s=round(tally.delivered / span, 1),
                messages_per_s=round(ledger.acked_count() / span, 1),
            )
        ]
    finally:
        await close_all(clients)


# --- idle -------------------------------------------------------------------


async def idle(ctx: Context, *, connections: int, hold: float = 3.0):
    """``connections`` open sockets doing nothing: the server's RSS per connection.

    One lobby message at the end checks that every connection is still live
    (each must receive it exactly once).
    """
    users = tokens_for(ctx.tokens, ctx.idle_prefix, connections)
    tag = ctx.new_tag("i")
    ledger = Ledger()
    # One connection first, so code loaded on first use is not counted per connection.
    warm = await connect(ctx.ws_base, *users[0], tag=tag)
    await close_all([warm])
    await asyncio.sleep(0.5)
    rss_before = server_rss_kib(ctx.server_pid) if ctx.server_pid else None
    clients = await connect_many(ctx.ws_base, users, tag=tag, ledger=ledger, concurrency=50)
    try:
        for client in clients:
            client.subscribe("")
        await quiet(clients)
        cpu = CpuWindow(ctx.server_pid)
        cpu.start()
        await asyncio.sleep(hold)
        cpu.stop()
        rss_after = server_rss_kib(ctx.server_pid) if ctx.server_pid else None
        got = {"n": 0}

        def on_message(client: ChatClient, message: dict, now: float) -> None:
            got["n"] += 1

        for client in clients:
            client.on_message = on_message
        clients[0].on_ack = lambda client, frame: ledger.acked("", frame["seq"])
        clients[0].send_message(None, make_content(tag, 0, time.perf_counter()), f"{tag}0")
        await _drain(
            _Progress(lambda: ledger.acked_count() == 1 and got["n"] >= len(clients), lambda: got["n"]),
            limit=ctx.drain_seconds,
        )
        per_connection = None
        if rss_before is not None:
            per_connection = round((rss_after - rss_before) / len(clients), 2)
        return [
            _row(
                "idle",
                f"idle {len(clients)} connections",
                cpu,
                ledger.tally(),
                connections=len(clients),
                rss_before_kib=rss_before,
                rss_after_kib=rss_after,
                rss_per_connection_kib=per_connection,
            )
        ]
    finally:
        await close_all(clients)


# --- connect ----------------------------------------------------------------


async def connects(ctx: Context, *, total: int, concurrency: int = 32, users: int = 200):
    """Handshakes per second: token check, ``ready`` and the connect ``history``, then close."""
    pool = tokens_for(ctx.tokens, ctx.idle_prefix, min(users, total))
    tag = ctx.new_tag("c")
    gate = asyncio.Semaphore(concurrency)
    durations: list[float] = []
    failures: list[str] = []
    opened: list[ChatClient] = []

    async def one(index: int) -> None:
        username, token = pool[index % len(pool)]
        async with gate:
            began = time.perf_counter()
            try:
                client = await connect(ctx.ws_base, username, token, tag=tag)
            except Exception as exc:
                failures.append(repr(exc))
                return
            durations.append(time.perf_counter() - began)
            opened.append(client)
            client.close()

    cpu = CpuWindow(ctx.server_pid)
    cpu.start()
    await asyncio.gather(*(one(i) for i in range(total)))
    cpu.stop()
    await close_all(opened)
    return [
        _row(
            "connect",
            f"connect x{total} ({concurrency} at a time)",
            cpu,
            None,
            handshakes=len(durations),
            errors=len(failures),
            first_error=failures[0] if failures else None,
            connects_per_s=round(len(durations) / cpu.wall, 1),
            latency_ms=percentiles_ms(durations),
        )
    ]


# --- rest -------------------------------------------------------------------


async def rest(ctx: Context, *, clients: int = 32, seconds: float = 10.0):
    """``GET /api/messages`` in a closed loop from ``clients`` concurrent clients.

    Each page is checked: ascending seq per channel and no repeated id.
    """
    pool = tokens_for(ctx.tokens, ctx.room_prefix, clients)
    counts = {"ok": 0, "errors": 0, "disorder": 0}
    first_error: list[str] = []
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    url = f"{ctx.http_base}/api/messages"

    async def worker(session: aiohttp.ClientSession, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                async with session.get(url, headers=headers) as response:
                    body = await response.read()
                    status = response.status
            except aiohttp.ClientError as exc:
                counts["errors"] += 1
                first_error.append(repr(exc))
                continue
            durations.append(time.perf_counter() - began)
            if status != 200:
                counts["errors"] += 1
                first_error.append(f"HTTP {status}: {body[:200]!r}")
                continue
            counts["ok"] += 1
            if not page_in_order(orjson.loads(body)["results"]):
                counts["disorder"] += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        cpu = CpuWindow(ctx.server_pid)
        cpu.start()
        await asyncio.gather(*(worker(session, token) for _, token in pool))
        cpu.stop()
    tally = Tally(out_of_order=counts["disorder"])
    return [
        _row(
            "rest",
            f"rest GET /api/messages x{clients} clients",
            cpu,
            tally,
            clients=clients,
            requests=counts["ok"],
            errors=counts["errors"],
            first_error=first_error[0] if first_error else None,
            requests_per_s=round(counts["ok"] / cpu.wall, 1),
            latency_ms=percentiles_ms(durations),
        )
    ]


def page_in_order(results: list[dict]) -> bool:
    """A page of messages: ids unique, seqs ascending within each channel."""
    highest: dict[str | None, int] = {}
    ids = set()
    for message in results:
        if message["id"] in ids:
            return False
        ids.add(message["id"])
        channel = message.get("channel")
        if message["seq"] <= highest.get(channel, 0):
            return False
        highest[channel] = message["seq"]
    return True
