"""A real server on SQLite checkpoints its write-ahead log from its own thread, not in a commit."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from tests.e2e.wsclient import Socket, register_and_login
from tests.servers import running_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="SQLite's write-ahead log"
    ),
]


def messages_in_main_file(database: Path) -> int:
    """Messages in the database file itself: ``immutable`` reads past the write-ahead log."""
    with sqlite3.connect(f"file:{database}?immutable=1", uri=True) as reader:
        return reader.execute("SELECT count(*) FROM messaging_message").fetchone()[0]


async def send_acknowledged(server, count: int) -> None:
    socket = await Socket.open(server.ws_base, register_and_login(server.base_url))
    for n in range(count):
        await socket.send({"type": "message", "channel": None, "content": f"m{n}", "client_id": f"w{n}"})
    acks = [await socket.recv_type("ack") for _ in range(count)]
    assert len({ack["id"] for ack in acks}) == count
    await socket.close()


async def wait_for_messages_in_file(database: Path, count: int, seconds: float) -> int:
    found = messages_in_main_file(database)
    for _ in range(int(seconds / 0.05)):
        if found >= count:
            break
        await asyncio.sleep(0.05)
        found = messages_in_main_file(database)
    return found


async def test_acknowledged_messages_reach_the_database_file_within_an_interval(tmp_path):
    with running_server(tmp_path, {"CHAT_SQLITE_CHECKPOINT_SECONDS": "0.2"}) as server:
        await send_acknowledged(server, 30)
        assert await wait_for_messages_in_file(tmp_path / "db.sqlite3", 30, seconds=10) == 30


async def test_with_the_checkpointer_off_they_stay_in_the_log_until_sqlite_checkpoints(tmp_path):
    """The control: 30 messages are far below SQLite's own 1,000-page threshold."""
    with running_server(tmp_path, {"CHAT_SQLITE_CHECKPOINT_SECONDS": "0"}) as server:
        await send_acknowledged(server, 30)
        assert await wait_for_messages_in_file(tmp_path / "db.sqlite3", 30, seconds=1) == 0
