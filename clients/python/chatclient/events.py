"""Handlers and async iterators over the client's events.

A handler may be a plain function or a coroutine function. Coroutines run as
tasks of their own rather than being awaited in the reader: a bot's handler
that awaits ``send()`` needs the reader to go on and receive the ``ack``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from chatclient.types import Event

logger = logging.getLogger(__name__)

Handler = Callable[[Event], Any]

_END: Event = {"type": "__end__"}


class Emitter:
    """Delivers each event to the handlers of its type, then to every open ``events()`` iterator."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._queues: list[tuple[asyncio.Queue[Event], frozenset[str] | None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    def on(self, event_type: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(event)`` for each event of ``event_type``; returns a function that stops it."""
        self._handlers.setdefault(event_type, []).append(handler)
        return lambda: self.off(event_type, handler)

    def off(self, event_type: str, handler: Handler) -> None:
        handlers = self._handlers.get(event_type, [])
        if handler in handlers:
            handlers.remove(handler)

    def emit(self, event: Event) -> None:
        """Never raises: a failing handler is logged, and the others still run."""
        for handler in list(self._handlers.get(event["type"], ())):
            self._call(handler, event)
        for queue, types in self._queues:
            if types is None or event["type"] in types:
                queue.put_nowait(event)

    def _call(self, handler: Handler, event: Event) -> None:
        try:
            result = handler(event)
        except Exception:
            logger.exception("%s handler failed", event["type"])
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("event handler failed", exc_info=task.exception())

    async def events(self, types: Collection[str] | None = None) -> AsyncIterator[Event]:
        """Every event from now on (or those of ``types``), until the client is closed."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        entry = (queue, None if types is None else frozenset(types))
        self._queues.append(entry)
        try:
            while (event := await queue.get()) is not _END:
                yield event
        finally:
            self._queues.remove(entry)

    def end_iterators(self) -> None:
        """Finish every ``events()`` loop (the client was closed)."""
        for queue, _ in self._queues:
            queue.put_nowait(_END)

    async def drain(self) -> None:
        """Wait for the handler tasks still running."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
