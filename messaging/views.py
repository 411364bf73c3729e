"""Thin REST views for messages: read pages through the selector, send through ``message_send``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from core.openapi import errors
from core.pagination import DEFAULT_LIMIT, MAX_LIMIT, parse_limit
from messaging import selectors
from messaging.payloads import message_payload
from messaging.serializers import MessageCreateInputSerializer, MessagePageSerializer, MessageSerializer
from messaging.services import message_send

PAGE_PARAMETERS = [
    OpenApiParameter(
        "channel",
        OpenApiTypes.STR,
        description="Only this channel (by name, ignoring case); empty for the lobby; absent for all.",
    ),
    OpenApiParameter(
        "before", OpenApiTypes.UUID, description="The messages just before this one (a message id)."
    ),
    OpenApiParameter(
        "after", OpenApiTypes.UUID, description="The messages just after this one (a message id)."
    ),
    OpenApiParameter(
        "limit",
        OpenApiTypes.INT,
        description=f"Page size, 1 or more (default {DEFAULT_LIMIT}); above {MAX_LIMIT} serves {MAX_LIMIT}.",
    ),
]
PAGE_RESPONSES = {200: MessagePageSerializer, **errors(400, 401, 403, 404)}


def _link(request: Request, params: dict[str, str] | None, limit: int) -> str | None:
    """The URL of a neighbouring page: this one's query with the cursor swapped."""
    if params is None:
        return None
    url = remove_query_param(remove_query_param(request.build_absolute_uri(), "before"), "after")
    url = replace_query_param(url, "limit", limit)
    for key, value in params.items():
        url = replace_query_param(url, key, value)
    return url


class MessageViewSet(viewsets.GenericViewSet):
    """Messages the caller may read, newest page by default, and sending one."""

    serializer_class = MessageSerializer
    pagination_class = None

    def _page(self, request: Request, *, own: bool) -> Response:
        params = request.query_params
        limit = parse_limit(params.get("limit"))
        channel = params.get("channel")
        page = selectors.message_page(
            user=request.user,
            channel_name=selectors.ALL_STREAMS if channel is None else (channel or None),
            before=params.get("before"),
            after=params.get("after"),
            limit=limit,
            author=request.user if own else None,
        )
        return Response(
            {
                "results": [message_payload(message) for message in page.messages],
                "next": _link(request, page.newer, limit),
                "previous": _link(request, page.older, limit),
            }
        )

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses=PAGE_RESPONSES,
        summary="Messages the caller may read: the lobby and their channels",
    )
    def list(self, request: Request) -> Response:
        return self._page(request, own=False)

    @extend_schema(parameters=PAGE_PARAMETERS, responses=PAGE_RESPONSES, summary="Messages the caller wrote")
    @action(detail=False, methods=["get"])
    def me(self, request: Request) -> Response:
        return self._page(request, own=True)

    @extend_schema(
        request=MessageCreateInputSerializer,
        responses={
            201: MessageSerializer,
            200: MessageSerializer,
            **errors(400, 401, 403, 404, 429),
        },
        summary="Send a message (200 with the first one when client_id was already used)",
    )
    def create(self, request: Request) -> Response:
        data = MessageCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = message_send(
            user=request.user,
            channel_name=data.validated_data["channel"],
            content=data.validated_data["content"],
            client_id=data.validated_data["client_id"],
        )
        return Response(
            message_payload(result.message),
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )
