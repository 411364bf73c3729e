"""The gateway's database steps: what a connect costs as a user's channels grow."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import presence
from chatrooms import services as channel_services
from gateway import database
from messaging import changes
from messaging.selectors import reset_recent_cache
from messaging.services import message_send

pytestmark = pytest.mark.django_db


def _connection_open(user) -> dict[str, str | None]:
    epoch = presence.status_epoch()
    return database.connection_open(
        user=user, connection_id=f"c-{len(connection.queries)}", limit=100, epoch=epoch
    )


def connect_queries(user) -> int:
    """Queries of a cold connect's counting, streams, ready and history (no cache)."""
    reset_recent_cache()
    with CaptureQueriesContext(connection) as queries:
        streams = _connection_open(user)
        state = database.initial_state(user=user, streams=streams)
    assert state.history["messages"]
    return len(queries)


def add_channels(user, first: int, count: int) -> None:
    for n in range(first, first + count):
        channel = channel_services.channel_create(user=user, name=f"room{n}")
        message = message_send(user=user, channel_name=channel.name, content=f"hi @{user.username}").message
        changes.reaction_add(user=user, message_id=str(message.id), emoji="👍")


def test_connect_costs_the_same_queries_in_2_and_in_12_channels(alice):
    add_channels(alice, 0, 2)
    with_two = connect_queries(alice)
    add_channels(alice, 2, 10)
    # Every channel's recent history in one query, their reactions and
    # mentions in one each, and the read counts with the positions in one.
    assert connect_queries(alice) == with_two


def state_queries(user) -> int:
    """Queries of ``ready`` and the connect history alone, whatever is cached."""
    streams = _connection_open(user)
    with CaptureQueriesContext(connection) as queries:
        database.initial_state(user=user, streams=streams)
    return len(queries)


def test_a_reconnect_reads_few_channels_from_the_cache_and_many_in_one_query(alice, monkeypatch):
    add_channels(alice, 0, 3)
    connect_queries(alice)
    warm = state_queries(alice)
    monkeypatch.setattr("messaging.selectors.RECENT_FILL_STREAMS", 2)  # three channels are now "many"
    connect_queries(alice)
    merged = state_queries(alice)
    # Few channels came from the cache; many are read again each time (one
    # query, with one for their reactions and one for their mentions).
    assert merged == warm + 3


def _old_connect_history(last_seqs: dict[str, int], limit: int = 50) -> list[dict]:
    """The connect history as it was computed before: each stream read on its own, merged here."""
    from messaging.payloads import message_payloads
    from messaging.selectors import _stream_messages

    candidates = []
    for stream, last_seq in last_seqs.items():
        rows = _stream_messages(stream).filter(seq__lte=last_seq).order_by("-seq")[: limit + 1]
        candidates += message_payloads(rows)
    candidates.sort(key=lambda payload: (payload["created_at"], payload["seq"]), reverse=True)
    return candidates[:limit][::-1]


@pytest.mark.parametrize("fill_streams", [8, 0], ids=["pages-cached", "merged"])
def test_connect_history_is_what_reading_each_stream_alone_gives(alice, monkeypatch, fill_streams):
    """Many channels, messages of several streams in the same millisecond, positions cut short;
    channels read whole and cached, or merged to one page."""
    monkeypatch.setattr("messaging.selectors.RECENT_FILL_STREAMS", fill_streams)
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from messaging.models import Message
    from messaging.positions import last_positions, positions_take
    from messaging.selectors import connect_history
    from realtime.groups import LOBBY_STREAM, channel_stream

    channels = [channel_services.channel_create(user=alice, name=f"tie{n}") for n in range(4)]
    # Lobby messages 52 and 53 fall on a whole second (stored without a fraction by SQLite).
    start = timezone.now().replace(microsecond=0) - timedelta(milliseconds=78)
    for index, channel in enumerate([None, *channels]):
        with transaction.atomic():
            last = positions_take(channel_stream(channel.id if channel else None), 60)
            Message.objects.bulk_create(
                Message(
                    seq=seq,
                    rev=seq,
                    channel=channel,
                    user=alice,
                    content=f"{index}:{seq}",
                    # Each stream writes every 3 ms, microseconds apart: many ties to the millisecond.
                    created_at=start + timedelta(microseconds=(seq // 2) * 3000 + index * 7),
                )
                for seq in range(last - 59, last + 1)
            )
    streams = [LOBBY_STREAM, *(channel_stream(channel.id) for channel in channels)]
    last_seqs = last_positions(streams)
    last_seqs[streams[2]] -= 25  # a stream read only up to its given position
    reset_recent_cache()
    page = connect_history(last_seqs=last_seqs)
    assert page.has_more
    assert page.messages == _old_connect_history(last_seqs)
    reset_recent_cache()
    only_channels = {stream: seq for stream, seq in last_seqs.items() if stream != LOBBY_STREAM}
    assert connect_history(last_seqs=only_channels).messages == _old_connect_history(only_channels)


def test_the_handshake_step_authenticates_counts_and_reads_the_streams(alice, bob):
    """One step, refusals in the contract's order: the token (4401), the name in the URL (4403)."""
    from accounts.models import LoginSession
    from accounts.tokens import issue_token_pair
    from gateway.database import Refused
    from realtime.groups import LOBBY_STREAM, channel_stream

    channel = channel_services.channel_create(user=alice, name="den")
    session = LoginSession.objects.create(user=alice)
    token = issue_token_pair(session).access

    opening = database.handshake_open(token=token, username="ALICE", connection_id="c1", limit=10)
    assert (opening.user.id, opening.session_id) == (alice.id, session.id)
    assert opening.streams == {LOBBY_STREAM: None, channel_stream(channel.id): "den"}
    assert presence.is_connected(alice.id)

    for token_given, username, code in [
        (None, "alice", 4401),
        ("not-a-jwt", "alice", 4401),
        (token, "bob", 4403),
    ]:
        with pytest.raises(Refused) as refused:
            database.handshake_open(token=token_given, username=username, connection_id="c2", limit=10)
        assert refused.value.code == code
    session.ended_at = session.created_at
    session.save()
    with pytest.raises(Refused) as refused:
        database.handshake_open(token=token, username="alice", connection_id="c3", limit=10)
    assert refused.value.code == 4401
