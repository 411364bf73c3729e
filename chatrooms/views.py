"""Thin REST views for channels: validate shape, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from chatrooms import selectors, services
from chatrooms.serializers import (
    ChannelCreateInputSerializer,
    ChannelDetailSerializer,
    ChannelSerializer,
    MyChannelSerializer,
)
from chatrooms.streams import channel_streams
from core.openapi import errors

NOTHING_READ = {"last_read_seq": 0, "unread": 0, "mentions": 0}  # a membership gone meanwhile


def channel_data(channel) -> dict:
    return ChannelSerializer(selectors.channel_with_count(channel=channel)).data


class ChannelViewSet(viewsets.GenericViewSet):
    """Channels by name (case-insensitive), and the caller's own under ``me``."""

    serializer_class = ChannelSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return selectors.channel_list()

    def _page(self, queryset) -> Response:
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ChannelSerializer(page, many=True).data)

    @extend_schema(responses={200: ChannelSerializer(many=True), **errors(400, 401)}, summary="List channels")
    def list(self, request: Request) -> Response:
        return self._page(selectors.channel_list())

    @extend_schema(
        request=ChannelCreateInputSerializer,
        responses={201: ChannelSerializer, **errors(400, 401)},
        summary="Create a channel: the caller owns it and is its first member",
    )
    def create(self, request: Request) -> Response:
        data = ChannelCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        channel = services.channel_create(user=request.user, **data.validated_data)
        return Response(channel_data(channel), status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={200: ChannelDetailSerializer, **errors(401, 404)}, summary="A channel with members"
    )
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(ChannelDetailSerializer(selectors.channel_detail(name=name)).data)

    @extend_schema(
        responses={204: OpenApiResponse(description="Deleted, with its messages."), **errors(401, 403, 404)},
        summary="Delete a channel (owner only)",
    )
    def destroy(self, request: Request, name: str) -> Response:
        services.channel_delete(user=request.user, name=name)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: MyChannelSerializer(many=True), **errors(400, 401)},
        summary="Channels the caller is a member of, with their read position and unread counts",
    )
    @action(detail=False, methods=["get"])
    def me(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.channel_list_for_user(user=request.user))
        # One query for the page's counts, through the port (messaging owns messages).
        counts = channel_streams().read_counts(user_id=request.user.id, channel_ids=[c.id for c in page])
        for channel in page:
            channel.read_state = counts.get(channel.id, NOTHING_READ)
        return self.get_paginated_response(MyChannelSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses={200: ChannelSerializer, **errors(401, 404)},
        summary="Join a channel (joining twice is not an error)",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def join(self, request: Request, name: str) -> Response:
        return Response(channel_data(services.channel_join(user=request.user, name=name)))

    @extend_schema(
        request=None,
        responses={200: ChannelSerializer, **errors(400, 401, 404)},
        summary="Leave a channel (not its owner; only one you are in)",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def leave(self, request: Request, name: str) -> Response:
        return Response(channel_data(services.channel_leave(user=request.user, name=name)))
