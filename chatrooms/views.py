"""Thin REST views for channels: validate shape, call one service, render."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chatrooms import bans as ban_services
from chatrooms import direct, selectors, services
from chatrooms.serializers import (
    BanInputSerializer,
    BanSerializer,
    ChannelCreateInputSerializer,
    ChannelDetailSerializer,
    ChannelSerializer,
    MemberAddInputSerializer,
    MyChannelSerializer,
)
from chatrooms.streams import channel_streams
from core.openapi import errors

NOTHING_READ = {"last_read_seq": 0, "unread": 0, "mentions": 0}  # a membership gone meanwhile
USERNAME_IN_PATH = r"(?P<username>[^/]+)"


def channel_data(channel) -> dict:
    return ChannelSerializer(selectors.channel_with_count(channel=channel)).data


class ChannelViewSet(viewsets.GenericViewSet):
    """Channels by name (case-insensitive), and the caller's own under ``me``.

    Every route naming a channel answers 404 for one the caller cannot see
    (a private or direct channel they are not in), as for a missing one.
    """

    serializer_class = ChannelSerializer
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return selectors.channel_list_visible(user=self.request.user)

    def _page(self, queryset) -> Response:
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(ChannelSerializer(page, many=True).data)

    @extend_schema(
        responses={200: ChannelSerializer(many=True), **errors(400, 401)},
        summary="List channels: public ones and the caller's private and direct ones",
    )
    def list(self, request: Request) -> Response:
        return self._page(selectors.channel_list_visible(user=request.user))

    @extend_schema(
        request=ChannelCreateInputSerializer,
        responses={201: ChannelSerializer, **errors(400, 401, 429)},
        summary="Create a channel (public, or private): the caller owns it and is its first member",
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
        return Response(ChannelDetailSerializer(selectors.channel_detail(user=request.user, name=name)).data)

    @extend_schema(
        responses={
            204: OpenApiResponse(description="Deleted, with its messages."),
            **errors(400, 401, 403, 404),
        },
        summary="Delete a channel (its owner, or staff; not a direct channel)",
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
        responses={200: ChannelSerializer, **errors(400, 401, 403, 404, 429)},
        summary="Join a channel (joining twice is not an error; banned users are refused)",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def join(self, request: Request, name: str) -> Response:
        return Response(channel_data(services.channel_join(user=request.user, name=name)))

    @extend_schema(
        request=None,
        responses={200: ChannelSerializer, **errors(400, 401, 404, 429)},
        summary="Leave a channel (not its owner; only one you are in)",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def leave(self, request: Request, name: str) -> Response:
        return Response(channel_data(services.channel_leave(user=request.user, name=name)))

    @extend_schema(
        request=MemberAddInputSerializer,
        responses={200: ChannelSerializer, **errors(400, 401, 403, 404, 429)},
        summary="Add a user to a channel you are a member of (adding a member again changes nothing)",
    )
    @action(detail=True, methods=["post"], pagination_class=None)
    def members(self, request: Request, name: str) -> Response:
        data = MemberAddInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        channel = services.member_add(actor=request.user, name=name, **data.validated_data)
        return Response(channel_data(channel))

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="Removed (or was not a member)."),
            **errors(400, 401, 403, 404, 429),
        },
        summary="Remove a member (the owner or staff), or yourself (a leave)",
    )
    @action(detail=True, methods=["delete"], url_path=f"members/{USERNAME_IN_PATH}", pagination_class=None)
    def member_remove(self, request: Request, name: str, username: str) -> Response:
        services.member_remove(actor=request.user, name=name, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        responses={200: BanSerializer(many=True), **errors(400, 401, 403, 404)},
        summary="A channel's bans, by username (owner or staff)",
    )
    @action(detail=True, methods=["get"])
    def bans(self, request: Request, name: str) -> Response:
        page = self.paginate_queryset(ban_services.bans_of(actor=request.user, name=name))
        return self.get_paginated_response(BanSerializer(page, many=True).data)

    @extend_schema(
        request=BanInputSerializer,
        responses={201: BanSerializer, 200: BanSerializer, **errors(400, 401, 403, 404, 429)},
        summary="Ban a user (owner or staff): removed at once, refused on join and add",
    )
    @bans.mapping.post
    def ban_add(self, request: Request, name: str) -> Response:
        data = BanInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ban, created = ban_services.ban_add(actor=request.user, name=name, **data.validated_data)
        return Response(
            BanSerializer(ban).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(
        request=None,
        responses={
            204: OpenApiResponse(description="The ban is lifted."),
            **errors(400, 401, 403, 404, 429),
        },
        summary="Lift a ban (owner or staff)",
    )
    @action(detail=True, methods=["delete"], url_path=f"bans/{USERNAME_IN_PATH}", pagination_class=None)
    def ban_remove(self, request: Request, name: str, username: str) -> Response:
        ban_services.ban_remove(actor=request.user, name=name, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DirectChannelView(APIView):
    """``POST /api/dms/{username}``: open (or find) the direct channel with a user."""

    @extend_schema(
        request=None,
        responses={201: ChannelSerializer, 200: ChannelSerializer, **errors(401, 404, 429)},
        summary="Open the direct channel with a user (yourself: notes to self)",
    )
    def post(self, request: Request, username: str) -> Response:
        channel, created = direct.direct_open(user=request.user, username=username)
        return Response(
            channel_data(channel), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
