"""Group commit: several messages stored in one transaction, each with its own outcome."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async

from chatrooms import services as channel_services
from chatrooms.models import Membership
from core.errors import ContentEmpty, NotAMember
from messaging import services, writer
from messaging.models import LobbyRead, Message, StreamSequence
from messaging.services import SendRequest, SendResult, message_send_batch


@pytest.mark.django_db
def test_batch_keeps_each_outcome_and_seqs_gapless(make_user, published):
    alice, bob = make_user(), make_user()
    channel_services.channel_create(user=alice, name="ops")
    requests = [
        SendRequest(alice, None, "one", "a"),
        SendRequest(alice, None, "   "),  # refused: empty
        SendRequest(bob, "ops", "not a member"),  # refused: not a member
        SendRequest(alice, "ops", "in ops"),
        SendRequest(alice, None, "one again", "a"),  # a resend within the batch
        SendRequest(alice, None, "two"),
    ]
    with published.capture():
        outcomes = message_send_batch(requests=requests)
    assert [type(o) for o in outcomes] == [
        SendResult,
        ContentEmpty,
        NotAMember,
        SendResult,
        SendResult,
        SendResult,
    ]
    assert outcomes[4].created is False and outcomes[4].message.id == outcomes[0].message.id
    assert [o.message.seq for o in (outcomes[0], outcomes[5])] == [1, 2]
    assert outcomes[3].message.seq == 1
    assert StreamSequence.objects.get(stream="").last_seq == 2
    assert Message.objects.count() == 3
    # One announcement per new message (the resend within the batch is the same
    # commit's: not announced twice), then one read move per (sender, stream):
    # alice in the lobby (to seq 2) and in ops.
    kinds = [(event["kind"], event.get("seq")) for _, event in published.calls]
    assert kinds == [("message", 1), ("message", 1), ("message", 2), ("frame", None), ("frame", None)]
    assert LobbyRead.objects.get(user=alice).last_read_seq == 2
    assert Membership.objects.get(user=alice, channel__name="ops").last_read_seq == 1


@pytest.mark.django_db(transaction=True)
async def test_writer_batches_concurrent_sends_and_answers_each(make_user, monkeypatch):
    user = await database_sync_to_async(make_user)()
    batch_sizes = []
    real = services.message_send_batch

    def counting(*, requests):
        batch_sizes.append(len(requests))
        return real(requests=requests)

    monkeypatch.setattr(writer, "message_send_batch", counting)
    process_writer = writer.MessageWriter()
    results = await asyncio.gather(
        *(
            process_writer.send(user=user, channel_name=None, content=f"m{n}", client_id=f"c{n}")
            for n in range(30)
        ),
        process_writer.send(user=user, channel_name=None, content=" ", client_id=None),
        return_exceptions=True,
    )
    assert isinstance(results[-1], ContentEmpty)
    assert sorted(r.message.seq for r in results[:-1]) == list(range(1, 31))
    assert [r.message.client_id for r in results[:-1]] == [f"c{n}" for n in range(30)]
    assert sum(batch_sizes) == 31 and len(batch_sizes) < 31  # sends waiting together shared a commit
