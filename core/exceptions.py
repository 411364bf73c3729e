"""The REST exception handler: every refusal becomes a 4xx (or 503) body, never a 500."""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from core.errors import ChatError, RateLimited, as_chat_error

logger = logging.getLogger(__name__)


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: domain and infrastructure refusals through ``as_chat_error``."""
    if isinstance(exc, RequestDataTooBig):
        # Django's own answer would be an HTML page; clients read {"detail"}.
        return Response({"detail": "Request body is too large."}, status=400)
    if isinstance(exc, SuspiciousOperation):  # e.g. too many form fields
        return Response({"detail": "The request could not be read."}, status=400)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if (refusal := as_chat_error(exc)) is not None:
        if refusal is not exc:
            _log_infrastructure_failure(exc, refusal)
        headers = retry_after_header(refusal.retry_after) if isinstance(refusal, RateLimited) else None
        return Response(refusal.rest_body(), status=refusal.http_status, headers=headers)
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


def _log_infrastructure_failure(exc: Exception, refusal: ChatError) -> None:
    if refusal.http_status >= 500:
        logger.warning("service unavailable: %s", exc)
    else:
        logger.exception("database refused a write")
