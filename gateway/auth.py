"""WebSocket handshake checks made before the consumer runs: the Origin.

``WebSocketOriginValidator`` refuses an Origin the contract refuses (HTTP
403); Channels' own validators also refuse handshakes with no ``Origin`` at
all, which the contract serves (bots, mobile apps, the benchmark). The token
is checked by the consumer's first database step
(``gateway.database.handshake_open``), after it accepted: it then closes with
the refusal's code, as the contract asks.
"""

from __future__ import annotations

from collections.abc import Awaitable
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _netloc(scheme: str, host: str, port: int | None) -> str:
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return host.lower()
    return f"{host.lower()}:{port}"


def origin_allowed(origin: str | None, host_header: str | None) -> bool:
    """No Origin: allowed. ``null`` or unparsable: refused. Else listed or same-origin."""
    if origin is None:
        return True
    origin = origin.strip()
    if not origin or origin == "null":
        return False
    allowed = {entry.rstrip("/").lower() for entry in settings.CORS_ALLOWED_ORIGINS}
    if origin.rstrip("/").lower() in allowed:
        return True
    try:
        parts = urlsplit(origin)
        origin_netloc = _netloc(parts.scheme, parts.hostname or "", parts.port)
        host = urlsplit(f"{parts.scheme}://{host_header or ''}")
        host_netloc = _netloc(parts.scheme, host.hostname or "", host.port)
    except ValueError:
        return False
    return bool(parts.hostname) and origin_netloc == host_netloc


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class WebSocketOriginValidator:
    """ASGI middleware: refuse a handshake (HTTP 403) from an Origin the contract refuses.

    A plain callable returning the application's coroutine, not a coroutine
    awaiting it: an open socket then keeps no suspended frame of this check.
    """

    _asgi_single_callable = True  # an ASGI 3 application, whose call returns the awaitable

    def __init__(self, application) -> None:
        self.application = application

    def __call__(self, scope, receive, send) -> Awaitable[None]:
        if scope["type"] == "websocket" and not origin_allowed(
            _header(scope, b"origin"), _header(scope, b"host")
        ):
            return WebsocketDenier()(scope, receive, send)
        return self.application(scope, receive, send)
