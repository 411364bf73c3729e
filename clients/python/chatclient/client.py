"""``ChatClient``: the asyncio client for bots and scripts, with the JavaScript client's guarantees.

- It reconnects by itself until ``close()``, with exponential backoff and full
  jitter, acting on each close code as the contract means it (``chatclient.link``).
- After a reconnect it resumes by ``sync`` from the last position it saw in
  each channel, following ``has_more`` (``chatclient.receiver``).
- Every write carries a ``client_id`` and is kept until acknowledged: queued
  while disconnected and resent, in order, after reconnecting, so nothing is
  lost and nothing is stored twice (``chatclient.outbox``).
- It refreshes the access token before it expires (``chatclient.auth``).
- It drops frames it has already applied and keeps each channel's messages in
  position order with edits, deletions and reactions applied (``chatclient.state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, cast
from urllib.parse import quote
from uuid import uuid4

from chatclient.auth import Auth
from chatclient.backoff import Backoff
from chatclient.errors import ChatError, LoggedOut
from chatclient.events import Emitter, Handler
from chatclient.link import Link
from chatclient.outbox import Answer, Outbox
from chatclient.receiver import Receiver
from chatclient.rest import Rest
from chatclient.state import ChatState, channel_key
from chatclient.types import (
    TERMINAL_STATES,
    Ack,
    Channel,
    ConnectionState,
    Event,
    HistoryPage,
    Message,
    ReadState,
    Tokens,
    User,
)

logger = logging.getLogger(__name__)


class ChatClient:
    """A connection to one chat server for one user.

    ``ChatClient("http://127.0.0.1:8000")`` then ``await login(...)``, or
    ``ChatClient(url, username=..., tokens=Tokens(access, refresh))`` to start
    from tokens obtained earlier. ``async with`` closes it on the way out.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        tokens: Tokens | None = None,
        refresh_margin: float = 30.0,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        rest_timeout: float = 30.0,
    ) -> None:
        """``refresh_margin``: refresh the access token this many seconds before it expires (at most
        half its lifetime). ``backoff``: the reconnect delays (default 0.5 s doubling to 30 s)."""
        self._rest = Rest(base_url, timeout=rest_timeout)
        self._emitter = Emitter()
        self._auth = Auth(self._rest, tokens, margin=refresh_margin, on_tokens=self._tokens_changed)
        self._state = ChatState()
        self._outbox = Outbox()
        self._receiver = Receiver(
            state=self._state,
            outbox=self._outbox,
            emitter=self._emitter,
            send=self._send_frame,
            caught_up=self._caught_up,
            retry_later=self._retry_later,
        )
        self._username = username
        self._profile: User | None = None
        self._backoff = backoff or Backoff()
        self._open_timeout = open_timeout
        self._status: ConnectionState = "idle"
        self._connection = 0  # the number of the socket in use
        self._link: Link | None = None
        self._run_task: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._flush_wanted = False
        self._background: set[asyncio.Future[None]] = set()  # tasks kept referenced until done
        self._waiters: list[asyncio.Future[None]] = []
        self._reads: dict[str, dict[str, Any]] = {}  # read frames not yet written, by channel key

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- what the client knows ------------------------------------------------------

    @property
    def user(self) -> User | None:
        """The own user (from ``login`` or the last ``ready``)."""
        return self._state.user or self._profile

    @property
    def state(self) -> ConnectionState:
        return self._status

    @property
    def tokens(self) -> Tokens | None:
        """The current pair: store it to start a client from it again later."""
        return self._auth.tokens

    def channels(self) -> list[str]:
        """Channel names subscribed, sorted ignoring case (the lobby is always there, not listed)."""
        return sorted(self._state.names.values(), key=str.lower)

    def messages(self, channel: str | None) -> list[Message]:
        """A channel's messages held, in position (``seq``) order, every change applied."""
        return self._state.messages(channel_key(channel))

    def position(self, channel: str | None) -> int:
        """The highest position (``seq`` or ``rev``) seen in a channel: where a resume starts."""
        return self._state.positions.get(channel_key(channel), 0)

    def has_older(self, channel: str | None) -> bool:
        return self._state.older.get(channel_key(channel), False)

    def read_state(self, channel: str | None) -> ReadState | None:
        return self._state.reads.get(channel_key(channel))

    def online(self) -> list[str]:
        """Usernames others see online."""
        return sorted(self._state.online, key=str.lower)

    def typing_in(self, channel: str | None) -> list[str]:
        """Usernames typing in a channel in the last few seconds."""
        return self._state.typing_in(channel_key(channel))

    def pending(self) -> int:
        """Writes queued or sent and not yet answered."""
        return len(self._outbox)

    # --- events -----------------------------------------------------------------------

    def on(self, event_type: str, handler: Handler) -> Callable[[], None]:
        """Call ``handler(event)`` (a function or a coroutine function) for each event of a type:
        every server frame type, plus ``connection`` and ``tokens``. Returns an unsubscriber."""
        return self._emitter.on(event_type, handler)

    def off(self, event_type: str, handler: Handler) -> None:
        self._emitter.off(event_type, handler)

    def events(self, types: Collection[str] | None = None) -> AsyncIterator[Event]:
        """``async for event in client.events():`` every event from now on, until ``close()``."""
        return self._emitter.events(types)

    # --- accounts (REST) -------------------------------------------------------------

    async def register(self, username: str, email: str, password: str) -> User:
        """Create the account, then log in: returns the own user."""
        await self._rest.call(
            "POST", "/api/auth/register", body={"username": username, "email": email, "password": password}
        )
        return await self.login(username, password)

    async def login(self, username: str, password: str) -> User:
        """Start a session (a new pair of tokens)."""
        self._profile = cast(User, await self._auth.login(username, password))
        self._username = self._profile["username"]
        if self._status in TERMINAL_STATES:
            self._status = "idle"
        return self._profile

    async def logout(self) -> None:
        """Close the socket, end this session on the server and forget the tokens."""
        await self._stop()
        await self._auth.logout()
        self._finish("logged_out")

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """Any REST route, e.g. ``await api("GET", "/api/users/me")``; refused answers raise ChatError."""
        return await self._auth.api(method, path, body)

    async def join(self, channel: str) -> Channel:
        return await self._channel_call("POST", f"/api/channels/{quote(channel, safe='')}/join")

    async def leave(self, channel: str) -> Channel:
        return await self._channel_call("POST", f"/api/channels/{quote(channel, safe='')}/leave")

    async def create_channel(self, name: str, *, description: str = "", private: bool = False) -> Channel:
        body = {"name": name, "description": description, "private": private}
        return await self._channel_call("POST", "/api/channels/", body)

    async def add_member(self, channel: str, username: str) -> Channel:
        return await self._channel_call(
            "POST", f"/api/channels/{quote(channel, safe='')}/members", {"username": username}
        )

    async def open_direct(self, username: str) -> Channel:
        """The direct channel with a user (named "@a+b")."""
        return await self._channel_call("POST", f"/api/dms/{quote(username, safe='')}")

    async def _channel_call(self, method: str, path: str, body: Any = None) -> Channel:
        return cast(Channel, await self.api(method, path, body))

    # --- the connection ---------------------------------------------------------------

    async def connect(self) -> None:
        """Open the WebSocket; returns once caught up (state ``open``). The client then reconnects by
        itself until ``close()``. Raises ChatError when the server refuses the user or the session."""
        if self._status == "open":
            return
        if self._auth.tokens is None:
            raise LoggedOut("Not logged in: call login() or pass tokens.")
        if self._username is None:
            self._profile = await self.api("GET", "/api/users/me")
            self._username = self._profile["username"]
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._run_task is None or self._run_task.done():
            self._start()
        await waiter

    async def close(self) -> None:
        """Close the socket and stop reconnecting. Unanswered writes stay queued for the next
        ``connect()``; ``events()`` loops end."""
        await self._stop()
        if self._status not in TERMINAL_STATES:
            self._set_state("idle")
        self._settle_waiters(ChatError("closed", "The client was closed."))
        self._emitter.end_iterators()

    def _start(self) -> None:
        self._link = Link(
            url=self._socket_url, hooks=self, backoff=self._backoff, open_timeout=self._open_timeout
        )
        self._run_task = asyncio.create_task(self._run(self._link))
        self._refresher = asyncio.create_task(self._keep_fresh())

    async def _stop(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.stop()
        current = asyncio.current_task()
        for task in (self._run_task, self._refresher, self._flusher):
            if task is not None and task is not current and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _run(self, link: Link) -> None:
        outcome, code = await link.run()
        if outcome in TERMINAL_STATES:
            self._finish(cast(ConnectionState, outcome), code=code)

    async def _keep_fresh(self) -> None:
        await self._auth.keep_fresh()
        if self._auth.tokens is None and self._status not in TERMINAL_STATES:  # the refresh was refused
            await self._stop()
            self._finish("logged_out")

    async def _socket_url(self, refresh: bool) -> str:
        token = await self._auth.access(force=refresh)
        username = quote(self._username or "", safe="")
        return f"{self._rest.ws_base}/api/ws/{username}?token={quote(token, safe='')}"

    def _finish(self, state: ConnectionState, *, code: int | None = None) -> None:
        """The session is over (``logged_out``) or refused (``forbidden``): nobody waits any longer."""
        if self._status == state:
            return
        self._set_state(state, code=code)
        error: ChatError = (
            LoggedOut() if state == "logged_out" else ChatError(state, "The server refused this user.")
        )
        self._settle_waiters(error)
        self._outbox.fail_all(error)

    def _settle_waiters(self, error: ChatError | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    def _set_state(self, state: ConnectionState, **details: Any) -> None:
        self._status = state
        self._emitter.emit({"type": "connection", "state": state, **details})

    def _tokens_changed(self, tokens: Tokens) -> None:
        self._emitter.emit({"type": "tokens", "access": tokens.access, "refresh": tokens.refresh})

    # --- LinkHooks: what the link reports ------------------------------------------------

    def connection_made(self) -> None:
        # Counted here, not by the link: a close() and connect() starts a new link, and a write
        # sent on the old link's socket must still count as unsent on the new one.
        self._connection += 1
        self._receiver.begin()

    async def frame_received(self, frame: dict[str, Any]) -> None:
        await self._receiver.handle(frame)

    def connection_lost(self) -> bool:
        return self._receiver.catchup.done

    def link_state(
        self, state: str, *, code: int | None = None, attempt: int = 0, delay: float = 0.0
    ) -> None:
        if state == "reconnecting":
            self._set_state("reconnecting", code=code, attempt=attempt, delay=delay)
        elif self._status != "reconnecting":
            self._set_state(cast(ConnectionState, state))

    def _caught_up(self) -> None:
        self._set_state("open")
        self._settle_waiters(None)
        self._kick()

    # --- writes -------------------------------------------------------------------------

    async def send(
        self, channel: str | None, content: str, reply_to: str | None = None, *, client_id: str | None = None
    ) -> Ack:
        """Send to a channel (None: the lobby); returns the ``ack`` once the message is stored.
        Queued while disconnected and resent until acknowledged; a refusal raises ChatError."""
        frame: dict[str, Any] = {"type": "message", "channel": channel, "content": content}
        if reply_to is not None:
            frame["reply_to"] = reply_to
        return cast(Ack, await self._write(frame, client_id=client_id))

    async def edit(self, message_id: str, content: str) -> Ack:
        return cast(Ack, await self._write({"type": "edit", "id": message_id, "content": content}))

    async def delete(self, message_id: str) -> Ack:
        return cast(Ack, await self._write({"type": "delete", "id": message_id}))

    async def react(self, message_id: str, emoji: str) -> Ack:
        return cast(Ack, await self._write({"type": "react", "id": message_id, "emoji": emoji}))

    async def unreact(self, message_id: str, emoji: str) -> Ack:
        return cast(Ack, await self._write({"type": "unreact", "id": message_id, "emoji": emoji}))

    async def history(
        self, channel: str | None, *, before: str | None = None, limit: int | None = None
    ) -> HistoryPage:
        """Older messages of one channel, before ``before`` (a message id) or the oldest held; they are
        merged into the state. Asked again after a reconnect until answered."""
        frame: dict[str, Any] = {"type": "history", "channel": channel}
        before = before or self._state.oldest_id(channel_key(channel))
        if before is not None:
            frame["before"] = before
        if limit is not None:
            frame["limit"] = limit
        answer = await self._write(frame, answer="history")
        return HistoryPage(messages=answer["messages"], has_more=bool(answer.get("has_more")))

    async def mark_read(self, channel: str | None, seq: int | None = None) -> None:
        """Move the read position (default: the highest position held in the channel). Written now,
        or after reconnecting; the server answers with a ``read`` event."""
        key = channel_key(channel)
        position = self._state.positions.get(key, 0) if seq is None else seq
        self._reads[key] = {"type": "read", "channel": channel, "seq": position}
        self._kick()

    async def typing(self, channel: str | None) -> None:
        """Tell the channel's other members you are typing (dropped while disconnected)."""
        if self._status == "open":
            await self._send_frame({"type": "typing", "channel": channel})

    async def _write(
        self, frame: dict[str, Any], *, answer: Answer = "ack", client_id: str | None = None
    ) -> Any:
        if self._status in TERMINAL_STATES:
            raise (
                LoggedOut()
                if self._status == "logged_out"
                else ChatError(self._status, "Refused by the server.")
            )
        frame["client_id"] = client_id or str(uuid4())
        entry = self._outbox.add(frame, answer)
        self._kick()
        return await entry.future

    def _kick(self) -> None:
        """Write what is due, from one task at a time so that writes keep their order."""
        self._flush_wanted = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._flush_wanted:
            self._flush_wanted = False
            if self._status != "open":
                return
            connection = self._connection
            for entry in self._outbox.due(connection):
                if not await self._send_frame(entry.frame):
                    return  # the socket is gone: resent after the reconnect
                entry.sent_on = connection
            for key, frame in list(self._reads.items()):
                if not await self._send_frame(frame):
                    return
                if self._reads.get(key) is frame:
                    del self._reads[key]
            wait = self._outbox.next_retry()
            if wait is not None:
                self._retry_later(wait)

    def _retry_later(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(seconds, self._retry)

    def _retry(self) -> None:
        self._kick()
        if self._status != "open" and self._link is not None:
            task = asyncio.ensure_future(self._receiver.sync_again())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _send_frame(self, frame: dict[str, Any]) -> bool:
        link = self._link
        return link is not None and await link.send(frame)
