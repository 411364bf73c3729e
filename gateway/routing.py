"""The WebSocket's one route, behind the handshake checks."""

from channels.routing import URLRouter
from django.urls import re_path

from gateway.auth import TokenAuthMiddleware, WebSocketOriginValidator
from gateway.consumer import ChatConsumer

websocket_urlpatterns = [
    re_path(r"^api/ws/(?P<username>[^/]+)/?$", ChatConsumer.as_asgi()),
]


def websocket_application():
    """Origin check, then token check, then the consumer."""
    return WebSocketOriginValidator(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
