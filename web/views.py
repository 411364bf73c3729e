"""The web app's one page: HTML that loads the client library and the app, all from this server.

Everything else happens in the browser, over the same REST routes and
WebSocket as any other client. The page's Content-Security-Policy allows
scripts, styles and connections from this origin only: with content always
rendered as text this is a second wall, should a bug ever put a message's
text into HTML.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    response = render(request, "web/index.html")
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["Referrer-Policy"] = "no-referrer"
    return response
