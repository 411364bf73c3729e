"""``GET /metrics``: the process's Prometheus text, for a scraper holding ``CHAT_METRICS_TOKEN``.

Without the token configured, or to a request without ``Authorization:
Bearer <that token>``, the route answers 404 exactly as an unknown path does,
so it does not even reveal that metrics exist.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from core import metrics


def _authorized(request: HttpRequest) -> bool:
    expected = settings.CHAT_METRICS_TOKEN
    if not expected:
        return False
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    # Compared in constant time, and always compared, so timing reveals nothing of the token.
    matches = hmac.compare_digest(presented.strip().encode(), expected.encode())
    return scheme.lower() == "bearer" and matches


def metrics_view(request: HttpRequest) -> HttpResponse:
    """The exposition text of this process's metrics (``core.metrics``), or 404."""
    if request.method not in ("GET", "HEAD") or not _authorized(request):
        raise Http404
    body, content_type = metrics.render()
    return HttpResponse(body, content_type=content_type)
