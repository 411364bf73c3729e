"""Close every socket with 1001 when the server process is told to stop.

Neither server does this itself (measured here: uvicorn closes with 1012,
daphne drops the TCP connection), so the process's start-up wraps the
server's SIGTERM/SIGINT handlers once: close our sockets with 1001 ("going
away"), let the close frames flush, then hand the signal to the server as before.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from realtime import frames

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 0.2
_installed = False


def install_graceful_close(close_all: Callable[[int], Awaitable[Any]]) -> None:
    """Wrap the process's stop signals once; ``close_all(code)`` closes this process's sockets."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    _installed = True
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def on_signal(received: int, frame: Any, previous: Any = previous) -> None:
            signal.signal(received, previous if previous is not None else signal.SIG_DFL)
            loop.call_soon_threadsafe(
                lambda: asyncio.ensure_future(_close_then_stop(close_all, received, frame, previous))
            )

        signal.signal(signum, on_signal)


async def _close_then_stop(
    close_all: Callable[[int], Awaitable[Any]], signum: int, frame: Any, previous: Any
) -> None:
    try:
        await close_all(frames.CLOSE_GOING_AWAY)
        await asyncio.sleep(FLUSH_SECONDS)
    except Exception:
        logger.exception("closing sockets before shutdown failed")
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        os.kill(os.getpid(), signum)
