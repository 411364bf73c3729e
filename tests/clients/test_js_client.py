"""chat-client.js in headless Chromium against real server processes.

Each test drives the served module through Playwright: real pages, real
WebSockets, real servers (restarted with SIGTERM where a test needs it). The
module's guarantees are checked from what the pages hold and what the server
stored. Two tests feed a fake WebSocket class (the ``WebSocket`` option) to
check the reconnect and merge algorithms frame by frame, with ``Math.random``
fixed; every other test talks to a server.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter

import pytest
import requests

from tests.clients.conftest import client_page, post_message
from tests.conftest import DEFAULT_PASSWORD
from tests.servers import ServerProcess, bearer, register_and_login, running_server

pytestmark = pytest.mark.e2e

WAIT_MS = 60_000

# Installed in every page: a client factory that records what the tests look at.
RECORDERS = """() => {
  window.makeClient = (options = {}) => {
    const client = new ChatClient({ baseDelayMs: 200, maxDelayMs: 2000, ...options });
    const log = { connection: [], tokens: 0, messages: {}, errors: [], opened: [], sent: [], httpStatus: [] };
    client.on("connection", (event) => log.connection.push(event));
    client.on("tokens", () => { log.tokens += 1; });
    client.on("message", (frame) => {
      log.messages[frame.message.id] = (log.messages[frame.message.id] ?? 0) + 1;
    });
    client.on("error", (frame) => log.errors.push(frame));
    client.log = log;
    return client;
  };
  // A real WebSocket that records every socket opened and every frame sent on it.
  window.recordingWebSocket = (log) => class extends WebSocket {
    constructor(url) { super(url); log.opened.push(url); }
    send(text) { log.sent.push(JSON.parse(text)); super.send(text); }
  };
  // The real fetch, recording each answer's status and route.
  window.recordingFetch = (log) => async (url, init) => {
    const response = await fetch(url, init);
    log.httpStatus.push([new URL(url).pathname, response.status]);
    return response;
  };
  window.snapshot = (client, channel) => client.messages(channel).map((m) => ({
    id: m.id, seq: m.seq, rev: m.rev, content: m.content, username: m.username, client_id: m.client_id,
    deleted: m.deleted, edited_at: m.edited_at, reactions: m.reactions,
  }));
}"""

# A fake WebSocket driven by the test, and a JWT that expires in a year.
FAKES = """() => {
  window.FakeSocket = class {
    static made = [];
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; FakeSocket.made.push(this); }
    send(text) { this.sent.push(JSON.parse(text)); }
    close() { this.readyState = 3; }
    accept() { this.readyState = 1; this.onopen?.({}); }
    frame(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
    end(code) { this.readyState = 3; this.onclose({ code }); }
  };
  window.nextSocket = async (count) => {
    while (FakeSocket.made.length < count) await new Promise((ok) => setTimeout(ok, 5));
    return FakeSocket.made[count - 1];
  };
  const claims = btoa(JSON.stringify({ exp: Math.floor(Date.now() / 1000) + 31536000, iat: 0 }));
  window.fakeTokens = { access: `e30.${claims.replace(/=+$/, "")}.sig`, refresh: "r" };
  window.user = { id: "u1", username: "ada", status: "online", is_online: true, last_seen: null,
                  date_joined: "2026-01-01T00:00:00.000Z" };
  window.message = (seq, fields = {}) => ({
    id: `m${seq}`, seq, rev: seq, channel: null, username: "bob", user_id: "u2", content: `text ${seq}`,
    created_at: "2026-01-01T00:00:00.000Z", client_id: null, reply_to: null, edited_at: null, deleted: false,
    reactions: [], mentions: [], ...fields,
  });
  window.readyFrame = (lastSeq) => ({ type: "ready", user, channels: [], online: ["ada"],
    unread: { "": { last_read_seq: 0, last_seq: lastSeq, unread: lastSeq, mentions: 0 } } });
  window.connectHistory = (messages) => ({ type: "history", reason: "connect", messages, has_more: false });
}"""


def chat_page(context, server: ServerProcess, account: dict, **options):
    """A page whose ``window.c`` is a client logged in as ``account`` and connected (state ``open``)."""
    page = client_page(context, server)
    page.evaluate(RECORDERS)
    page.evaluate(
        """async ([username, password, options]) => {
             window.c = makeClient(options);
             await c.login(username, password);
             await c.connect();
           }""",
        [account["username"], DEFAULT_PASSWORD, options],
    )
    return page


def held(page, channel=None) -> list[dict]:
    return page.evaluate("(channel) => snapshot(c, channel)", channel)


def wait_js(page, expression: str, arg=None, timeout: int = WAIT_MS) -> None:
    page.wait_for_function(expression, arg=arg, timeout=timeout)


def start_burst(page, channel, contents: list[str], spacing_ms: int = 0) -> None:
    """Start one ``send`` per content (none awaited); ``window.acks`` collects the acks in send order."""
    page.evaluate(
        """async ([channel, contents, spacing]) => {
             window.acks = new Array(contents.length).fill(null);
             window.refused = [];
             window.sends = contents.map((content, i) => new Promise((ok) => setTimeout(ok, i * spacing))
               .then(() => c.send(channel, content))
               .then((ack) => { acks[i] = ack; }, (error) => { refused.push(error.code); }));
           }""",
        [channel, contents, spacing_ms],
    )


def all_acked(page, count: int) -> list[dict]:
    wait_js(page, "(n) => window.acks.filter(Boolean).length === n", count)
    assert page.evaluate("window.refused") == []
    return page.evaluate("window.acks")


def assert_once_in_order(page, channel, acks: list[dict]) -> None:
    """Every acknowledged message is held once, in seq order, in the order it was sent."""
    messages = held(page, channel)
    ids = [m["id"] for m in messages]
    assert len(ids) == len(set(ids))
    assert [m["seq"] for m in messages] == sorted(m["seq"] for m in messages)
    position = {message_id: i for i, message_id in enumerate(ids)}
    assert all(ack["id"] in position for ack in acks)
    assert [position[ack["id"]] for ack in acks] == sorted(position[ack["id"]] for ack in acks)
    by_id = {m["id"]: m for m in messages}
    assert all(by_id[ack["id"]]["seq"] == ack["seq"] for ack in acks)
    counts = page.evaluate("c.log.messages")
    assert all(counts.get(ack["id"], 0) <= 1 for ack in acks)  # no `message` event twice


def stored(server: ServerProcess, account: dict, channel: str = "") -> list[dict]:
    """The server's messages of a channel (REST, every page up to 200 newest)."""
    answer = requests.get(
        f"{server.base_url}/api/messages",
        params={"channel": channel, "limit": 200},
        headers=bearer(account),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def two_people(context, other_context, server: ServerProcess):
    """Ada and Bob, each registered and chatting on a page of their own: (ada, bob, page_a, page_b)."""
    ada = register_and_login(server.base_url, "ada")
    bob = register_and_login(server.base_url, "bob")
    return ada, bob, chat_page(context, server, ada), chat_page(other_context, server, bob)


def connect_recording(page, account: dict) -> None:
    """Log ``account`` in on ``page`` as ``window.c``, its sockets recorded in ``c.log``, and connect."""
    page.evaluate(RECORDERS)
    page.evaluate(
        """async ([username, password]) => {
             const log = { opened: [], sent: [] };
             window.c = makeClient({ WebSocket: recordingWebSocket(log) });
             Object.assign(c.log, log);
             await c.login(username, password);
             await c.connect();
           }""",
        [account["username"], DEFAULT_PASSWORD],
    )


# --- two people chat --------------------------------------------------------------------------


def test_two_pages_chat_each_sees_the_others_messages_in_order_with_acks(
    context, other_context, module_server
):
    ada, bob, page_a, page_b = two_people(context, other_context, module_server)

    acks = page_a.evaluate(
        """async () => {
             const acks = [];
             for (let i = 0; i < 5; i++) acks.push(await c.send(null, `from ada ${i}`));
             return acks;
           }"""
    )
    acks += page_b.evaluate(
        """async () => Promise.all([0, 1, 2, 3, 4].map((i) => c.send(null, `from bob ${i}`)))"""
    )
    assert all(ack["type"] == "ack" and ack["client_id"] for ack in acks)
    assert len({ack["id"] for ack in acks}) == 10

    ids = [ack["id"] for ack in acks]
    for page in (page_a, page_b):
        wait_js(page, "(ids) => ids.every((id) => c.messages(null).some((m) => m.id === id))", ids)
        mine = [m for m in held(page) if m["id"] in ids]
        assert [m["content"] for m in mine] == [f"from ada {i}" for i in range(5)] + [
            f"from bob {i}" for i in range(5)
        ]
        assert [m["seq"] for m in mine] == sorted(ack["seq"] for ack in acks)
        assert all(page.evaluate("c.log.messages")[message_id] == 1 for message_id in ids)
        assert page.evaluate("c.pending()") == 0
    online = page_a.evaluate("c.online()")
    assert {ada["username"], bob["username"]} <= set(online) and online == sorted(online, key=str.lower)


# --- server restart in the middle of a burst ------------------------------------------------------


def test_sigterm_restart_mid_burst_loses_and_duplicates_nothing(context, other_context, tmp_path):
    """SIGTERM while writes are in flight: each is acknowledged once the server is back, stored once.

    The server is paused (SIGSTOP) for the moment the page sends ten more
    messages, so that SIGTERM surely finds writes sent and not acknowledged:
    some are stored without their ack getting out, others never read. The
    client must resend all of them, and the server's idempotency stores each once.
    """
    with running_server(tmp_path) as server:
        ada = register_and_login(server.base_url, "ada")
        bob = register_and_login(server.base_url, "bob")
        page_a = client_page(context, server)
        connect_recording(page_a, ada)
        page_b = chat_page(other_context, server, bob)
        page_a.evaluate("() => c.createChannel('burst')")
        page_b.evaluate("() => c.join('burst')")
        wait_js(page_b, "() => c.channels().includes('burst')")

        contents = [f"burst {i}" for i in range(60)]
        start_burst(page_a, "burst", contents, spacing_ms=20)
        wait_js(page_a, "() => window.acks.filter(Boolean).length >= 8")
        wait_js(page_b, "() => c.messages('burst').length > 0")
        group = server.process.pid
        os.killpg(group, signal.SIGSTOP)
        wait_js(
            page_a,
            "(n) => c.log.sent.filter((f) => f.type === 'message').length >= n + 10",
            page_a.evaluate("window.acks.filter(Boolean).length"),
        )
        os.killpg(group, signal.SIGTERM)  # the server closes every socket with 1001 and exits
        os.killpg(group, signal.SIGCONT)
        server.process.wait(timeout=30)
        assert page_a.evaluate("window.acks.filter(Boolean).length") < 60
        server.start()

        acks = all_acked(page_a, 60)
        assert len({ack["id"] for ack in acks}) == 60
        sent = Counter(
            frame["client_id"] for frame in page_a.evaluate("c.log.sent") if frame["type"] == "message"
        )
        assert any(times > 1 for times in sent.values())  # writes in flight were sent again
        # The server going away is answered by an immediate reconnect.
        going_away = [e for e in page_a.evaluate("c.log.connection") if e.get("code") == 1001]
        assert going_away and going_away[0]["state"] == "reconnecting" and going_away[0]["delayMs"] == 0

        for page in (page_a, page_b):
            wait_js(page, "() => c.state === 'open' && c.messages('burst').length >= 60")
            assert_once_in_order(page, "burst", acks)
        assert [m["content"] for m in held(page_a, "burst")] == contents

        rows = stored(server, ada, "burst")
        assert len(rows) == 60
        assert len({row["client_id"] for row in rows}) == 60
        assert {row["id"] for row in rows} == {ack["id"] for ack in acks}


# --- offline ---------------------------------------------------------------------------------------


def test_offline_sends_are_queued_and_delivered_once_when_back(context, other_context, module_server):
    ada, bob, page_a, page_b = two_people(context, other_context, module_server)
    first = page_a.evaluate("() => c.send(null, 'before going offline')")

    context.set_offline(True)
    wait_js(page_a, "() => ['offline', 'reconnecting'].includes(c.state)")
    assert "offline" in [e["state"] for e in page_a.evaluate("c.log.connection")]  # the browser's event
    contents = [f"offline {i}" for i in range(10)]
    start_burst(page_a, None, contents)
    page_a.evaluate(
        """(id) => { window.changes = [c.edit(id, 'edited offline'), c.react(id, ':wave:')]; }""", first["id"]
    )
    page_a.wait_for_timeout(500)
    assert page_a.evaluate("c.pending()") == 12
    assert page_a.evaluate("window.acks.filter(Boolean).length") == 0
    assert page_a.evaluate("c.state") in ("offline", "reconnecting")

    context.set_offline(False)
    acks = all_acked(page_a, 10)
    changed = page_a.evaluate("() => Promise.all(window.changes)")
    assert all(ack["id"] == first["id"] for ack in changed)
    for page in (page_a, page_b):
        wait_js(
            page,
            "(ids) => ids.every((id) => c.messages(null).some((m) => m.id === id))",
            [ack["id"] for ack in acks],
        )
        assert_once_in_order(page, None, acks)
        wait_js(
            page, "(id) => c.messages(null).find((m) => m.id === id)?.reactions.length === 1", first["id"]
        )
        edited = next(m for m in held(page) if m["id"] == first["id"])
        assert edited["content"] == "edited offline"
        assert edited["reactions"] == [{"emoji": ":wave:", "usernames": [ada["username"]]}]
    assert [m["content"] for m in held(page_a) if m["content"].startswith("offline ")] == contents
    rows = [row for row in stored(module_server, ada) if row["content"].startswith("offline ")]
    assert sorted(row["content"] for row in rows) == sorted(contents)  # each stored once


def test_rate_limited_writes_are_retried_after_retry_after_and_stored_once(context, tmp_path):
    limits = {"CHAT_MESSAGE_BURST": "5", "CHAT_MESSAGE_RATE": "10"}
    with running_server(tmp_path, limits) as server:
        ada = register_and_login(server.base_url, "ada")
        page = chat_page(context, server, ada)
        contents = [f"limited {i}" for i in range(25)]
        start_burst(page, None, contents)
        acks = all_acked(page, 25)
        refusals = [e for e in page.evaluate("c.log.errors") if e["code"] == "rate_limited"]
        assert refusals and all(e["client_id"] and e["retry_after"] > 0 for e in refusals)
        assert len({ack["id"] for ack in acks}) == 25
        rows = [row for row in stored(server, ada) if row["content"].startswith("limited ")]
        assert sorted(row["content"] for row in rows) == sorted(contents)  # each stored once
        assert page.evaluate("c.pending()") == 0


# --- token refresh ---------------------------------------------------------------------------------


def test_short_lived_access_tokens_are_refreshed_before_they_expire(context, tmp_path):
    with running_server(tmp_path, {"CHAT_ACCESS_TOKEN_SECONDS": "3"}) as server:
        ada = register_and_login(server.base_url, "ada")
        page = client_page(context, server)
        page.evaluate(RECORDERS)
        page.evaluate(
            """async ([username, password]) => {
                 const log = { httpStatus: [] };
                 window.c = makeClient({ refreshMarginSeconds: 1, fetch: recordingFetch(log) });
                 c.log.httpStatus = log.httpStatus;
                 await c.login(username, password);
                 await c.connect();
               }""",
            [ada["username"], DEFAULT_PASSWORD],
        )
        # Only the socket is used for 10 s (no request that could refresh on its way), with one
        # reconnect in the middle: its handshake needs a valid token too.
        acks = page.evaluate(
            """async () => {
                 const acks = [];
                 const until = Date.now() + 10000;
                 for (let i = 0; Date.now() < until; i++) {
                   acks.push(await c.send(null, `tick ${i}`));
                   if (i === 12) { c.close(); await c.connect(); }
                   await new Promise((ok) => setTimeout(ok, 400));
                 }
                 await c.api("/api/users/me");
                 return acks;
               }"""
        )
        log = page.evaluate("c.log")
        assert len(acks) >= 10 and all(ack["id"] for ack in acks)
        assert log["tokens"] >= 5  # login, then a refresh every ~2 s for 10 s
        assert page.evaluate("c.state") == "open"
        states = [e["state"] for e in log["connection"]]
        assert states == ["connecting", "open", "idle", "connecting", "open"]  # no 4401, no logged_out
        # Refreshed ahead of expiry: no request was ever refused for an expired token.
        assert [status for _, status in log["httpStatus"] if status == 401] == []
        refreshed = [
            path for path, status in log["httpStatus"] if status == 200 and path == "/api/auth/refresh"
        ]
        assert len(refreshed) >= 4


# --- close codes -----------------------------------------------------------------------------------


def test_4403_stops_reconnecting_and_reports_forbidden(context, module_server):
    ada = register_and_login(module_server.base_url, "ada")
    bob = register_and_login(module_server.base_url, "bob")
    page = client_page(context, module_server)
    page.evaluate(RECORDERS)
    outcome = page.evaluate(
        """async ([tokens, username]) => {
             const log = { opened: [], sent: [] };
             window.c = makeClient({ tokens, username, WebSocket: recordingWebSocket(log) });
             c.log.opened = log.opened;
             const pending = c.send(null, "never sent").catch((error) => error.code);
             const connected = await c.connect().then(() => "open", (error) => error.code);
             return { connected, pending: await pending };
           }""",
        [{"access": ada["access"], "refresh": ada["refresh"]}, bob["username"]],
    )
    assert outcome == {"connected": "forbidden", "pending": "forbidden"}
    page.wait_for_timeout(1500)  # time for any (wrong) retry
    assert page.evaluate("c.state") == "forbidden"
    assert len(page.evaluate("c.log.opened")) == 1
    assert [e["state"] for e in page.evaluate("c.log.connection")] == ["connecting", "forbidden"]


def test_4429_backs_off_with_a_delay_then_connects_once_a_socket_is_free(context, tmp_path):
    with running_server(tmp_path, {"CHAT_MAX_CONNECTIONS_PER_USER": "1"}) as server:
        ada = register_and_login(server.base_url, "ada")
        page = chat_page(context, server, ada)
        page.evaluate(
            """async ([username, password]) => {
                 Math.random = () => 0.5;
                 window.second = makeClient({ baseDelayMs: 400, maxDelayMs: 4000 });
                 await second.login(username, password);
                 window.secondOpen = second.connect();
               }""",
            [ada["username"], DEFAULT_PASSWORD],
        )
        wait_js(page, "() => second.log.connection.some((e) => e.code === 4429)")
        refused = next(e for e in page.evaluate("second.log.connection") if e.get("code") == 4429)
        assert refused["state"] == "reconnecting"
        assert refused["attempt"] == 1
        assert refused["delayMs"] == 200  # 0.5 * min(4000, 400 * 2 ** 0)
        wait_js(page, "() => second.log.connection.filter((e) => e.code === 4429).length >= 2")
        delays = [e["delayMs"] for e in page.evaluate("second.log.connection") if e.get("code") == 4429]
        assert delays[:2] == [200, 400]  # the window doubles
        page.evaluate("() => c.close()")
        page.evaluate("() => window.secondOpen")
        assert page.evaluate("second.state") == "open"


def test_4401_refreshes_once_then_reconnects_or_reports_logged_out(context, module_server):
    ada = register_and_login(module_server.base_url, "ada")
    page = chat_page(context, module_server, ada)

    # A refused access token with a good refresh token: one refresh, then connected.
    spare = register_and_login(module_server.base_url, "spare")
    page.evaluate(
        """async ([refresh, username]) => {
             window.renewed = makeClient({ tokens: { access: "not-a-token", refresh }, username });
             await renewed.connect();
           }""",
        [spare["refresh"], spare["username"]],
    )
    states = [(e["state"], e.get("code")) for e in page.evaluate("renewed.log.connection")]
    assert states == [("connecting", None), ("reconnecting", 4401), ("open", None)]
    assert page.evaluate("renewed.log.tokens") == 1

    # A second client on the same session; the first one logs the session out.
    outcome = page.evaluate(
        """async () => {
             const log = { opened: [], sent: [], httpStatus: [] };
             window.twin = makeClient({
               tokens: c.tokens, username: c.user.username,
               WebSocket: recordingWebSocket(log), fetch: recordingFetch(log),
             });
             Object.assign(twin.log, { opened: log.opened, httpStatus: log.httpStatus });
             await twin.connect();
             const ended = new Promise((ok) => {
               twin.on("connection", (e) => e.state === "logged_out" && ok());
             });
             await c.logout();
             await ended;
             return { state: twin.state, tokens: twin.tokens, user: twin.user };
           }"""
    )
    assert outcome == {"state": "logged_out", "tokens": None, "user": None}
    page.wait_for_timeout(1000)  # time for any (wrong) retry
    log = page.evaluate("twin.log")
    assert [(e["state"], e.get("code")) for e in log["connection"]] == [
        ("connecting", None),
        ("open", None),
        ("reconnecting", 4401),
        ("logged_out", None),
    ]
    assert log["httpStatus"] == [["/api/auth/refresh", 401]]  # refreshed once, refused
    assert len(log["opened"]) == 1  # and no reconnect after that
    assert page.evaluate("c.state") == "logged_out"


def test_backoff_is_exponential_with_full_jitter_and_acts_on_each_close_code(context, module_server):
    page = client_page(context, module_server)
    page.evaluate(FAKES)
    log = page.evaluate(
        """async () => {
             Math.random = () => 0.5;
             const client = new ChatClient({
               tokens: fakeTokens, username: "ada", WebSocket: FakeSocket, baseDelayMs: 100, maxDelayMs: 1000,
               fetch: () => Promise.reject(new Error("no network in this test")),
             });
             const events = [];
             client.on("connection", (e) => events.push(e));
             const open = async (socket) => {
               socket.accept();
               socket.frame(readyFrame(0));
               socket.frame(connectHistory([]));
               socket.frame({ type: "synced" });  // ignored unless a sync was asked for
             };
             client.connect();
             let n = 1;
             for (let i = 0; i < 6; i++) (await nextSocket(n++)).end(1006);  // refused six times
             await open(await nextSocket(n++));
             const afterOpen = events.length;
             (await nextSocket(n - 1)).end(1006);                  // a good connection lost: attempt 0 again
             await open(await nextSocket(n++));
             (await nextSocket(n - 1)).end(1001);                  // server going away: at once
             (await nextSocket(n++)).end(1006);                    // still away: backoff from attempt 1
             (await nextSocket(n++)).end(4429);                    // too many sockets: backoff
             (await nextSocket(n++)).end(1013);                    // too slow: backoff
             (await nextSocket(n++)).end(4403);                    // forbidden: stop
             await new Promise((ok) => setTimeout(ok, 1500));
             return { events, afterOpen, sockets: FakeSocket.made.length, state: client.state };
           }"""
    )
    events = log["events"]
    waits = [(e.get("code"), e["attempt"], e["delayMs"]) for e in events if e["state"] == "reconnecting"]
    # delay = random(0, min(max, base * 2 ** attempt)) with random() = 0.5
    assert waits == [
        (1006, 1, 50),
        (1006, 2, 100),
        (1006, 3, 200),
        (1006, 4, 400),
        (1006, 5, 500),
        (1006, 6, 500),
        (1006, 1, 50),
        (1001, 1, 0),
        (1006, 2, 100),
        (4429, 3, 200),
        (1013, 4, 400),
    ]
    assert events[log["afterOpen"] - 1]["state"] == "open"
    assert events[-1]["state"] == "forbidden"
    assert log["state"] == "forbidden" and log["sockets"] == 12  # nothing after 4403


def test_going_offline_closes_the_socket_and_coming_back_reconnects_at_once(context, module_server):
    page = client_page(context, module_server)
    page.evaluate(FAKES)
    log = page.evaluate(
        """async () => {
             const client = new ChatClient({ tokens: fakeTokens, username: "ada", WebSocket: FakeSocket,
                                             baseDelayMs: 60000, maxDelayMs: 60000 });
             const states = [];
             client.on("connection", (e) => states.push(e.state));
             client.connect();
             const first = await nextSocket(1);
             first.accept(); first.frame(readyFrame(0)); first.frame(connectHistory([]));
             window.dispatchEvent(new Event("offline"));
             const closedWhenOffline = first.readyState === 3;
             const queued = client.send(null, "queued while offline");
             window.dispatchEvent(new Event("online"));   // no 60 s backoff: at once
             const second = await nextSocket(2);
             second.accept(); second.frame(readyFrame(0)); second.frame(connectHistory([]));
             const sentBeforeSynced = second.sent.map((f) => f.type);
             second.frame({ type: "synced" });
             const sent = second.sent.map((f) => f.type);
             const resent = second.sent.find((f) => f.type === "message");
             second.frame({ type: "ack", client_id: resent.client_id, id: "m1", seq: 1, rev: 1 });
             return { states, closedWhenOffline, sentBeforeSynced, sent, ack: await queued };
           }"""
    )
    assert log["closedWhenOffline"]
    assert log["states"] == ["connecting", "open", "offline", "reconnecting", "open"]
    assert log["sentBeforeSynced"] == ["sync"] and log["sent"] == ["sync", "message"]
    assert log["ack"]["id"] == "m1"


# --- resume ----------------------------------------------------------------------------------------


def test_resume_follows_has_more_until_every_missed_message_is_held(context, tmp_path):
    with running_server(tmp_path, {"CHAT_SYNC_MAX": "5"}) as server:
        ada = register_and_login(server.base_url, "ada")
        bob = register_and_login(server.base_url, "bob")
        page = client_page(context, server)
        connect_recording(page, ada)
        noise = requests.post(
            f"{server.base_url}/api/channels/", json={"name": "noise"}, headers=bearer(bob), timeout=30
        )
        assert noise.status_code == 201
        page.evaluate("() => c.join('noise')")
        seen = post_message(server, bob, None, "seen before closing")
        wait_js(page, "(id) => c.messages(null).some((m) => m.id === id)", seen["id"])
        page.evaluate("() => c.close()")

        missed = [post_message(server, bob, None, f"missed {i}") for i in range(12)]
        for i in range(50):  # the newest 50 across channels: the connect history holds none of the 12
            post_message(server, bob, "noise", f"noise {i}")

        page.evaluate(
            """() => {
                 c.on("connection", (e) => {
                   if (e.state === "open") window.heldAtOpen = c.messages(null).map((m) => m.id);
                 });
               }"""
        )
        page.evaluate("() => c.connect()")
        syncs = [frame["after"] for frame in page.evaluate("c.log.sent") if frame["type"] == "sync"]
        assert syncs[0] == {"": seen["seq"]}  # "noise" was quiet: it starts from `ready`
        lobby_syncs = [after[""] for after in syncs if "" in after]
        assert lobby_syncs == [seen["seq"], missed[4]["seq"], missed[9]["seq"]]  # 5, 5, then 2
        held_at_open = page.evaluate("window.heldAtOpen")
        assert all(m["id"] in held_at_open for m in missed)  # `open` only once every sync arrived

        lobby = [m for m in held(page) if m["content"].startswith("missed ")]
        assert [m["id"] for m in lobby] == [m["id"] for m in missed]
        assert len(held(page, "noise")) == 50


# --- duplicates, edits, deletions, reactions -------------------------------------------------------


def test_changes_from_another_page_are_applied_and_repeated_frames_dropped(
    context, other_context, module_server
):
    ada, bob, page_a, page_b = two_people(context, other_context, module_server)

    acks = page_b.evaluate(
        """async () => [await c.send(null, "to edit"), await c.send(null, "to react to"),
                        await c.send(null, "to delete")]"""
    )
    edit, react, delete = (ack["id"] for ack in acks)
    wait_js(page_a, "(id) => c.messages(null).some((m) => m.id === id)", delete)
    unread_before = page_a.evaluate("c.readState(null).unread")

    page_b.evaluate(
        """async ([edit, react, remove]) => {
             await c.edit(edit, "edited");
             await c.react(react, ":tada:");
             await c.delete(remove);
           }""",
        [edit, react, delete],
    )
    page_a.evaluate("(id) => c.react(id, ':tada:')", react)
    wait_js(
        page_a,
        "(id) => c.messages(null).find((m) => m.id === id)?.reactions[0]?.usernames.length === 2",
        react,
    )
    wait_js(page_a, "(id) => c.messages(null).find((m) => m.id === id)?.deleted", delete)
    wait_js(page_a, "(id) => c.messages(null).find((m) => m.id === id)?.content === 'edited'", edit)

    def check(page):
        by_id = {m["id"]: m for m in held(page)}
        assert by_id[edit]["content"] == "edited" and by_id[edit]["edited_at"]
        assert by_id[react]["reactions"] == [
            {"emoji": ":tada:", "usernames": sorted([ada["username"], bob["username"]], key=str.lower)}
        ]
        assert by_id[delete]["deleted"] and by_id[delete]["content"] == ""
        ids = [m["id"] for m in held(page)]
        assert len(ids) == len(set(ids))

    check(page_a)
    # The deleted message no longer counts as unread.
    assert page_a.evaluate("c.readState(null).unread") == unread_before - 1

    # Reconnecting brings the same messages again (connect history): held once, no second event.
    page_a.evaluate("async () => { c.close(); await c.connect(); }")
    check(page_a)
    assert all(page_a.evaluate("c.log.messages")[message_id] == 1 for message_id in (edit, react, delete))
    page_a.evaluate("() => c.markRead(null)")
    wait_js(page_a, "() => c.readState(null).unread === 0")


def test_frames_already_applied_are_dropped_and_resume_uses_the_last_position(context, module_server):
    page = client_page(context, module_server)
    page.evaluate(FAKES)
    log = page.evaluate(
        """async () => {
             const client = new ChatClient({ tokens: fakeTokens, username: "ada", WebSocket: FakeSocket,
                                             baseDelayMs: 1, maxDelayMs: 1 });
             const events = { message: [], message_updated: [] };
             client.on("message", (f) => events.message.push(f.message.id));
             client.on("message_updated", (f) => events.message_updated.push(f.message.rev));
             const update = (change, seq, fields) =>
               ({ type: "message_updated", change, message: message(seq, fields) });
             const connected = client.connect();
             const first = await nextSocket(1);
             first.accept();
             first.frame(readyFrame(10));                          // positions 1..10: ten unread messages
             first.frame(connectHistory([message(9), message(10)]));
             await connected;
             first.frame({ type: "message", message: message(10) });                // repeated
             first.frame({ type: "message", message: message(11) });                // new at 11
             first.frame(update("edited", 9, { rev: 12, content: "edit at 12", edited_at: "x" }));
             first.frame(update("edited", 9, { rev: 10, content: "stale", edited_at: "x" }));  // older
             first.frame(update("edited", 3, { rev: 13, content: "old one edited" }));  // below those held
             first.frame(update("deleted", 11, { rev: 14, content: "", deleted: true }));
             first.frame(update("deleted", 11, { rev: 14, content: "", deleted: true }));    // repeated
             const held = client.messages(null).map((m) => [m.id, m.rev, m.content, m.deleted]);
             const unread = client.readState(null).unread;
             const hasOlder = client.hasOlder(null);

             first.end(1006);                                      // resume from position 14
             const second = await nextSocket(2);
             second.accept();
             second.frame(readyFrame(17));                         // 15: m10 edited, 16 and 17 new
             second.frame(connectHistory([message(16), message(17)]));
             const syncs = [second.sent.find((f) => f.type === "sync")];
             second.frame({ type: "history", reason: "sync", channel: null, has_more: true,
                            messages: [message(10, { rev: 15, content: "edit at 15" }), message(16)] });
             second.frame({ type: "message", message: message(18) });   // live, while catching up
             second.end(1006);                                      // lost before `synced`: 17 was never seen

             const third = await nextSocket(3);
             third.accept();
             third.frame(readyFrame(18));
             third.frame(connectHistory([message(17), message(18)]));
             syncs.push(third.sent.find((f) => f.type === "sync"));
             third.frame({ type: "history", reason: "sync", channel: null, has_more: true,
                           messages: [message(17)] });
             third.frame({ type: "synced" });
             const stateBeforeMore = client.state;
             syncs.push(third.sent.filter((f) => f.type === "sync")[1]);
             third.frame({ type: "history", reason: "sync", channel: null, has_more: false,
                            messages: [message(18)] });
             third.frame({ type: "synced" });
             return { events, held, unread, hasOlder, syncs, stateBeforeMore, stateAfter: client.state,
                      after: client.messages(null).map((m) => [m.id, m.rev]) };
           }"""
    )
    assert log["events"] == {"message": ["m11", "m18"], "message_updated": [12, 13, 14]}
    assert log["held"] == [
        ["m9", 12, "edit at 12", False],
        ["m10", 10, "text 10", False],
        ["m11", 14, "", True],
    ]
    assert log["unread"] == 10  # m11 counted, then uncounted when deleted
    assert log["hasOlder"] is True  # m1..m8 are not held; history() brings them
    # Each sync resumes where the previous one's pages ended, never from a live frame's position.
    assert [sync["after"] for sync in log["syncs"]] == [{"": 14}, {"": 16}, {"": 17}]
    assert log["stateBeforeMore"] == "reconnecting" and log["stateAfter"] == "open"
    assert log["after"] == [["m9", 12], ["m10", 15], ["m11", 14], ["m16", 16], ["m17", 17], ["m18", 18]]


def test_a_second_4401_after_a_refresh_ends_the_session(context, module_server):
    page = client_page(context, module_server)
    page.evaluate(FAKES)
    log = page.evaluate(
        """async () => {
             const refreshes = [];
             const fetch = async (url, init) => {
               refreshes.push(JSON.parse(init.body).refresh);
               const pair = { access: fakeTokens.access, refresh: "r2" };
               return new Response(JSON.stringify(pair), { status: 200 });
             };
             const client = new ChatClient({ tokens: fakeTokens, username: "ada", fetch,
                                             WebSocket: FakeSocket });
             const states = [];
             client.on("connection", (e) => states.push([e.state, e.code ?? null]));
             const connected = client.connect().catch((error) => error.code);
             (await nextSocket(1)).end(4401);     // refused: refresh, then at once again
             (await nextSocket(2)).end(4401);     // refused with the new token too: the session is over
             const late = new Promise((ok) => setTimeout(() => ok("still connecting"), 2000));
             return { refreshes, states, connected: await Promise.race([connected, late]),
                      sockets: FakeSocket.made.length, tokens: client.tokens };
           }"""
    )
    assert log["refreshes"] == ["r"]
    assert log["states"] == [["connecting", None], ["reconnecting", 4401], ["logged_out", None]]
    assert log["connected"] == "logged_out"
    assert log["sockets"] == 2 and log["tokens"] is None


# --- REST helpers and the state they feed ------------------------------------------------------------


def test_channels_read_state_typing_and_history_through_the_client(context, other_context, module_server):
    ada, bob, page_a, page_b = two_people(context, other_context, module_server)
    second_a = chat_page(context, module_server, ada)  # the same user in another tab
    club = f"club{uuid.uuid4().hex[:8]}"

    created = page_a.evaluate("(name) => c.createChannel(name, { private: true, description: 'ours' })", club)
    assert created["kind"] == "private" and created["owner"] == ada["username"]
    page_a.evaluate("([name, user]) => c.addMember(name, user)", [club, bob["username"]])
    for page in (page_a, page_b, second_a):
        wait_js(page, "(name) => c.channels().includes(name)", club)

    contents = [f"line {i}" + (" needle" if i == 7 else "") for i in range(60)]
    for content in contents:
        post_message(module_server, bob, club, content)
    for page in (page_a, second_a):
        wait_js(page, "(name) => c.messages(name).length === 60", club)
        assert page.evaluate("(name) => c.readState(name).unread", club) == 60  # counted from live frames

    # Reading in one tab clears the badge in the other (the server's `read` frame).
    page_a.evaluate("(name) => c.markRead(name)", club)
    assert page_a.evaluate("(name) => c.readState(name).unread", club) == 0
    wait_js(second_a, "(name) => c.readState(name).unread === 0", club)

    # A page opened now gets the newest 50 (connect history), then pages back through history().
    late = chat_page(context, module_server, ada)
    assert late.evaluate("(name) => c.hasOlder(name)", club)
    pages = late.evaluate(
        """async (name) => {
             const sizes = [];
             while (c.hasOlder(name)) sizes.push((await c.history(name, { limit: 20 })).messages.length);
             return sizes;
           }""",
        club,
    )
    assert sum(pages) >= 10 and len(pages) >= 1
    assert [m["content"] for m in held(late, club)] == contents

    page_b.evaluate("(name) => c.typing(name)", club)
    wait_js(page_a, "([name, user]) => c.typingIn(name).includes(user)", [club, bob["username"]])

    found = page_a.evaluate("(name) => c.search('needle', { channel: name })", club)
    assert [m["content"] for m in found] == ["line 7 needle"]
    direct = page_a.evaluate("(user) => c.openDirect(user)", bob["username"])
    assert direct["kind"] == "direct"
    assert direct["name"] == "@" + "+".join(sorted([ada["username"], bob["username"]], key=str.lower))
    wait_js(page_b, "(name) => c.channels().includes(name)", direct["name"])
    mine = {channel["name"]: channel for channel in page_a.evaluate("() => c.myChannels()")}
    assert mine[club]["unread"] == 0 and direct["name"] in mine
    assert club in [channel["name"] for channel in page_a.evaluate("() => c.listChannels()")]
    assert page_a.evaluate("() => c.setStatus('away')")["status"] == "away"

    page_b.evaluate("(name) => c.leave(name)", club)
    wait_js(page_b, "(name) => !c.channels().includes(name) && c.messages(name).length === 0", club)
    refused = page_b.evaluate("(name) => c.send(name, 'not a member any more').catch((e) => e.code)", club)
    assert refused == "channel_not_found"  # a private channel, as if it did not exist
    assert page_b.evaluate("c.pending()") == 0
