"""The one hand-over from the event loop to the thread that runs sync database work.

Services and selectors are sync and own their transactions; sockets are
async. ``db`` is how any async caller (the gateway's steps, the message
writer's group commit) reaches them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from asgiref.sync import AsyncToSync, SyncToAsync
from channels.db import database_sync_to_async
from django.db import close_old_connections


def db(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run one sync database step in the shared sync thread, in a copy of the caller's context.

    The thread is the one ``database_sync_to_async`` would pick, and stale
    connections are closed before and after the step as it does; what it
    leaves out is its bookkeeping for nesting sync and async code, which no
    step needs (none calls back into async code): half of a trip's cost (59 -> 31 us of CPU, measured on a
    step doing nothing), two or three trips per connect. Inside asgiref's
    thread-sensitive contexts (Django's HTTP requests) it defers to
    ``database_sync_to_async``.

    What the step sets in context variables (asgiref's locals for Django's
    translation and connections) stays in that copy instead of being copied
    back into the socket's own context, where every idle socket would keep it
    (about 1 KiB each, measured with ``bench/idle_memory.py``). No step
    hands anything back that way.
    """
    return functools.partial(_in_database_thread, function)


async def _in_database_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    context = contextvars.copy_context()
    executor = _database_thread()
    if executor is None:
        return await database_sync_to_async(function, context=context)(*args, **kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, context.run, _step, function, args, kwargs)


def _database_thread() -> Executor | None:
    """The executor of the thread asgiref gives thread-sensitive sync code here, or None inside a
    thread-sensitive context (then asgiref decides)."""
    current = getattr(AsyncToSync.executors, "current", None)
    if current is not None:  # under async_to_sync: that sync thread (tests, bench/connect_cost.py)
        return current
    if SyncToAsync.thread_sensitive_context.get(None) is not None:
        return None
    executor = AsyncToSync.loop_thread_executors.get(asyncio.get_running_loop())
    return executor if executor is not None else SyncToAsync.single_thread_executor


def _step(function: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()
