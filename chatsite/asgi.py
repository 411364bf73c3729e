"""ASGI entry point: HTTP to Django, ``/api/ws/{username}`` to the chat gateway."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings.base")

# Django must be set up before anything that imports models.
django_asgi_app = get_asgi_application()

from django.core import checks  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402

# The server refuses to start on the chat's own failed checks (a short JWT
# signing key with DEBUG off: chat.E001), as ``manage.py check`` reports them.
_refusals = [m for m in checks.run_checks(tags=["chat"]) if m.is_serious()]
if _refusals:
    raise ImproperlyConfigured("; ".join(f"{m.id}: {m.msg}" for m in _refusals))

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
