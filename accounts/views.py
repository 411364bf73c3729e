"""Thin REST views for auth and users: validate shape, call one service, render."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import limits, presence, selectors, services
from accounts.serializers import (
    LoginInputSerializer,
    LoginOutputSerializer,
    LogoutInputSerializer,
    OwnUserSerializer,
    ProfileUpdateInputSerializer,
    PublicUserSerializer,
    RefreshInputSerializer,
    RegisterInputSerializer,
    StatusInputSerializer,
    TokenPairOutputSerializer,
)
from accounts.tokens import access_token_seconds
from core.client_address import client_address_bucket, client_address_meta
from core.errors import NotAuthenticated
from core.openapi import errors
from core.ratelimits import enforce_address_rate
from core.userlimits import enforce_user_rate


def own_user_data(user) -> dict:
    return OwnUserSerializer(user, context={"connected": presence.connected_ids([user])}).data


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=RegisterInputSerializer,
        responses={201: OwnUserSerializer, **errors(400, 429)},
        summary="Create an account",
    )
    def post(self, request: Request) -> Response:
        enforce_address_rate(request, group="auth.register", rate=settings.CHAT_REGISTER_RATE)
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data)
        return Response(own_user_data(user), status=status.HTTP_201_CREATED)


class LoginView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=LoginInputSerializer,
        responses={200: LoginOutputSerializer, **errors(400, 401, 429)},
        summary="Log in: open a session and get its tokens",
    )
    def post(self, request: Request) -> Response:
        enforce_address_rate(request, group="auth.login", rate=settings.CHAT_LOGIN_RATE)
        data = LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username, address = data.validated_data["username"], client_address_bucket(request)
        limits.login_allowed(username=username, address=address)
        try:
            result = services.session_login(
                **data.validated_data,
                client_address=client_address_meta(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
            )
        except NotAuthenticated:
            limits.login_failed(username=username, address=address)
            raise
        return Response(
            {
                "access": result.tokens.access,
                "refresh": result.tokens.refresh,
                "token_type": "Bearer",
                "expires_in": min(access_token_seconds(), settings.CHAT_SESSION_MAX_SECONDS),
                "user": own_user_data(result.user),
            }
        )


class RefreshView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=RefreshInputSerializer,
        responses={200: TokenPairOutputSerializer, **errors(400, 401)},
        summary="Rotate a refresh token",
    )
    def post(self, request: Request) -> Response:
        data = RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tokens = services.session_refresh(refresh=data.validated_data["refresh"])
        return Response({"access": tokens.access, "refresh": tokens.refresh})


class LogoutView(APIView):
    @extend_schema(
        request=LogoutInputSerializer,
        responses={204: OpenApiResponse(description="Session ended."), **errors(400, 401)},
        summary="End the session of the access token used",
    )
    def post(self, request: Request) -> Response:
        # The body's refresh token is accepted and ignored: only the session
        # of the access token used ends.
        LogoutInputSerializer(data=request.data).is_valid(raise_exception=True)
        services.session_logout(session=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Public profiles, and the caller's own under ``me``."""

    serializer_class = PublicUserSerializer
    lookup_field = "username"
    lookup_value_regex = "[^/]+"

    def get_queryset(self):
        return selectors.user_list()

    @extend_schema(responses={200: PublicUserSerializer(many=True), **errors(400, 401)})
    def list(self, request: Request, *args, **kwargs) -> Response:
        return self._page(self.get_queryset())

    def _page(self, queryset) -> Response:
        page = self.paginate_queryset(queryset)
        context = {"connected": presence.connected_ids(page)}
        return self.get_paginated_response(PublicUserSerializer(page, many=True, context=context).data)

    @extend_schema(responses={200: PublicUserSerializer, **errors(401, 404)})
    def retrieve(self, request: Request, username: str) -> Response:
        user = selectors.user_get(username=username)
        context = {"connected": presence.connected_ids([user])}
        return Response(PublicUserSerializer(user, context=context).data)

    @extend_schema(responses={200: PublicUserSerializer(many=True), **errors(400, 401)})
    @action(detail=False, methods=["get"])
    def online(self, request: Request) -> Response:
        return self._page(presence.online_users())

    @extend_schema(methods=["GET"], responses={200: OwnUserSerializer, **errors(401)})
    @extend_schema(
        methods=["PATCH"],
        request=ProfileUpdateInputSerializer,
        responses={200: OwnUserSerializer, **errors(400, 401, 429)},
    )
    @action(detail=False, methods=["get", "patch"], pagination_class=None)
    def me(self, request: Request) -> Response:
        if request.method == "PATCH":
            # Each change checks a password hash: CHAT_PROFILE_RATE per user.
            enforce_user_rate("profile", request.user.id)
            data = ProfileUpdateInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            services.user_update_profile(user=request.user, session=request.auth, **data.validated_data)
        return Response(own_user_data(request.user))

    @extend_schema(request=StatusInputSerializer, responses={200: OwnUserSerializer, **errors(400, 401)})
    @action(detail=False, methods=["post"], url_path="me/status", pagination_class=None)
    def set_status(self, request: Request) -> Response:
        data = StatusInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        presence.user_set_status(user=request.user, status=data.validated_data["status"])
        return Response(own_user_data(request.user))
