"""The gateway's database steps: what a connect costs as a user's channels grow."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chatrooms import services as channel_services
from gateway import database
from messaging import changes
from messaging.selectors import reset_recent_cache
from messaging.services import message_send

pytestmark = pytest.mark.django_db


def connect_queries(user) -> int:
    """Queries of a cold connect's counting, streams, ready and history (no cache)."""
    reset_recent_cache()
    with CaptureQueriesContext(connection) as queries:
        streams = database.connection_open(user=user, connection_id=f"c-{len(connection.queries)}", limit=100)
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
