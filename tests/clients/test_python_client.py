"""The Python client (clients/python, ``chatclient``) against real server processes.

Each test drives ``ChatClient`` over real sockets to ``bin/server`` (tests/servers.py):
a restart in the middle of a burst, every close code the contract names,
resuming with ``has_more``, access tokens of three seconds, the state kept
from the frames, and the example echo bot run as a process of its own.
Nothing of the server is mocked; waits have deadlines but no test asserts
how long anything took.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import requests
from chatclient import Backoff, ChatClient, ChatError, CloseAction, Tokens, close_action
from chatclient.state import ChatState

from tests.conftest import DEFAULT_PASSWORD
from tests.servers import ROOT, ServerProcess, register_and_login, running_server

pytestmark = pytest.mark.e2e

ECHO_BOT = ROOT / "clients" / "python" / "examples" / "echo_bot.py"


def fast_backoff() -> Backoff:
    """Short delays so that tests reconnect quickly; the algorithm is the default one."""
    return Backoff(base_delay=0.1, max_delay=1.0)


class Recorder:
    """Every event a client emits, in order."""

    def __init__(self, client: ChatClient) -> None:
        self.events: list[dict[str, Any]] = []
        for kind in ("message", "message_updated", "history", "connection", "tokens", "read", "synced"):
            client.on(kind, self.events.append)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == kind]

    def messages(self, channel: str | None) -> list[dict[str, Any]]:
        """The ``message`` events of one channel (None: the lobby)."""
        return [e["message"] for e in self.of("message") if (e["message"]["channel"] or None) == channel]

    def states(self) -> list[str]:
        return [event["state"] for event in self.of("connection")]


async def until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def clients() -> AsyncIterator[list[ChatClient]]:
    """Clients made by a test, closed after it whatever happened."""
    made: list[ChatClient] = []
    yield made
    for client in made:
        await client.close()


async def new_client(
    server: ServerProcess, made: list[ChatClient], prefix: str = "py", **options
) -> ChatClient:
    """A fresh user, registered and logged in through the client itself."""
    client = ChatClient(server.base_url, **{"backoff": fast_backoff(), **options})
    made.append(client)
    name = unique(prefix)
    await client.register(name, f"{name}@example.com", DEFAULT_PASSWORD)
    return client


def name_of(client: ChatClient) -> str:
    assert client.user is not None
    return client.user["username"]


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """One socket per user (for 4429) and sync pages capped at 5 messages (for ``has_more``)."""
    env = {"CHAT_MAX_CONNECTIONS_PER_USER": "1", "CHAT_SYNC_MAX": "5"}
    with running_server(tmp_path_factory.mktemp("pyclient"), env) as server:
        yield server


def rest_get(server: ServerProcess, path: str, token: str) -> requests.Response:
    return requests.get(f"{server.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)


# --- 1. a restart in the middle of a burst ------------------------------------------------


async def test_a_restart_mid_burst_loses_nothing_and_stores_nothing_twice(tmp_path, clients):
    with running_server(tmp_path) as server:
        sender = await new_client(server, clients, "snd")
        reader = await new_client(server, clients, "rdr")
        channel = unique("burst")
        await sender.create_channel(channel)
        await reader.join(channel)
        seen_by_reader, seen_by_sender = Recorder(reader), Recorder(sender)
        await sender.connect()
        await reader.connect()

        acks: dict[int, dict] = {}

        async def send(number: int) -> None:
            acks[number] = await sender.send(channel, f"burst {number}")

        tasks, stopping = [], None
        for number in range(60):
            tasks.append(asyncio.create_task(send(number)))
            if number == 20:
                await until(lambda: len(acks) >= 5, "the first sends are acknowledged")
                stopping = asyncio.create_task(asyncio.to_thread(server.stop))  # SIGTERM
            await asyncio.sleep(0.02)
        await stopping
        acked_while_up = len(acks)
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)

        # The server went away mid-burst: both clients were told 1001 and came back.
        assert acked_while_up < 60
        for recorder in (seen_by_sender, seen_by_reader):
            assert any(e.get("code") == 1001 for e in recorder.of("connection")), recorder.states()
            await until(lambda r=recorder: r.states()[-1] == "open", "the client is back")

        ids_in_order = [ack["id"] for ack in sorted(acks.values(), key=lambda ack: ack["seq"])]
        assert len(set(ids_in_order)) == 60
        await until(lambda: len(seen_by_reader.messages(channel)) >= 60, "the reader has every message")
        await asyncio.sleep(0.5)  # a duplicate, were one coming, would arrive by now
        received = seen_by_reader.messages(channel)
        assert [m["id"] for m in received] == ids_in_order  # each once, in order
        assert [m["id"] for m in reader.messages(channel)] == ids_in_order
        assert [m["content"] for m in received] == [
            f"burst {n}" for n in sorted(acks, key=lambda n: acks[n]["seq"])
        ]

        assert sender.tokens is not None
        page = await asyncio.to_thread(
            rest_get, server, f"/api/messages?channel={channel}&limit=200", sender.tokens.access
        )
        stored = page.json()["results"]
        client_ids = [m["client_id"] for m in stored]
        assert len(client_ids) == len(set(client_ids)) == 60
        assert set(client_ids) == {ack["client_id"] for ack in acks.values()}
        assert [m["id"] for m in stored] == ids_in_order


async def test_rate_limited_sends_are_retried_in_order(tmp_path, clients):
    with running_server(tmp_path, {"CHAT_MESSAGE_BURST": "3", "CHAT_MESSAGE_RATE": "4"}) as server:
        client = await new_client(server, clients)
        seen = Recorder(client)
        client.on("error", seen.events.append)
        await client.connect()
        acks = await asyncio.wait_for(
            asyncio.gather(*(client.send(None, f"limited {n}") for n in range(12))), 60
        )
        refusals = [e for e in seen.of("error") if e["code"] == "rate_limited"]
        assert refusals and all(e["retry_after"] > 0 for e in refusals)  # the limit was hit
        assert [ack["seq"] for ack in acks] == sorted(ack["seq"] for ack in acks)  # stored in order
        assert client.tokens is not None
        page = await asyncio.to_thread(
            rest_get, server, "/api/messages?channel=&limit=50", client.tokens.access
        )
        stored = [m["content"] for m in page.json()["results"]]
        assert stored == [f"limited {n}" for n in range(12)]  # each once


# --- 2. close codes and the backoff --------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter():
    top = Backoff(base_delay=0.5, max_delay=30.0, random=lambda: 0.999999)
    assert [round(top.delay(attempt), 3) for attempt in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert top.cap(10_000) == 30.0
    bottom = Backoff(random=lambda: 0.0)
    assert {bottom.delay(attempt) for attempt in range(10)} == {0.0}
    seeded, again = Backoff(random=random.Random(14).random), Backoff(random=random.Random(14).random)
    delays = [seeded.delay(n) for n in range(20)]
    assert delays == [again.delay(n) for n in range(20)]  # the jitter comes from the random function alone
    assert all(0 <= delay <= Backoff().cap(n) for n, delay in enumerate(delays))
    assert len(set(delays)) == 20  # jittered: no two attempts wait the same


def test_each_close_code_has_its_action():
    assert close_action(4403) is CloseAction.STOP
    assert close_action(4401) is CloseAction.REFRESH
    assert close_action(1001) is CloseAction.RECONNECT_NOW
    for code in (4429, 1013, 1006, 1011, None):
        assert close_action(code) is CloseAction.BACK_OFF


async def test_4403_stops_for_good(limits_server, clients):
    owner = await new_client(limits_server, clients)
    other = await new_client(limits_server, clients)
    impostor = ChatClient(
        limits_server.base_url, username=name_of(other), tokens=owner.tokens, backoff=fast_backoff()
    )
    clients.append(impostor)
    seen = Recorder(impostor)
    with pytest.raises(ChatError) as refused:
        await asyncio.wait_for(impostor.connect(), 30)
    assert refused.value.code == "forbidden"
    assert impostor.state == "forbidden"
    assert seen.states() == ["connecting", "forbidden"]  # never retried
    assert seen.of("connection")[-1]["code"] == 4403
    with pytest.raises(ChatError):
        await impostor.send(None, "never sent")


async def test_4429_backs_off_then_connects_once_a_socket_is_free(limits_server, clients):
    first = await new_client(limits_server, clients)
    await first.connect()
    backoff = Backoff(base_delay=0.05, max_delay=0.4)
    second = ChatClient(limits_server.base_url, backoff=backoff)
    clients.append(second)
    await second.login(name_of(first), DEFAULT_PASSWORD)  # the same user, another session
    seen = Recorder(second)
    connecting = asyncio.create_task(second.connect())

    refusals = lambda: [e for e in seen.of("connection") if e.get("code") == 4429]  # noqa: E731
    await until(lambda: len(refusals()) >= 4, "four 4429 refusals")
    assert not connecting.done()
    attempts = [e["attempt"] for e in refusals()[:4]]
    assert attempts == [1, 2, 3, 4]  # each refusal backs off further
    assert all(0 <= e["delay"] <= backoff.cap(e["attempt"] - 1) for e in refusals())

    await first.close()
    await asyncio.wait_for(connecting, 30)
    assert second.state == "open"
    assert (await second.send(None, "a socket was free"))["seq"] > 0


async def test_4401_after_logout_elsewhere_refreshes_once_then_reports_logged_out(limits_server, clients):
    client = await new_client(limits_server, clients)
    await client.connect()
    seen = Recorder(client)
    refreshes = count_refreshes(client)
    tokens = client.tokens
    assert tokens is not None
    # The same session ends elsewhere (another process holding these tokens logs out).
    response = await asyncio.to_thread(
        requests.post,
        f"{limits_server.base_url}/api/auth/logout",
        headers={"Authorization": f"Bearer {tokens.access}"},
        timeout=30,
    )
    assert response.status_code == 204
    await until(lambda: client.state == "logged_out", "the client reports logged out")
    closes = [e for e in seen.of("connection") if e.get("code") == 4401]
    assert closes and closes[0]["state"] == "reconnecting" and closes[0]["delay"] == 0
    assert seen.states()[-1] == "logged_out"
    assert refreshes() == 1
    assert client.tokens is None
    with pytest.raises(ChatError) as refused:
        await client.send(None, "after the session ended")
    assert refused.value.code == "logged_out"


async def test_4401_with_a_refused_access_token_refreshes_once_and_reconnects(limits_server, clients):
    account = await asyncio.to_thread(register_and_login, limits_server.base_url, "stale")
    client = ChatClient(
        limits_server.base_url,
        username=account["username"],
        tokens=Tokens(access="not-a-token-the-server-accepts", refresh=account["refresh"]),
        backoff=fast_backoff(),
    )
    clients.append(client)
    seen = Recorder(client)
    refreshes = count_refreshes(client)
    await asyncio.wait_for(client.connect(), 30)
    assert [e.get("code") for e in seen.of("connection")] == [None, 4401, None]
    assert seen.states() == ["connecting", "reconnecting", "open"]
    assert refreshes() == 1
    assert client.tokens is not None and client.tokens.refresh != account["refresh"]  # rotated
    assert (await client.send(None, "with a fresh token"))["seq"] > 0


def count_refreshes(client: ChatClient) -> Callable[[], int]:
    """Count the client's refresh requests (its own method, wrapped: the server answers them)."""
    auth = client._auth
    calls = []
    refresh = auth.refresh

    async def counted():
        calls.append(1)
        return await refresh()

    auth.refresh = counted  # type: ignore[method-assign]
    return lambda: len(calls)


async def test_1001_reconnects_at_once(tmp_path, clients):
    with running_server(tmp_path) as server:
        client = await new_client(server, clients)
        await client.connect()
        seen = Recorder(client)
        await asyncio.to_thread(server.stop)
        await until(lambda: any(e.get("code") == 1001 for e in seen.of("connection")), "a 1001 close")
        going_away = next(e for e in seen.of("connection") if e.get("code") == 1001)
        assert going_away["state"] == "reconnecting"
        assert going_away["delay"] == 0 and going_away["attempt"] == 0  # no backoff for the first try
        # Nobody answers while the server is down: those attempts back off.
        await until(lambda: any(e.get("attempt", 0) >= 2 for e in seen.of("connection")), "backing off")
        await asyncio.to_thread(server.start)
        await until(lambda: client.state == "open", "the client is back")
        assert (await client.send(None, "back again"))["seq"] > 0


# --- 3. resuming with has_more ----------------------------------------------------------


async def test_resume_follows_has_more_until_nothing_is_missed(limits_server, clients):
    writer = await new_client(limits_server, clients, "wr")
    reader = await new_client(limits_server, clients, "rd")
    channel = unique("resume")
    await writer.create_channel(channel)
    await reader.join(channel)
    await writer.connect()
    await reader.connect()
    before = [(await writer.send(channel, f"before {n}"))["id"] for n in range(3)]
    await until(lambda: len(reader.messages(channel)) == 3, "the reader has the first three")
    await reader.close()

    missed = [(await writer.send(channel, f"missed {n}"))["id"] for n in range(12)]
    seen = Recorder(reader)
    queued = asyncio.create_task(reader.send(channel, "written while away"))
    await until(lambda: reader.pending() == 1, "the write is queued")
    await asyncio.wait_for(reader.connect(), 60)  # returns once caught up

    assert [m["id"] for m in reader.messages(channel)] == before + missed
    pages = [e for e in seen.of("history") if e["reason"] == "sync" and e["channel"] == channel]
    assert [len(page["messages"]) for page in pages] == [5, 5, 2]  # CHAT_SYNC_MAX=5 per sync
    assert [page["has_more"] for page in pages] == [True, True, False]
    assert [m["id"] for m in seen.messages(channel)] == missed  # each once, in order
    # The write queued while away went out once caught up, after everything missed.
    ack = await asyncio.wait_for(queued, 30)
    await until(lambda: reader.position(channel) == ack["seq"], "the reader has its own message")
    assert [m["id"] for m in reader.messages(channel)] == before + missed + [ack["id"]]
    assert reader.position(channel) == writer.position(channel)


async def test_a_channel_joined_while_connected_resumes_from_the_join(limits_server, clients):
    writer = await new_client(limits_server, clients, "wr")
    reader = await new_client(limits_server, clients, "rd")
    channel = unique("joined")
    await writer.create_channel(channel)
    await writer.connect()
    old = [(await writer.send(channel, f"old {n}"))["id"] for n in range(3)]
    await reader.connect()
    await reader.join(channel)
    await until(lambda: channel in reader.channels(), "the reader is subscribed")
    await reader.close()
    missed = [(await writer.send(channel, f"missed {n}"))["id"] for n in range(4)]
    seen = Recorder(reader)
    await asyncio.wait_for(reader.connect(), 60)
    assert [m["id"] for m in seen.messages(channel)] == missed  # from the join on, none of before
    assert [m["id"] for m in reader.messages(channel)][-4:] == missed
    assert not set(old) & {m["id"] for m in seen.messages(channel)}


# --- 4. token refresh ---------------------------------------------------------------------


async def test_three_second_tokens_are_refreshed_while_sending(tmp_path, clients):
    with running_server(tmp_path, {"CHAT_ACCESS_TOKEN_SECONDS": "3"}) as server:
        client = await new_client(server, clients)
        first = client.tokens
        assert first is not None
        seen = Recorder(client)
        await client.connect()
        acks = []
        for number in range(20):  # about ten seconds of sending
            acks.append(await asyncio.wait_for(client.send(None, f"tick {number}"), 30))
            await asyncio.sleep(0.5)
        assert len({ack["id"] for ack in acks}) == 20
        assert len(seen.of("tokens")) >= 3
        assert "logged_out" not in seen.states() and client.state == "open"

        # The first access token has expired: the client's current pair opens new sockets and serves
        # REST. Sockets closed and opened again while the tokens turn over: a refresh that close()
        # cuts short still keeps the rotated pair (dropping it would leave only a spent refresh token).
        expired = await asyncio.to_thread(rest_get, server, "/api/users/me", first.access)
        assert expired.status_code == 401
        deadline = time.monotonic() + 8
        cycles = 0
        while time.monotonic() < deadline:
            await client.close()
            await asyncio.wait_for(client.connect(), 30)
            await asyncio.wait_for(client.send(None, f"cycle {cycles}"), 30)
            await asyncio.sleep(0.05 * (cycles % 20))
            cycles += 1
        assert "logged_out" not in seen.states()
        assert (await client.api("GET", "/api/users/me"))["username"] == name_of(client)

        # The same, made certain: a refresh whose caller is cancelled once it has started.
        await client.close()  # no refresher running: the call below is the only refresh
        held = client.tokens
        await asyncio.sleep(2)  # the access token is now due for a refresh
        caller = asyncio.create_task(client.api("GET", "/api/users/me"))
        await asyncio.sleep(0)  # the refresh has started
        caller.cancel()
        await until(lambda: client.tokens != held, "the rotated pair is kept", timeout=15)
        assert (await client.api("GET", "/api/users/me"))["username"] == name_of(client)
        # The first refresh token was rotated out (reusing it ends the session, so this comes last).
        reused = await asyncio.to_thread(
            requests.post, f"{server.base_url}/api/auth/refresh", json={"refresh": first.refresh}, timeout=30
        )
        assert reused.status_code == 401


# --- 5. state ---------------------------------------------------------------------------


async def test_state_applies_edits_deletions_and_reactions_and_drops_duplicates(limits_server, clients):
    author = await new_client(limits_server, clients, "au")
    reader = await new_client(limits_server, clients, "re")
    channel = unique("state")
    await author.create_channel(channel)
    await reader.join(channel)
    await author.connect()
    await reader.connect()
    seen = Recorder(reader)
    contents = ["state 0", f"state 1, for @{name_of(reader)}", "state 2", "state 3"]
    acks = [await author.send(channel, content) for content in contents]
    first, second, third, fourth = (ack["id"] for ack in acks)
    await until(lambda: len(reader.messages(channel)) == 4, "the reader has four messages")
    iterated: list[dict] = []

    async def iterate() -> None:
        async for event in reader.events(["message_updated"]):
            iterated.append(event)

    iterating = asyncio.create_task(iterate())
    await asyncio.sleep(0)  # the iterator is registered

    await author.edit(first, "state 0, edited")
    await author.react(second, "👍")
    await reader.react(second, ":tada:")
    await author.delete(third)
    await author.react(first, ":wave:")
    last = await author.unreact(first, ":wave:")
    await until(lambda: reader.position(channel) == last["rev"], "the reader has every change")

    held = {m["id"]: m for m in reader.messages(channel)}
    assert [m["id"] for m in reader.messages(channel)] == [first, second, third, fourth]
    assert held[first]["content"] == "state 0, edited" and held[first]["edited_at"] is not None
    assert held[first]["reactions"] == []
    assert held[second]["reactions"] == [
        {"emoji": "👍", "usernames": [name_of(author)]},
        {"emoji": ":tada:", "usernames": [name_of(reader)]},
    ]
    assert held[third]["deleted"] and held[third]["content"] == ""
    updates = seen.of("message_updated")
    assert [u["change"] for u in updates] == [
        "edited",
        "reactions",
        "reactions",
        "deleted",
        "reactions",
        "reactions",
    ]
    assert [u["message"]["rev"] for u in updates] == sorted({u["message"]["rev"] for u in updates})
    assert author.messages(channel) == reader.messages(channel)  # the author's own changes came back too

    # Messages held already, sent again by the server, are dropped.
    page = await reader.history(channel, before=fourth)
    assert [m["id"] for m in page.messages] == [first, second, third]
    assert len(seen.of("message")) == 4
    assert reader.messages(channel) == list(held.values())

    # Replayed frames change nothing, and an older state never replaces a newer one.
    replayed = ChatState()
    for event in seen.events:
        if event["type"] in ("message", "message_updated"):
            replayed.apply(event["message"])
    frames = [e for e in seen.events if e["type"] in ("message", "message_updated")]
    assert all(replayed.apply(e["message"]) is None for e in frames)
    key = channel.lower()
    assert replayed.messages(key) == reader.messages(channel)

    # Read state: the counts kept from the frames agree with the server's, then clear.
    expected = {"unread": 3, "mentions": 1}  # four from the author, one deleted; one names the reader
    assert {k: reader.read_state(channel)[k] for k in expected} == expected
    mine = await reader.api("GET", "/api/channels/me")
    listed = next(c for c in mine["results"] if c["name"] == channel)
    assert {k: listed[k] for k in expected} == expected
    await reader.mark_read(channel)
    await until(lambda: reader.read_state(channel)["unread"] == 0, "the badge clears")
    assert reader.read_state(channel)["last_read_seq"] == reader.position(channel)
    assert name_of(author) in reader.online()

    # events() yields what handlers got, and ends with close().
    await reader.close()
    await asyncio.wait_for(iterating, 10)
    assert iterated == updates


# --- 6. the echo bot ----------------------------------------------------------------------


async def test_the_echo_bot_answers_as_a_process_of_its_own(limits_server, clients, tmp_path):
    bot = await asyncio.to_thread(register_and_login, limits_server.base_url, "bot")
    user = await new_client(limits_server, clients, "human")
    channel = unique("echo")
    await user.create_channel(channel)
    seen = Recorder(user)
    await user.connect()
    log = (tmp_path / "bot.log").open("wb")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.Popen(
        [sys.executable, str(ECHO_BOT), "--url", limits_server.base_url, "--username", bot["username"]]
        + ["--password", DEFAULT_PASSWORD, "--channel", channel],
        cwd=ROOT / "clients",  # not the package's folder: the example finds it by itself
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        await until(lambda: bot["username"] in user.online(), "the bot is online", timeout=60)

        def replies_to(message_id: str) -> list[dict]:
            return [m for m in seen.messages(None) + seen.messages(channel) if m["reply_to"] == message_id]

        quiet = await user.send(None, "nobody is named here")
        called = await user.send(None, f"hello @{bot['username']}")
        await until(lambda: replies_to(called["id"]), "the bot answers its mention")
        (echo,) = replies_to(called["id"])
        assert echo["username"] == bot["username"] and echo["channel"] is None
        assert echo["content"] == f"echo: hello @{bot['username']}"
        assert replies_to(quiet["id"]) == []  # a lobby message without a mention is not answered

        # The bot's own echo names it too; it must not answer itself.
        again = await user.send(None, f"again @{bot['username']}")
        await until(lambda: replies_to(again["id"]), "the bot answers again")
        in_channel = await user.send(channel, "every message in a channel")
        await until(lambda: replies_to(in_channel["id"]), "the bot answers in its channel")
        (answer,) = replies_to(in_channel["id"])
        assert answer["channel"] == channel and answer["content"] == "echo: every message in a channel"
        last = await user.send(channel, "and one more")
        await until(lambda: replies_to(last["id"]), "the bot answers the last one")
        from_bot = [
            m for m in seen.messages(None) + seen.messages(channel) if m["username"] == bot["username"]
        ]
        assert not [m for m in from_bot if m["content"].startswith("echo: echo:")]
        assert len(from_bot) == 4
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(process.wait, 30)
        log.close()
    assert code == 0, (tmp_path / "bot.log").read_text()
