"""A reader that stops reading while others flood the lobby: closed with 1013, and nobody else pays.

The slow socket has a tiny TCP receive buffer and reads nothing, so its window
fills and the server's sends to it block; its queue grows until the server
closes it with 1013. Meanwhile the server's memory stays bounded, and the
other subscribers' latency stays within a generous factor of a run without
the slow reader, measured in the same test (never an absolute time).
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time

import pytest
import websockets

from tests.fuzz.conftest import server_failures
from tests.servers import register_and_login

pytestmark = [pytest.mark.e2e, pytest.mark.services]

MESSAGES = 3_000  # per flood: past the server's 2,000-event backlog for the slow socket
SENDERS = 3
READERS = 3
PACE = 0.01  # seconds between one sender's messages: a steady flood the readers keep up with
ATTEMPTS = 2
FACTOR = 5  # the generous factor on p99 latency
SLACK = 0.25  # seconds added to the bound: a baseline near zero would make any factor meaningless
# 4 KB frames: the kernel's socket buffers (up to 4 MiB a side here) hold fewer of them, so the
# slow socket's backlog on the server reaches its limit sooner.
PADDING = "\U0001f600" * 980
RSS_BOUND_KIB = 48 * 1024  # what one slow socket may add to the server's RSS


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def slow_socket(server, account: dict):
    """A reader with a 4 KiB receive buffer and a receive queue of one frame, that then reads nothing."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    raw.setblocking(False)
    return await open_socket(url(server, account), sock=raw, max_queue=1)


def url(server, account: dict) -> str:
    return f"{server.ws_base}/api/ws/{account['username']}?token={account['access']}"


async def open_socket(address: str, **kwargs):
    ws = await websockets.connect(address, max_size=None, **kwargs)
    for expected in ("ready", "history"):
        assert json.loads(await ws.recv())["type"] == expected
    return ws


async def read_latencies(ws, phase: str, expected: int, latencies: list[float]) -> None:
    """Record each of this phase's messages' delay from send to arrival, until all arrived."""
    seen = 0
    while seen < expected:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
        if frame["type"] != "message":
            continue
        tag, sent_at, _ = frame["message"]["content"].split(" ")
        if tag == phase:
            latencies.append(time.monotonic() - float(sent_at))
            seen += 1


async def flood(senders: list, phase: str, messages: int) -> None:
    async def one(ws, count: int) -> None:
        acks = 0

        async def drain() -> None:
            nonlocal acks
            while acks < count:
                if json.loads(await asyncio.wait_for(ws.recv(), 60))["type"] == "ack":
                    acks += 1

        reader = asyncio.ensure_future(drain())
        for _ in range(count):
            text = f"{phase} {time.monotonic():.6f} {PADDING}"
            await ws.send(json.dumps({"type": "message", "channel": None, "content": text}))
            await asyncio.sleep(PACE)
        await reader

    await asyncio.gather(*(one(ws, messages // len(senders)) for ws in senders))


async def phase_latencies(senders: list, readers: list, phase: str, messages: int = MESSAGES) -> list[float]:
    latencies: list[float] = []
    await asyncio.gather(
        flood(senders, phase, messages), *(read_latencies(ws, phase, messages, latencies) for ws in readers)
    )
    return latencies


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def test_a_slow_reader_is_closed_1013_and_costs_the_others_little(postgres_server):
    server = postgres_server()
    pid = server.process.pid
    accounts = [register_and_login(server.base_url, prefix="slow") for _ in range(SENDERS + READERS + 1)]
    senders = [await open_socket(url(server, a)) for a in accounts[:SENDERS]]
    readers = [await open_socket(url(server, a)) for a in accounts[SENDERS : SENDERS + READERS]]

    warm = await phase_latencies(senders, readers, "warm", 300)  # first use: caches, pools, code paths
    # A shared machine has pauses of its own that may strike either flood: a bound missed once is
    # measured again with a new slow reader (a regression misses it both times; noise rarely does).
    for attempt in range(ATTEMPTS):
        rss_before = rss_kib(pid)
        # The same length as the flood with the slow reader: latency may creep up over a flood.
        baseline = await phase_latencies(senders, readers, f"base{attempt}")
        rss_baseline = rss_kib(pid)
        slow = await slow_socket(server, accounts[-1])
        loaded = await phase_latencies(senders, readers, f"slow{attempt}")
        rss_after = rss_kib(pid)
        # Now it reads again: whatever was in flight, then the close.
        try:
            while True:
                await asyncio.wait_for(slow.recv(), 30)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
        print(
            f"p99 warm {p99(warm) * 1000:.1f} ms, without the slow reader {p99(baseline) * 1000:.1f} ms, "
            f"with it {p99(loaded) * 1000:.1f} ms; RSS {rss_before} -> {rss_baseline} -> {rss_after} KiB"
        )
        assert code == 1013
        if p99(loaded) <= FACTOR * p99(baseline) + SLACK:
            break
    for ws in senders + readers:
        await ws.close()

    assert len(loaded) == len(baseline) == MESSAGES * READERS
    assert p99(loaded) <= FACTOR * p99(baseline) + SLACK
    assert rss_after - rss_baseline < RSS_BOUND_KIB
    assert server_failures(server) == []
