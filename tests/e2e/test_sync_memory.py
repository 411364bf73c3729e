"""Sync reads page by page: a 20,000-message backlog never sits in the server's memory at once."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime

import pytest

from messaging.payloads import message_row_payload
from realtime import frames
from tests.e2e.wsclient import Socket
from tests.servers import ROOT, ServerProcess, free_port, server_database

pytestmark = pytest.mark.e2e

BACKLOG = 20_000


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    for line in open(f"/proc/{pid}/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def everything_at_once_kib() -> int:
    """What holding the whole backlog's payloads and encoded frames costs, measured here."""
    now = datetime.now(UTC)
    user_id = "1" * 32
    rows = [
        ("00000000-0000-0000-0000-000000000000", n, n, None, "mem_000000", user_id,
         f"Seeded message {n} of {BACKLOG}.", now, None, None, None, False)
        for n in range(BACKLOG)
    ]  # fmt: skip
    tracemalloc.start()
    payloads = [message_row_payload(row) for row in rows]
    encoded = frames.encode(
        frames.history_frame(reason="sync", messages=payloads, has_more=False, with_channel=True)
    )
    size, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert encoded
    return size // 1024


async def test_sync_of_a_20000_message_backlog_stays_within_bounded_memory(tmp_path):
    database = server_database(tmp_path, {"CHAT_SYNC_MAX": str(BACKLOG)})
    tokens_path = tmp_path / "tokens.json"
    subprocess.run(
        [sys.executable, "manage.py", "seed_chat", "--prefix", "mem", "--users", "2", "--channels", "0",
         "--messages", str(BACKLOG), "--tokens", str(tokens_path), "--no-progress"],
        cwd=ROOT, env=database.env, check=True, capture_output=True,
    )  # fmt: skip
    token = json.loads(tokens_path.read_text())["mem_000001"]
    server = ServerProcess(port=free_port(), env=database.env, log_path=tmp_path / "server.log")
    server.start()
    try:
        socket = await Socket.open(server.ws_base, {"username": "mem_000001", "access": token})
        before = peak_rss_kib(server.process.pid)
        await socket.send({"type": "sync", "after": {"": 0}})
        received, frames_seen = 0, 0
        while (frame := await socket.recv(timeout=30))["type"] != "synced":
            if frame["type"] == "history":
                received += len(frame["messages"])
                frames_seen += 1
        growth = peak_rss_kib(server.process.pid) - before
        await socket.close()
    finally:
        server.stop()
        for step in database.cleanup:
            step()
    assert (received, frames_seen) == (BACKLOG, BACKLOG // 200)
    everything = everything_at_once_kib()
    assert growth < everything // 2, (
        f"peak RSS grew {growth} KiB; the whole backlog at once is {everything} KiB"
    )
