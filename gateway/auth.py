"""WebSocket handshake checks, as ASGI middleware in front of the consumer.

``WebSocketOriginValidator`` refuses an Origin the contract refuses (HTTP
403); Channels' own validators also refuse handshakes with no ``Origin`` at
all, which the contract serves (bots, mobile apps, the benchmark).
``TokenAuthMiddleware`` resolves ``?token=`` into ``scope``; the consumer
accepts and then closes with the refusal's code, as the contract asks.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from channels.middleware import BaseMiddleware
from channels.security.websocket import WebsocketDenier
from django.conf import settings

from gateway.database import db, handshake_identity

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
    """ASGI middleware: refuse a handshake (HTTP 403) from an Origin the contract refuses."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(
            _header(scope, b"origin"), _header(scope, b"host")
        ):
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.application(scope, receive, send)


def _query_token(scope: dict) -> str | None:
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


class TokenAuthMiddleware(BaseMiddleware):
    """Fill ``scope["user"]`` and ``scope["session"]`` from the access token in ``?token=``.

    A handshake that cannot be authenticated gets ``scope["refusal"]``, the
    exception that says why (``Refused`` with 4401 or 4403, or a database or
    Redis outage, 1013), for the consumer to close with.
    """

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            scope = dict(scope, user=None, session=None, refusal=None)
            try:
                scope["user"], scope["session"] = await db(handshake_identity)(_query_token(scope))
            except Exception as exc:
                scope["refusal"] = exc
        return await super().__call__(scope, receive, send)
