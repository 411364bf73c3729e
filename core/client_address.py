"""The client's address, the one rule used by rate limits and session records."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address_meta(request: HttpRequest) -> str:
    """Return the client address, trusting X-Forwarded-For only when configured.

    Behind a proxy every request would otherwise share the proxy's address,
    so one user could exhaust everyone's login limit.
    """
    if settings.CHAT_TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.META.get("REMOTE_ADDR", "") or "unknown"
