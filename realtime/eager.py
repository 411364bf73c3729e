"""Run a coroutine eagerly: synchronously until it first has to wait.

A broadcast reaches hundreds of sockets, and an ASGI send almost never has to
wait (only when a socket's write buffer is full). Starting each send in its
own task costs more than the send itself, so a send is started inline and
only the rare one that must wait is handed to a task, as Python 3.12's eager
task factory does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def start_eagerly(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Future | None:
    """Run ``coroutine`` until it completes (return None) or blocks (return a task finishing it).

    Exceptions raised before it blocks propagate to the caller.
    """
    try:
        blocked_on = coroutine.send(None)
    except StopIteration:
        return None
    return asyncio.ensure_future(_finish(coroutine, blocked_on))


async def _finish(coroutine: Coroutine[Any, Any, Any], blocked_on: Any) -> None:
    """Drive a started coroutine to completion, as a Task would have."""
    while True:
        try:
            if blocked_on is None:  # a bare yield: just let the loop run once
                await asyncio.sleep(0)
            else:
                blocked_on._asyncio_future_blocking = False
                await asyncio.wait([blocked_on])
        except asyncio.CancelledError:
            coroutine.close()
            raise
        try:
            blocked_on = coroutine.send(None)
        except StopIteration:
            return
