"""One WebSocket at a time, opened again until stopped: the close codes and the backoff live here.

The link knows sockets, not chat: each connection's frames go to a
``Session`` (``chatclient.session``), which says whether the connection got
as far as being caught up; the backoff starts over after one that did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from chatclient.backoff import Backoff, CloseAction, close_action
from chatclient.errors import ChatError, LoggedOut

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024 * 1024  # the server's frames may be large (a sync page of 200 messages)


class LinkHooks(Protocol):
    """What the link tells the client (``ChatClient`` implements it)."""

    def connection_made(self) -> None: ...
    async def frame_received(self, frame: dict[str, Any]) -> None: ...
    def connection_lost(self) -> bool: ...  # True when the connection had caught up
    def link_state(
        self, state: str, *, code: int | None = None, attempt: int = 0, delay: float = 0.0
    ) -> None: ...


class Link:
    def __init__(
        self,
        *,
        url: Callable[[bool], Awaitable[str]],  # the socket URL with a current token (True: refresh first)
        hooks: LinkHooks,
        backoff: Backoff,
        open_timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._hooks = hooks
        self._backoff = backoff
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._stopping = False

    async def run(self) -> tuple[str, int | None]:
        """Connect, and connect again after every close, until stopped (returns "idle") or until the
        server's answer means retrying cannot help ("forbidden" or "logged_out"), with the close code."""
        attempt = 0
        code: int | None = None
        refreshed = False  # a 4401 was answered by a refresh since the last connection that caught up
        force_refresh = False
        self._hooks.link_state("connecting")
        while not self._stopping:
            try:
                url = await self._url(force_refresh)
            except LoggedOut:
                return "logged_out", code
            except (OSError, ChatError) as error:  # the refresh could not reach the server
                logger.info("could not refresh the token before connecting: %s", error)
                code, caught_up = None, False
            else:
                force_refresh = False
                code, caught_up = await self._connection(url)
            if self._stopping:
                break
            if caught_up:
                attempt, refreshed = 0, False
            action = close_action(code)
            if action is CloseAction.STOP:
                return "forbidden", code
            if action is CloseAction.REFRESH:
                if refreshed:
                    return "logged_out", code  # refreshed once already, and the new token was refused too
                refreshed = force_refresh = True
                delay = 0.0
            elif action is CloseAction.RECONNECT_NOW:
                delay = 0.0
            else:
                delay = self._backoff.delay(attempt)
                attempt += 1
            self._hooks.link_state("reconnecting", code=code, attempt=attempt, delay=delay)
            await asyncio.sleep(delay)
        return "idle", None

    async def _connection(self, url: str) -> tuple[int | None, bool]:
        """Open one socket and read it to its end: its close code (None: it never opened)."""
        try:
            ws = await connect(
                url, max_size=MAX_FRAME_BYTES, open_timeout=self._open_timeout, compression=None
            )
        except (OSError, InvalidHandshake, TimeoutError) as error:
            logger.info("could not open the socket: %s", error)
            return None, False
        self._ws = ws
        self._hooks.connection_made()
        try:
            async for text in ws:
                await self._deliver(text)
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
        caught_up = self._hooks.connection_lost()
        code = ws.close_code
        logger.info("socket closed with %s", code)
        return code, caught_up

    async def _deliver(self, text: str | bytes) -> None:
        try:
            frame = json.loads(text)
        except ValueError:
            logger.warning("ignored a frame that is not JSON: %.80r", text)
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            logger.warning("ignored a frame without a type: %.80r", text)
            return
        try:
            await self._hooks.frame_received(frame)
        except Exception:
            logger.exception("failed to handle a %s frame", frame["type"])

    async def send(self, frame: dict[str, Any]) -> bool:
        """Write a frame on the open socket; False when there is none (it will be resent later)."""
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed:
            return False
        return True

    async def stop(self) -> None:
        """Close the socket (1000) and stop reconnecting; ``run`` then returns."""
        self._stopping = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
