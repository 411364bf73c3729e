"""The few REST calls a bot needs, on ``urllib.request`` in a worker thread (no HTTP dependency)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from chatclient.errors import ChatError


class Rest:
    """JSON over HTTP to one server; every answer of 400 or more raises ``ChatError``.

    Network failures (refused, reset, timed out) raise ``OSError``: the caller
    decides whether to retry.
    """

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"base_url must be an http(s) origin, got {base_url!r}")
        self.base_url = f"{parts.scheme}://{parts.netloc}"
        self.timeout = timeout

    @property
    def ws_base(self) -> str:
        """The WebSocket origin of the same server (ws:// or wss://)."""
        return "ws" + self.base_url[len("http") :]

    async def call(self, method: str, path: str, *, body: Any = None, token: str | None = None) -> Any:
        """The decoded JSON answer (None for 204)."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        url = self.base_url + path  # http(s) only: checked in __init__
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        status, retry_after, raw = await asyncio.to_thread(_exchange, request, self.timeout)
        answer = _decode(raw)
        if status >= 400:
            raise ChatError.from_response(status, answer, retry_after)
        return answer


def _exchange(request: urllib.request.Request, timeout: float) -> tuple[int, float | None, bytes]:
    """Status, Retry-After and body; HTTP errors are answers here, not exceptions."""
    try:
        # The scheme is checked in Rest.__init__: only http(s) URLs get here.
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, None, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, _retry_after(error.headers.get("Retry-After")), error.read()


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")
