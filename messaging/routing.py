from django.urls import re_path

from messaging.consumers import ChatConsumer

websocket_urlpatterns = [
    re_path(r"^api/ws/(?P<username>[^/]+)/?$", ChatConsumer.as_asgi()),
]
