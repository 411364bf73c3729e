"""Thin REST views for messages: read pages through the selector, send through ``message_send``."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from core.openapi import errors
from core.pagination import DEFAULT_LIMIT, MAX_LIMIT, parse_limit
from messaging import changes, selectors
from messaging.changes import ChangeResult
from messaging.payloads import message_payload, model_payloads
from messaging.reads import read_mark
from messaging.search import message_search
from messaging.serializers import (
    MessageCreateInputSerializer,
    MessageEditInputSerializer,
    MessagePageSerializer,
    MessageSerializer,
    ReactionInputSerializer,
    ReadInputSerializer,
    ReadStateSerializer,
)
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
REPLY_TO_PARAMETER = OpenApiParameter(
    "reply_to", OpenApiTypes.UUID, description="Only the replies to this message, ascending."
)
SEARCH_PARAMETER = OpenApiParameter(
    "q", OpenApiTypes.STR, required=True, description="1 to 200 characters: every word must appear, whole."
)
PAGE_RESPONSES = {200: MessagePageSerializer, **errors(400, 401, 403, 404, 429)}


def _link(request: Request, params: dict[str, str] | None, limit: int) -> str | None:
    """The URL of a neighbouring page: this one's query with the cursor swapped."""
    if params is None:
        return None
    url = remove_query_param(remove_query_param(request.build_absolute_uri(), "before"), "after")
    url = replace_query_param(url, "limit", limit)
    for key, value in params.items():
        url = replace_query_param(url, key, value)
    return url


def _channel_param(request: Request):
    channel = request.query_params.get("channel")
    return selectors.ALL_STREAMS if channel is None else (channel or None)


def _changed(result: ChangeResult) -> Response:
    return Response(message_payload(result.message))


class MessageViewSet(viewsets.GenericViewSet):
    """Messages the caller may read, newest page by default; sending, changing and searching them."""

    serializer_class = MessageSerializer
    pagination_class = None
    lookup_value_regex = "[^/]+"

    def _page(self, request: Request, *, own: bool) -> Response:
        params = request.query_params
        limit = parse_limit(params.get("limit"))
        page = selectors.message_page(
            user=request.user,
            channel_name=_channel_param(request),
            before=params.get("before"),
            after=params.get("after"),
            limit=limit,
            author=request.user if own else None,
            reply_to=params.get("reply_to"),
        )
        return Response(
            {
                "results": model_payloads(page.messages),
                "next": _link(request, page.newer, limit),
                "previous": _link(request, page.older, limit),
            }
        )

    @extend_schema(
        parameters=[*PAGE_PARAMETERS, REPLY_TO_PARAMETER],
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
        parameters=[SEARCH_PARAMETER, *PAGE_PARAMETERS],
        responses=PAGE_RESPONSES,
        summary="Messages whose content has every word of q, newest first (next: older results)",
    )
    @action(detail=False, methods=["get"])
    def search(self, request: Request) -> Response:
        params = request.query_params
        limit = parse_limit(params.get("limit"))
        page = message_search(
            user=request.user,
            q=params.get("q"),
            channel_name=_channel_param(request),
            before=params.get("before"),
            after=params.get("after"),
            limit=limit,
        )
        return Response(
            {
                "results": model_payloads(page.messages[::-1]),
                "next": _link(request, page.older, limit),
                "previous": _link(request, page.newer, limit),
            }
        )

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
        fields = data.validated_data
        result = message_send(
            user=request.user,
            channel_name=fields["channel"],
            content=fields["content"],
            client_id=fields["client_id"],
            reply_to=fields["reply_to"],
        )
        return Response(
            result.payload, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )

    @extend_schema(
        responses={200: MessageSerializer, **errors(401, 404)}, summary="One message (or its tombstone)"
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(message_payload(selectors.access_message(user=request.user, message_id=pk)))

    @extend_schema(
        request=MessageEditInputSerializer,
        responses={200: MessageSerializer, **errors(400, 401, 403, 404, 429)},
        summary="Edit a message's content (its author only)",
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        data = MessageEditInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _changed(changes.message_edit(user=request.user, message_id=pk, **data.validated_data))

    @extend_schema(
        responses={
            204: OpenApiResponse(description="Deleted (a tombstone stays)."),
            **errors(401, 403, 404, 429),
        },
        summary="Delete a message: its author, the channel's owner or staff",
    )
    def destroy(self, request: Request, pk: str) -> Response:
        changes.message_delete(user=request.user, message_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=ReactionInputSerializer,
        responses={200: MessageSerializer, **errors(400, 401, 404, 429)},
        summary="React to a message with an emoji",
    )
    @action(detail=True, methods=["post"])
    def reactions(self, request: Request, pk: str) -> Response:
        data = ReactionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _changed(changes.reaction_add(user=request.user, message_id=pk, **data.validated_data))

    @extend_schema(
        responses={200: MessageSerializer, **errors(400, 401, 404, 429)},
        summary="Take back your reaction (the emoji URL-encoded)",
    )
    @action(detail=True, methods=["delete"], url_path=r"reactions/(?P<emoji>[^/]+)")
    def unreact(self, request: Request, pk: str, emoji: str) -> Response:
        return _changed(changes.reaction_remove(user=request.user, message_id=pk, emoji=emoji))


class ReadView(APIView):
    """``POST /api/read``: move the caller's read position in a channel or the lobby."""

    @extend_schema(
        request=ReadInputSerializer,
        responses={200: ReadStateSerializer, **errors(400, 401, 403, 404)},
        summary="Mark a channel (null: the lobby) read up to seq; never moves back",
    )
    def post(self, request: Request) -> Response:
        data = ReadInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        result = read_mark(user=request.user, channel_name=fields["channel"], seq=fields["seq"])
        return Response({"channel": result.channel, **result.state.counts()})
