"""ASGI entry point: HTTP to Django, ``/api/ws/{username}`` to the chat gateway."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings.base")

# Django must be set up before anything that imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from gateway.lifespan import lifespan  # noqa: E402
from gateway.routing import websocket_application  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_application(),
        "lifespan": lifespan,
    }
)
