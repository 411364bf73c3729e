"""Soak: minutes of mixed traffic against a running server; memory and descriptors flat, nothing acked lost.

Not a CI test (it runs for minutes). Start a server with limits that let the
traffic through, then point this at it with the server process's pid, which
is sampled from /proc::

    CHAT_MESSAGE_BURST=1000 CHAT_MESSAGE_RATE=1000 CHAT_REGISTER_RATE=1000/h \\
    CHAT_LOGIN_RATE=1000/m CHAT_READ_RATE=100000/m CHAT_CONNECT_RATE=1000/m \\
    PORT=8100 bin/server &
    .venv/bin/python -m bench.soak --url http://127.0.0.1:8100 --pid $! --minutes 10

The traffic, all at once for the whole run:
- idle sockets that only read;
- slow readers that stop reading for a while (their TCP window fills; the
  server closes them with 1013 when they fall too far behind), then read on
  or reconnect;
- reconnecting clients that send with a ``client_id``, drop their connection
  abruptly every few tens of seconds, reconnect, ``sync`` from the last
  position they saw and resend every message not yet acknowledged;
- steady senders.

Every few seconds it samples the server's RSS (VmRSS) and open descriptors
(/proc/PID/fd). At the end it checks that every acknowledged message is in the
history (read back over REST, page by page), stored once per ``client_id``,
and that RSS and descriptors in the last third of the run are flat against the
first third. It prints the figures and exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websockets

PASSWORD = "soak-Horse-battery-9"
RSS_GROWTH_LIMIT = 1.15  # the last third's median RSS within 15% of the first third's
FD_SLACK = 8  # descriptors the last third may hold above the first third's highest


@dataclass
class Account:
    username: str
    access: str
    refresh: str


@dataclass
class Ledger:
    """Everything sent, acknowledged and seen; shared by every client of the run."""

    acked: dict[str, str] = field(default_factory=dict)  # client_id -> message id
    acked_channel: dict[str, str | None] = field(default_factory=dict)
    sent: int = 0
    resent: int = 0
    closes: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    reconnects: int = 0
    syncs: int = 0
    delivered: int = 0


@dataclass
class Sample:
    at: float
    rss_kib: int
    fds: int


def proc_sample(pid: int, started: float) -> Sample:
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return Sample(at=time.monotonic() - started, rss_kib=rss, fds=len(os.listdir(f"/proc/{pid}/fd")))


# --- REST ------------------------------------------------------------------------------


def register(base: str, tag: str, n: int) -> Account:
    username = f"soak{tag}{n}"
    body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    response = requests.post(f"{base}/api/auth/register", json=body, timeout=30)
    response.raise_for_status()
    login = requests.post(
        f"{base}/api/auth/login", json={"username": username, "password": PASSWORD}, timeout=30
    )
    login.raise_for_status()
    tokens = login.json()
    return Account(username, tokens["access"], tokens["refresh"])


def refresh(base: str, account: Account) -> None:
    """Access tokens live 15 minutes by default: a long soak renews them on reconnect."""
    response = requests.post(f"{base}/api/auth/refresh", json={"refresh": account.refresh}, timeout=30)
    response.raise_for_status()
    account.access, account.refresh = response.json()["access"], response.json()["refresh"]


def headers(account: Account) -> dict[str, str]:
    return {"Authorization": f"Bearer {account.access}"}


def stored_messages(base: str, account: Account, channel: str | None) -> list[dict]:
    """Every message of one channel (the lobby for None), read back page by page, oldest last."""
    found: list[dict] = []
    url: str | None = f"{base}/api/messages"
    params: dict | None = {"channel": channel or "", "limit": 200}
    while url:
        response = requests.get(url, params=params, headers=headers(account), timeout=60)
        if response.status_code == 429:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        response.raise_for_status()
        page = response.json()
        found.extend(page["results"])
        url, params = page["previous"], None
    return found


# --- WebSocket clients ---------------------------------------------------------------------


class Client:
    """One user's socket: tracks positions per channel and the messages not yet acknowledged."""

    def __init__(self, base: str, account: Account, ledger: Ledger, channel: str) -> None:
        self.base, self.account, self.ledger, self.channel = base, account, ledger, channel
        self.ws = None
        self.positions: dict[str, int] = {}  # "" for the lobby
        self.pending: dict[str, tuple[str | None, str]] = {}  # client_id -> (channel, content)
        self.reader: asyncio.Task | None = None
        self.synced = asyncio.Event()

    @property
    def url(self) -> str:
        ws_base = self.base.replace("http", "ws", 1)
        return f"{ws_base}/api/ws/{self.account.username}?token={self.account.access}"

    async def open(self, *, max_queue: int | None = 64, sock: socket.socket | None = None) -> None:
        for attempt in range(20):
            try:
                self.ws = await websockets.connect(self.url, max_size=None, max_queue=max_queue, sock=sock)
                sock = None  # a socket serves one connection
                first = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
                if first["type"] != "ready":
                    raise RuntimeError(first)
                for name, state in first.get("unread", {}).items():
                    self.positions.setdefault(name, state.get("last_seq", 0))
                return
            except (TimeoutError, OSError, websockets.InvalidStatus) as exc:
                # A busy machine may not finish a handshake within websockets' 10 s: count it, retry.
                self.ledger.closes[f"on connect {type(exc).__name__}"] += 1
                await asyncio.sleep(1 + attempt)
                continue
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                self.ledger.closes[f"on connect {code}"] += 1
                if code == 4401:
                    await asyncio.to_thread(refresh, self.base, self.account)
                await asyncio.sleep(1 + attempt)
        raise RuntimeError(f"{self.account.username} could not connect")

    def take(self, frame: dict) -> None:
        kind = frame["type"]
        if kind == "ack":
            if frame.get("client_id") in self.pending:
                self.pending.pop(frame["client_id"])
                self.ledger.acked[frame["client_id"]] = frame["id"]
        elif kind in ("message", "message_updated"):
            self.seen(frame["message"])
            self.ledger.delivered += 1
        elif kind == "history":
            for message in frame["messages"]:
                self.seen(message)
        elif kind == "error":
            self.ledger.errors[frame["code"]] += 1
            if frame.get("client_id") in self.pending and frame["code"] != "rate_limited":
                self.pending.pop(frame["client_id"])  # refused: not stored, not to be resent
        elif kind == "synced":
            self.synced.set()

    def seen(self, message: dict) -> None:
        name = message["channel"] or ""
        self.positions[name] = max(self.positions.get(name, 0), message["rev"], message["seq"])

    async def read(self) -> int | None:
        """Read until the socket closes; return the close code."""
        try:
            async for text in self.ws:
                self.take(json.loads(text))
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        return self.ws.close_code

    async def send(self, channel: str | None, content: str, client_id: str | None = None) -> None:
        client_id = client_id or f"{self.account.username}-{uuid.uuid4().hex[:12]}"
        self.pending[client_id] = (channel, content)
        self.ledger.acked_channel[client_id] = channel
        self.ledger.sent += 1
        await self.ws.send(
            json.dumps({"type": "message", "channel": channel, "content": content, "client_id": client_id})
        )

    async def resume(self) -> None:
        """After a reconnect: sync from the last positions seen, then resend what was never acked."""
        self.synced.clear()
        await self.ws.send(json.dumps({"type": "sync", "after": dict(self.positions)}))
        await asyncio.wait_for(self.synced.wait(), 60)
        self.ledger.syncs += 1
        for client_id, (channel, content) in list(self.pending.items()):
            self.ledger.resent += 1
            await self.ws.send(
                json.dumps(
                    {"type": "message", "channel": channel, "content": content, "client_id": client_id}
                )
            )


async def idle(client: Client, stop: float) -> None:
    await client.open()
    reader = asyncio.ensure_future(client.read())
    while time.monotonic() < stop:
        done, _ = await asyncio.wait([reader], timeout=max(0.0, min(5.0, stop - time.monotonic())))
        if done:  # closed under us: count it, come back
            client.ledger.closes[f"idle {reader.result()}"] += 1
            client.ledger.reconnects += 1
            await client.open()
            reader = asyncio.ensure_future(client.read())
    await client.ws.close()
    await reader


async def slow_reader(client: Client, stop: float, rng: random.Random) -> None:
    """Stop reading for a while (a 4 KiB receive buffer and a receive queue of one frame, so the TCP
    window fills and the server's queue for it grows), then read on.

    Half the pauses stay under the server's keepalive (a ping after 20 s, 20 s for the pong); the
    others outlast it, and the server drops the socket as it would a vanished peer. Either way the
    reader reconnects afterwards.
    """
    host, port = client.base.split("//", 1)[1].split(":")
    while time.monotonic() < stop:
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect((host, int(port)))
        raw.setblocking(False)
        await client.open(max_queue=1, sock=raw)
        pause = rng.uniform(10, 35) if rng.random() < 0.5 else rng.uniform(45, 90)
        await asyncio.sleep(min(pause, max(0.0, stop - time.monotonic())))
        try:  # read what is there; the server may have closed the socket meanwhile
            code = await asyncio.wait_for(client.read(), 5)
            client.ledger.closes[f"slow reader after {'short' if pause < 40 else 'long'} pause: {code}"] += 1
        except TimeoutError:
            client.ledger.closes[
                f"slow reader after {'short' if pause < 40 else 'long'} pause: still open"
            ] += 1
            await client.ws.close()
        client.ledger.reconnects += 1


async def reconnecting(client: Client, stop: float, rng: random.Random) -> None:
    """Send steadily; every so often drop the connection abruptly, reconnect, sync and resend."""
    await client.open()
    reader = asyncio.ensure_future(client.read())
    n = 0
    while time.monotonic() < stop:
        drop_at = min(stop, time.monotonic() + rng.uniform(10, 40))
        while time.monotonic() < drop_at and not reader.done():
            n += 1
            try:
                await client.send(
                    rng.choice([None, client.channel]), f"reconnecting {client.account.username} {n}"
                )
            except websockets.ConnectionClosed:
                break
            await asyncio.sleep(rng.uniform(0.2, 0.6))
        if time.monotonic() >= stop and not reader.done():
            break
        if not reader.done():
            # A burst, then a drop with no close handshake: some of it is stored and unacked.
            for _ in range(rng.randint(1, 5)):
                n += 1
                await client.send(
                    rng.choice([None, client.channel]), f"reconnecting {client.account.username} {n}"
                )
            client.ws.transport.abort()
        code = (await asyncio.gather(reader, return_exceptions=True))[0]
        client.ledger.closes[f"reconnecting {code}"] += 1
        client.ledger.reconnects += 1
        await client.open()
        reader = asyncio.ensure_future(client.read())
        await client.resume()
    # Finish: everything still pending is resent until acknowledged.
    await client.resume()
    deadline = time.monotonic() + 60
    while client.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await client.ws.close()
    await asyncio.gather(reader, return_exceptions=True)


async def steady(client: Client, stop: float, rng: random.Random) -> None:
    await client.open()
    reader = asyncio.ensure_future(client.read())
    n = 0
    while time.monotonic() < stop and not reader.done():
        n += 1
        await client.send(rng.choice([None, client.channel]), f"steady {client.account.username} {n}")
        await asyncio.sleep(rng.uniform(0.3, 0.7))
    deadline = time.monotonic() + 30
    while client.pending and time.monotonic() < deadline and not reader.done():
        await asyncio.sleep(0.2)
    await client.ws.close()
    await asyncio.gather(reader, return_exceptions=True)


async def sampler(pid: int, started: float, stop: float, every: float, samples: list[Sample]) -> None:
    while time.monotonic() < stop:
        samples.append(proc_sample(pid, started))
        await asyncio.sleep(every)
    samples.append(proc_sample(pid, started))


# --- the run ----------------------------------------------------------------------------------


def thirds(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    third = max(1, len(samples) // 3)
    return samples[:third], samples[-third:]


async def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:6]
    total = args.idle + args.slow + args.reconnecting + args.steady
    accounts = [register(args.url, tag, n) for n in range(total)]
    channel = f"soak-{tag}"
    owner = accounts[0]
    requests.post(
        f"{args.url}/api/channels/", json={"name": channel}, headers=headers(owner), timeout=30
    ).raise_for_status()
    for account in accounts[1:]:
        requests.post(
            f"{args.url}/api/channels/{channel}/join", headers=headers(account), timeout=30
        ).raise_for_status()
    ledger = Ledger()
    clients = [Client(args.url, account, ledger, channel) for account in accounts]
    started = time.monotonic()
    stop = started + args.minutes * 60
    samples: list[Sample] = []
    groups = iter(clients)
    tasks = [sampler(args.pid, started, stop, args.every, samples)]
    tasks += [idle(next(groups), stop) for _ in range(args.idle)]
    tasks += [slow_reader(next(groups), stop, random.Random(rng.random())) for _ in range(args.slow)]
    tasks += [reconnecting(next(groups), stop, random.Random(rng.random())) for _ in range(args.reconnecting)]
    tasks += [steady(next(groups), stop, random.Random(rng.random())) for _ in range(args.steady)]
    await asyncio.gather(*tasks)

    # Nothing acknowledged is lost, and nothing is stored twice for one client_id.
    stored = stored_messages(args.url, owner, None) + stored_messages(args.url, owner, channel)
    by_id = {message["id"]: message for message in stored}
    lost = [client_id for client_id, message_id in ledger.acked.items() if message_id not in by_id]
    run_client_ids = Counter(m["client_id"] for m in stored if m["client_id"] in ledger.acked_channel)
    duplicates = sum(count - 1 for count in run_client_ids.values() if count > 1)
    unacked = [client_id for c in clients for client_id in c.pending]

    first, last = thirds(samples)
    rss_first = statistics.median(s.rss_kib for s in first)
    rss_last = statistics.median(s.rss_kib for s in last)
    fd_first, fd_last = max(s.fds for s in first), max(s.fds for s in last)
    report = {
        "minutes": args.minutes,
        "clients": {
            "idle": args.idle,
            "slow": args.slow,
            "reconnecting": args.reconnecting,
            "steady": args.steady,
        },
        "sent": ledger.sent,
        "resent": ledger.resent,
        "acked": len(ledger.acked),
        "lost": len(lost),
        "duplicates": duplicates,
        "unacked_at_end": len(unacked),
        "delivered_frames": ledger.delivered,
        "reconnects": ledger.reconnects,
        "syncs": ledger.syncs,
        "closes": dict(ledger.closes),
        "errors": dict(ledger.errors),
        "samples": len(samples),
        "rss_kib": {
            "first_third_median": rss_first,
            "last_third_median": rss_last,
            "max": max(s.rss_kib for s in samples),
        },
        "fds": {"first_third_max": fd_first, "last_third_max": fd_last},
        "rss_flat": rss_last <= rss_first * RSS_GROWTH_LIMIT,
        "fds_flat": fd_last <= fd_first + FD_SLACK,
        "series": [[round(s.at, 1), s.rss_kib, s.fds] for s in samples],
    }
    report["ok"] = report["rss_flat"] and report["fds_flat"] and not lost and not duplicates and not unacked
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, required=True, help="the server process, sampled from /proc")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--idle", type=int, default=20)
    parser.add_argument("--slow", type=int, default=4)
    parser.add_argument("--reconnecting", type=int, default=6)
    parser.add_argument("--steady", type=int, default=6)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between /proc samples")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path, help="write the report here as JSON")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "series"}, indent=1))
    raise SystemExit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
