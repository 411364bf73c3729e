"""The WebSocket's one route, behind the Origin check.

The path is matched here rather than by Channels' ``URLRouter``, which
copies the scope for every socket (and its middleware once more each) only
to pass the username on; the consumer reads the token itself, in its one
handshake step.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable
from typing import Any

from gateway.auth import WebSocketOriginValidator
from gateway.consumer import ChatConsumer

SOCKET_PATH = re.compile(r"api/ws/(?P<username>[^/]+)/?")


class SocketRouter:
    """``/api/ws/{username}`` to the consumer; any other path raises, as ``URLRouter`` does.

    Returns the consumer's coroutine rather than awaiting it, so an open
    socket keeps no suspended frame of the routing.
    """

    _asgi_single_callable = True  # an ASGI 3 application, whose call returns the awaitable

    def __call__(self, scope: dict[str, Any], receive, send) -> Awaitable[None]:
        path = scope["path"]
        root_path = scope.get("root_path", "")
        if root_path and not path.startswith(root_path):
            raise ValueError(f"No route found for path {path!r}.")
        path = path[len(root_path) :].lstrip("/")
        match = SOCKET_PATH.fullmatch(path)
        if match is None:
            raise ValueError(f"No route found for path {path!r}.")
        return ChatConsumer.serve(scope, receive, send, username=match["username"])


def websocket_application():
    """Origin check, then the consumer (which checks the token)."""
    return WebSocketOriginValidator(SocketRouter())
