"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


def health(request: HttpRequest) -> JsonResponse:
    """200 while the process can answer at all."""
    return JsonResponse({"status": "ok"})


def _database_problem() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        logger.warning("readiness: database unreachable: %s", exc)
        return f"database unreachable: {type(exc).__name__}"
    return None


def _redis_problem() -> str | None:
    if not settings.REDIS_URL:
        return None
    import redis

    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:
        logger.warning("readiness: redis unreachable: %s", exc)
        return f"redis unreachable: {type(exc).__name__}"
    return None


def ready(request: HttpRequest) -> JsonResponse:
    """200 when the database (and Redis, when configured) answer; 503 with the reason otherwise."""
    problems = [problem for problem in (_database_problem(), _redis_problem()) if problem]
    checks = {
        "database": "ok" if not any(p.startswith("database") for p in problems) else "unavailable",
        "redis": ("ok" if not any(p.startswith("redis") for p in problems) else "unavailable")
        if settings.REDIS_URL
        else "not configured",
    }
    if problems:
        return JsonResponse({"status": "unavailable", "detail": "; ".join(problems), **checks}, status=503)
    return JsonResponse({"status": "ok", **checks})
