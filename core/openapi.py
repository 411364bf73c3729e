"""Shared OpenAPI pieces: the error bodies every route may answer with."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

DETAIL_RESPONSE = inline_serializer("Detail", {"detail": serializers.CharField()})

_DESCRIPTIONS = {
    400: "Validation failed: field errors, or {detail}.",
    401: "No, bad, expired or revoked token; bad credentials.",
    403: "Authenticated but not allowed.",
    404: "No such user or channel.",
    429: "Rate limited; Retry-After gives seconds.",
    503: "The database is unavailable.",
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses for ``extend_schema(responses=...)``."""
    return {
        code: OpenApiResponse(
            response=OpenApiTypes.OBJECT if code == 400 else DETAIL_RESPONSE,
            description=_DESCRIPTIONS[code],
        )
        for code in statuses
    }


class SessionTokenScheme(OpenApiAuthenticationExtension):
    """Describes ``SessionTokenAuthentication`` as the Bearer scheme it is."""

    target_class = "accounts.authentication.SessionTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
