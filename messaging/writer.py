"""Group commit for the WebSocket: one database trip and one commit for every message waiting.

Every socket of a process hands its messages to the process's writer, which
sends whatever has queued up to ``message_send_batch`` in one call. Under
light load a batch is one message (no added wait); under load, messages that
arrive while a batch is being stored form the next batch.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any
from uuid import UUID

from accounts.models import User
from core.database_thread import db
from messaging.services import SendRequest, SendResult, message_send_batch

MAX_BATCH = 200


class MessageWriter:
    def __init__(self) -> None:
        self._waiting: list[tuple[SendRequest, asyncio.Future]] = []
        self._flushing = False

    async def send(
        self,
        *,
        user: User,
        channel_name: str | None,
        content: Any,
        client_id: Any,
        reply_to: Any = None,
        channel_id: UUID | None = None,
    ) -> SendResult:
        """Store one message (in the next batch); raise its ChatError if refused.

        ``channel_id``: the channel's id when the socket is subscribed to it
        (``SendRequest``), which spares the write a look-up by name.
        """
        future = asyncio.get_running_loop().create_future()
        request = SendRequest(user, channel_name, content, client_id, reply_to, channel_id)
        self._waiting.append((request, future))
        if not self._flushing:
            self._flushing = True
            asyncio.ensure_future(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    outcomes = await db(message_send_batch)(requests=[request for request, _ in batch])
                except Exception as error:  # the commit itself failed: nothing of the batch is stored
                    outcomes = [error] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        finally:
            self._flushing = False


_writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MessageWriter] = weakref.WeakKeyDictionary()
_last: tuple[asyncio.AbstractEventLoop | None, MessageWriter | None] = (None, None)


def get_writer() -> MessageWriter:
    """The writer of the running event loop (one per server process; tests run several loops)."""
    global _last
    loop = asyncio.get_running_loop()
    if _last[0] is loop:
        return _last[1]
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = MessageWriter()
    _last = (loop, writer)
    return writer
