"""Tokens: log in, refresh before expiry (rotating the refresh token), and REST calls that use them.

One refresh at a time: the refresh token is rotated on every use, and reusing
an old one ends the session, so two concurrent refreshes would log the client out.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from chatclient.errors import ChatError, LoggedOut
from chatclient.rest import Rest
from chatclient.types import Tokens

logger = logging.getLogger(__name__)

TRANSIENT_RETRY_SECONDS = 2.0  # after a refresh that failed for want of a server


def token_claims(token: str) -> dict[str, Any]:
    """The JWT's payload, unverified (the server verifies; the client only reads ``exp``)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def refresh_at(access: str, *, margin: float, received: float) -> float | None:
    """The Unix time at which to refresh ``access``: ``margin`` seconds before it expires, at most
    half its lifetime before (a 3-second token is refreshed after 1.5 s); None when it has no ``exp``."""
    claims = token_claims(access)
    expires = claims.get("exp")
    if not isinstance(expires, int | float):
        return None
    issued = claims.get("iat")
    lifetime = expires - (issued if isinstance(issued, int | float) else received)
    return expires - min(margin, max(lifetime, 0) / 2)


class Auth:
    """Holds the tokens; ``api`` calls REST with them, refreshing once on a 401."""

    def __init__(
        self,
        rest: Rest,
        tokens: Tokens | None,
        *,
        margin: float,
        on_tokens: Callable[[Tokens], None],
    ) -> None:
        self.rest = rest
        self.margin = margin
        self.on_tokens = on_tokens
        self.refreshes = 0  # refresh requests made (for logs and tests)
        self._inflight: asyncio.Future[Tokens] | None = None  # the refresh under way
        self._tokens = tokens
        self._received = time.time()
        self._changed = asyncio.Event()  # set whenever the tokens change

    @property
    def tokens(self) -> Tokens | None:
        return self._tokens

    def _store(self, tokens: Tokens | None) -> None:
        self._tokens, self._received = tokens, time.time()
        self._changed.set()
        if tokens is not None:
            self.on_tokens(tokens)

    async def login(self, username: str, password: str) -> dict[str, Any]:
        """A new session; returns the own user."""
        answer = await self.rest.call(
            "POST", "/api/auth/login", body={"username": username, "password": password}
        )
        self._store(Tokens(access=answer["access"], refresh=answer["refresh"]))
        return cast(dict[str, Any], answer["user"])

    async def logout(self) -> None:
        """End this session on the server (a session already ended is fine) and forget the tokens."""
        tokens = self._tokens
        self._store(None)
        if tokens is None:
            return
        try:
            await self.rest.call(
                "POST", "/api/auth/logout", body={"refresh": tokens.refresh}, token=tokens.access
            )
        except ChatError as error:
            if error.status != 401:
                raise

    def seconds_until_refresh(self) -> float | None:
        """How long the access token may still be used as it is (None: no known expiry)."""
        if self._tokens is None:
            return None
        when = refresh_at(self._tokens.access, margin=self.margin, received=self._received)
        return None if when is None else when - time.time()

    async def refresh(self) -> Tokens:
        """Exchange the refresh token for a new pair. Raises ``LoggedOut`` when the server refuses
        it, ``OSError`` or ``ChatError`` (429, 5xx) when it is worth trying again later.

        Callers share the one exchange in flight, and a caller that is cancelled (``close()``)
        does not cancel it: the server has rotated the refresh token by then, and a client that
        dropped the answer would hold only the old one, whose reuse ends the session.
        """
        if self._inflight is None or self._inflight.done():
            if self._tokens is None:
                raise LoggedOut()
            self._inflight = asyncio.ensure_future(self._exchange(self._tokens))
            self._inflight.add_done_callback(_retrieve)
        return await asyncio.shield(self._inflight)

    async def _exchange(self, held: Tokens) -> Tokens:
        self.refreshes += 1
        try:
            answer = await self.rest.call("POST", "/api/auth/refresh", body={"refresh": held.refresh})
        except ChatError as error:
            if error.status in (400, 401):
                if self._tokens is held:
                    self._store(None)
                raise LoggedOut(error.detail) from error
            raise
        tokens = Tokens(access=answer["access"], refresh=answer["refresh"])
        self._store(tokens)
        return tokens

    async def access(self, *, force: bool = False) -> str:
        """An access token worth presenting: refreshed first when due (or ``force``)."""
        if self._tokens is None:
            raise LoggedOut("Not logged in: call login() or pass tokens.")
        left = self.seconds_until_refresh()
        if force or (left is not None and left <= 0):
            await self.refresh()
        if self._tokens is None:
            raise LoggedOut()
        return self._tokens.access

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        """An authenticated REST call; a 401 is answered by one refresh and one retry."""
        token = await self.access()
        try:
            return await self.rest.call(method, path, body=body, token=token)
        except ChatError as error:
            if error.status != 401:
                raise
        token = await self.access(force=True)
        return await self.rest.call(method, path, body=body, token=token)

    async def keep_fresh(self) -> None:
        """Refresh before each expiry for as long as the client runs; returns once logged out."""
        while self._tokens is not None:
            left = self.seconds_until_refresh()
            if left is None or left > 0:
                await self._changed_within(left)  # new tokens (login, a refresh elsewhere) or due
                continue
            try:
                await self.refresh()
            except LoggedOut:
                return
            except (OSError, ChatError) as error:
                logger.info("token refresh failed, retrying: %s", error)
                await asyncio.sleep(TRANSIENT_RETRY_SECONDS)

    async def _changed_within(self, seconds: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)


def _retrieve(exchange: asyncio.Future[Tokens]) -> None:
    """Mark a refresh's failure as seen: its callers may all have been cancelled."""
    if not exchange.cancelled():
        exchange.exception()
