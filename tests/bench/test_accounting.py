"""The load tool's delivery accounting on synthetic input: loss, duplicates, order."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bench.accounting import Ledger, Track
from bench.client import ChatClient, make_content, parse_sent_at
from bench.scenarios import page_in_order, percentiles_ms


def test_track_in_order_is_clean():
    track = Track()
    for seq in (1, 2, 3, 5, 8):
        track.record(seq)
    assert (track.duplicated, track.out_of_order, track.highest) == (0, 0, 8)


def test_track_counts_duplicates_and_late_arrivals():
    track = Track()
    for seq in (1, 3, 2, 3, 1, 4):
        track.record(seq)
    assert track.duplicated == 2
    assert track.out_of_order == 1  # 2 after 3
    assert track.seen == {1, 2, 3, 4}


def test_ledger_tally_lost_duplicated_out_of_order_unacknowledged():
    ledger = Ledger()
    alice, bob, carol = object(), object(), object()
    a, b = ledger.subscribe(alice, "room"), ledger.subscribe(bob, "room")
    c = ledger.subscribe(carol, "")
    for seq in (10, 11, 12):
        ledger.acked("room", seq)
    ledger.acked("", 7)
    for seq in (10, 11, 12):
        a.record(seq)
    for seq in (12, 10, 10):  # 11 lost, 10 late and then repeated
        b.record(seq)
    c.record(7)
    c.record(99)  # never acknowledged
    tally = ledger.tally()
    assert tally.expected == 7
    assert tally.delivered == 3 + 3 + 2
    assert tally.lost == 1
    assert tally.duplicated == 1
    assert tally.out_of_order == 1
    assert tally.unacknowledged == 1
    assert not tally.clean


def test_ledger_clean_run():
    ledger = Ledger()
    tracks = [ledger.subscribe(n, "s") for n in range(5)]
    for seq in range(1, 101):
        ledger.acked("s", seq)
        for track in tracks:
            track.record(seq)
    tally = ledger.tally()
    assert tally.clean
    assert (tally.expected, tally.delivered, tally.lost) == (500, 500, 0)


def test_subscriber_that_received_nothing_loses_everything():
    ledger = Ledger()
    ledger.subscribe("silent", "s")
    for seq in (1, 2, 3):
        ledger.acked("s", seq)
    assert ledger.tally().lost == 3


def test_subscribe_twice_returns_the_same_track():
    ledger = Ledger()
    assert ledger.subscribe("x", "s") is ledger.subscribe("x", "s")
    ledger.acked("s", 1)
    assert ledger.tally().expected == 1


def _frame(**message) -> bytes:
    return orjson.dumps({"type": "message", "message": message})


async def test_client_records_only_the_runs_messages_by_stream():
    ledger = Ledger()
    client = ChatClient("u1", "run1-", ledger)
    seen = []
    client.on_message = lambda c, message, now: seen.append(message["seq"])
    client.on_text(orjson.dumps({"type": "ready", "channels": ["room"], "online": []}))
    assert not client.ready.done()
    client.on_text(orjson.dumps({"type": "history", "reason": "connect", "messages": [], "has_more": False}))
    assert client.ready.done()
    client.on_text(_frame(seq=1, channel="room", content="x", client_id="run1-0"))
    client.on_text(_frame(seq=2, channel="room", content="x", client_id="other-0"))  # not ours
    client.on_text(_frame(seq=5, channel=None, content="x", client_id=None))  # not ours
    client.on_text(_frame(seq=1, channel="room", content="x", client_id="run1-0"))  # duplicate
    client.on_text(_frame(seq=3, channel=None, content="x", client_id="run1-1"))  # lobby
    client.on_text(orjson.dumps({"type": "presence", "username": "v", "status": "online"}))
    assert seen == [1, 1, 3]
    assert set(client.tracks) == {"room", ""}
    assert client.tracks["room"].duplicated == 1
    assert client.frames == 8


async def test_client_hands_acks_of_the_run_to_the_hook_and_keeps_errors():
    client = ChatClient("u1", "run1-", None)
    acks = []
    client.on_ack = lambda c, frame: acks.append(frame["seq"])
    client.on_text(orjson.dumps({"type": "ack", "client_id": "run1-4", "id": "i", "seq": 9}))
    client.on_text(orjson.dumps({"type": "ack", "client_id": "zzz", "id": "i", "seq": 10}))
    client.on_text(orjson.dumps({"type": "error", "code": "rate_limited", "detail": "slow"}))
    assert acks == [9]
    assert client.errors[0]["code"] == "rate_limited"
    await asyncio.sleep(0)


def test_content_carries_the_send_time():
    assert parse_sent_at(make_content("tag-", 7, 12.5)) == pytest.approx(12.5)


def test_percentiles():
    samples = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    figures = percentiles_ms(samples)
    assert figures["p50"] == pytest.approx(51)
    assert figures["p99"] == pytest.approx(100)
    assert figures["max"] == pytest.approx(100)
    assert percentiles_ms([])["p50"] is None


def test_page_order_check():
    ok = [
        {"id": "a", "seq": 1, "channel": None},
        {"id": "b", "seq": 1, "channel": "room"},
        {"id": "c", "seq": 2, "channel": None},
    ]
    assert page_in_order(ok)
    assert not page_in_order([*ok, {"id": "a", "seq": 3, "channel": None}])  # repeated id
    assert not page_in_order([*ok, {"id": "d", "seq": 2, "channel": None}])  # seq not ascending
