"""Pagination in the contract's shape: ``{"results", "next", "previous"}``, no count."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
MAX_OFFSET = 10**12 - 1


def parse_limit(raw: str | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """A positive integer, capped at ``maximum``; anything else is a 400."""
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ValidationError({"limit": ["Must be a positive integer."]})
    return min(int(raw), maximum)


def parse_offset(raw: str | None) -> int:
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or int(raw) > MAX_OFFSET:
        raise ValidationError({"offset": ["Must be a non-negative integer."]})
    return int(raw)


def paginated_schema(item_schema: dict) -> dict:
    nullable_url = {"type": "string", "format": "uri", "nullable": True}
    return {
        "type": "object",
        "required": ["results", "next", "previous"],
        "properties": {"results": item_schema, "next": nullable_url, "previous": nullable_url},
    }


class LimitPagination(BasePagination):
    """``limit``/``offset`` pages that fetch one extra row instead of counting."""

    def paginate_queryset(self, queryset, request: Request, view=None) -> list:
        self.request = request
        self.limit = parse_limit(request.query_params.get("limit"))
        self.offset = parse_offset(request.query_params.get("offset"))
        rows = list(queryset[self.offset : self.offset + self.limit + 1])
        self.has_next = len(rows) > self.limit
        return rows[: self.limit]

    def _link(self, offset: int) -> str:
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, "limit", self.limit)
        if offset <= 0:
            return remove_query_param(url, "offset")
        return replace_query_param(url, "offset", offset)

    def get_paginated_response(self, data: Sequence[Any]) -> Response:
        return Response(
            {
                "results": data,
                "next": self._link(self.offset + self.limit) if self.has_next else None,
                "previous": self._link(max(0, self.offset - self.limit)) if self.offset > 0 else None,
            }
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return paginated_schema(schema)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"Page size, 1 or more (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}).",
                "schema": {"type": "integer", "minimum": 1},
            },
            {
                "name": "offset",
                "in": "query",
                "required": False,
                "description": "Rows to skip.",
                "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            },
        ]
