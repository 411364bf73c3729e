"""Seqs stay gapless and unique with many writers on a real server process."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.servers import bearer, register_and_login

pytestmark = pytest.mark.e2e

THREADS = 8
PER_THREAD = 25


def login(base: str, username: str) -> requests.Session:
    """A requests session of a fresh user (``username`` is a prefix)."""
    session = requests.Session()
    session.headers.update(bearer(register_and_login(base, prefix=username)))
    return session


def read_all(session: requests.Session, base: str, channel: str) -> list[dict]:
    """Every message of one stream, oldest first, by following ``previous`` links."""
    pages: list[list[dict]] = []
    url = f"{base}/api/messages"
    params: dict | None = {"channel": channel, "limit": 200}
    while url:
        response = session.get(url, params=params, timeout=30)
        assert response.status_code == 200, response.text
        pages.append(response.json()["results"])
        url, params = response.json()["previous"], None
    return [message for page in reversed(pages) for message in page]


def test_concurrent_posts_get_gapless_unique_seqs(live_server_proc):
    base = live_server_proc.base_url
    tag = uuid.uuid4().hex[:8]
    channel = f"race-{tag}"
    sessions = [login(base, f"w{tag}{i}") for i in range(THREADS)]
    assert sessions[0].post(f"{base}/api/channels/", json={"name": channel}, timeout=30).status_code == 201
    for session in sessions[1:]:
        assert session.post(f"{base}/api/channels/{channel}/join", timeout=30).status_code == 200

    def writer(index: int) -> list[tuple[str | None, int, str]]:
        session = sessions[index]
        sent = []
        for n in range(PER_THREAD):
            for target in (channel, None):
                body = {"channel": target, "content": f"{index}/{n}", "client_id": f"{index}-{n}-{target}"}
                response = session.post(f"{base}/api/messages", json=body, timeout=60)
                assert response.status_code == 201, response.text
                sent.append((target, response.json()["seq"], response.json()["id"]))
        return sent

    with ThreadPoolExecutor(THREADS) as pool:
        sent = [item for batch in pool.map(writer, range(THREADS)) for item in batch]

    total = THREADS * PER_THREAD
    channel_seqs = sorted(seq for target, seq, _ in sent if target == channel)
    assert channel_seqs == list(range(1, total + 1))

    stored = read_all(sessions[0], base, channel)
    assert [m["seq"] for m in stored] == list(range(1, total + 1))
    assert len({m["id"] for m in stored}) == total
    # Each writer's own messages are stored in the order it sent them.
    for index in range(THREADS):
        mine = [m["content"] for m in stored if m["content"].startswith(f"{index}/")]
        assert mine == [f"{index}/{n}" for n in range(PER_THREAD)]

    # The lobby is shared with other tests on this server: its seqs must still
    # be exactly 1..n, and ours among them.
    lobby = read_all(sessions[0], base, "")
    assert [m["seq"] for m in lobby] == list(range(1, len(lobby) + 1))
    lobby_ids = {m["id"] for m in lobby}
    assert {message_id for target, _, message_id in sent if target is None} <= lobby_ids
