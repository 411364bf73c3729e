"""The REST exception handler: every refusal becomes a 4xx (or 503) body, never a 500."""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from chatsite.errors import ChatError, RateLimited

logger = logging.getLogger(__name__)


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, RateLimited):
        return Response(exc.rest_body(), status=429, headers=retry_after_header(exc.retry_after))
    if isinstance(exc, ChatError):
        return Response(exc.rest_body(), status=exc.http_status)
    if isinstance(exc, Ratelimited):
        # django-ratelimit's refusal is a PermissionDenied; the contract says 429.
        return Response(
            {"detail": "Too many requests; try again later."},
            status=429,
            headers=retry_after_header(getattr(exc, "retry_after", 60)),
        )
    if isinstance(exc, RequestDataTooBig):
        # Django's own answer would be an HTML page; clients read {"detail"}.
        return Response({"detail": "Request body is too large."}, status=400)
    if isinstance(exc, SuspiciousOperation):  # e.g. too many form fields
        return Response({"detail": "The request could not be read."}, status=400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("database unavailable: %s", exc)
        return Response({"detail": "The database is unavailable; try again shortly."}, status=503)
    if isinstance(exc, DatabaseError):
        logger.exception("database error")
        return Response({"detail": "The request could not be stored."}, status=400)
    if isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.UnsupportedMediaType):
        # The contract's error table has no 415: a body the server cannot
        # read is a validation failure, with the reason in "detail".
        exc = exceptions.ParseError(f"{exc.detail} Send application/json.")

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(response.data, dict) and "detail" in response.data:
        # simplejwt adds "code" and "messages"; the contract's body is {"detail"} alone.
        response.data = {"detail": str(response.data["detail"])}
    return response
