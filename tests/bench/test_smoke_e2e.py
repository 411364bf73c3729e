"""Every benchmark scenario at tiny sizes against a real server, so the load tool cannot rot.

No timing assertions: only that each scenario runs, measures something, and
finds no lost, duplicated or out-of-order delivery.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import orchestrate, report, scenarios
from tests.servers import ROOT, ServerProcess, free_port, server_database

pytestmark = pytest.mark.e2e

SEED = [
    # prefix, users, channels, members per channel
    ("fan", 6, 1, 6),
    ("room", 6, 2, 3),
    ("idle", 12, 0, 1),
]


@pytest.fixture(scope="module")
def bench_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bench")
    database = server_database(tmp_path, {"CHAT_MAX_CONNECTIONS_PER_USER": "50"})
    tokens = {}
    for prefix, users, channels, members in SEED:
        path = tmp_path / f"tokens-{prefix}.json"
        subprocess.run(
            [sys.executable, "manage.py", "seed_chat", "--prefix", prefix, "--users", str(users),
             "--channels", str(channels), "--members-per-channel", str(members), "--messages", "30",
             "--status", "offline", "--tokens", str(path), "--token-seconds", "3600", "--no-progress"],
            cwd=ROOT, env=database.env, check=True,
        )  # fmt: skip
        tokens.update(json.loads(path.read_text()))
    server = ServerProcess(port=free_port(), env=database.env, log_path=tmp_path / "server.log")
    server.start()
    yield server, tokens
    server.stop()
    for step in database.cleanup:
        step()


@pytest.fixture
def ctx(bench_server):
    server, tokens = bench_server
    return scenarios.Context(
        http_base=server.base_url, tokens=tokens, server_pid=server.process.pid, drain_seconds=10
    )


def assert_clean(rows):
    for row in rows:
        assert "error" not in row, row
        assert not row["flagged"], row
        assert row["server_cpu"] is not None


async def test_fanout(ctx):
    rows = await scenarios.fanout(ctx, subscribers=5, seconds=1, window=4, rate=5, rate_seconds=1)
    assert_clean(rows)
    saturation, fixed = rows
    assert saturation["delivered"] == saturation["expected"] > 0
    assert saturation["deliveries_per_s"] > 0
    assert fixed["delivered"] == fixed["expected"] == 5 * 5
    assert fixed["latency_ms"]["p99"] is not None


async def test_rooms(ctx):
    rows = await scenarios.rooms(ctx, channels=2, members=3, seconds=1)
    assert_clean(rows)
    assert rows[0]["delivered"] == rows[0]["expected"] > 0


async def test_idle(ctx):
    rows = await scenarios.idle(ctx, connections=10, hold=0.5)
    assert_clean(rows)
    assert rows[0]["delivered"] == 10  # the closing lobby message reached every connection once
    assert rows[0]["rss_per_connection_kib"] is not None


async def test_connect(ctx):
    rows = await scenarios.connects(ctx, total=12, concurrency=4, users=6)
    assert_clean(rows)
    assert rows[0]["handshakes"] == 12


async def test_rest(ctx):
    rows = await scenarios.rest(ctx, clients=2, seconds=0.5)
    assert_clean(rows)
    assert rows[0]["requests"] > 0


async def test_report_from_real_rows(ctx, tmp_path):
    rows = await scenarios.fanout(ctx, subscribers=3, seconds=0.5, window=2, rate=5, rate_seconds=0.4)
    for row in rows:
        row.update(config="uvicorn/memory/sqlite", run=1)
    result = {
        "date": "test",
        "commit": "test",
        "machine": {"server_core": 0, "tool_core": 1},
        "runs_per_config": 1,
        "configs": [],
        "summary": orchestrate.summarise(rows),
    }
    markdown = report.write_markdown(result, tmp_path / "r.md").read_text()
    assert "fanout n=3" in markdown
    assert len(report.write_plots(result, tmp_path, "test")) == 2
