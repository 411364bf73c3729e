"""CORS for the REST API, and the WebSocket Origin policy, both from CORS_ALLOWED_ORIGINS."""

from __future__ import annotations

import pytest
from django.test import override_settings

from gateway.auth import origin_allowed
from tests.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
def test_allowed_origin_gets_cors_headers_and_can_read_retry_after(api, make_user):
    make_user("ada")
    response = api.post(
        "/api/auth/login", {"username": "ada", "password": DEFAULT_PASSWORD}, format="json", HTTP_ORIGIN=APP
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    exposed = {h.strip().lower() for h in response["Access-Control-Expose-Headers"].split(",")}
    assert "retry-after" in exposed


@override_settings(CORS_ALLOWED_ORIGINS=[APP], CHAT_LOGIN_RATE="1/m")
def test_a_429_carries_cors_headers_too(api):
    api.post("/api/auth/login", {}, format="json", HTTP_ORIGIN=APP)
    response = api.post("/api/auth/login", {}, format="json", HTTP_ORIGIN=APP)
    assert response.status_code == 429
    assert response["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in response


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
def test_preflight_allows_authorization_and_content_type(api):
    response = api.options(
        "/api/users/me",
        HTTP_ORIGIN=APP,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == APP
    headers = {h.strip().lower() for h in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= headers
    methods = {m.strip().upper() for m in response["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH", "DELETE"} <= methods


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
def test_other_origin_gets_no_cors_headers(api):
    response = api.get("/api/health", HTTP_ORIGIN="https://evil.example.com")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response


def test_no_origins_allowed_by_default(api, settings):
    assert settings.CORS_ALLOWED_ORIGINS == []
    response = api.get("/api/health", HTTP_ORIGIN=APP)
    assert "Access-Control-Allow-Origin" not in response


# --- WebSocket Origin ---------------------------------------------------------


def test_no_origin_is_allowed():
    assert origin_allowed(None, "chat.example.com") is True


@pytest.mark.parametrize("origin", ["null", "NULL", "", "  ", "not a url", "file://", "https://"])
def test_null_and_unparsable_origins_are_refused(origin):
    # "NULL" is not the serialised opaque origin but it is no host either
    assert origin_allowed(origin, "chat.example.com") is False


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
@pytest.mark.parametrize("origin", [APP, APP + "/", "HTTPS://APP.example.com"])
def test_listed_origin_is_allowed(origin):
    assert origin_allowed(origin, "chat.example.com") is True


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://chat.example.com", "chat.example.com"),
        ("https://chat.example.com", "chat.example.com"),
        ("http://chat.example.com:8000", "chat.example.com:8000"),
        ("http://127.0.0.1:8000", "127.0.0.1:8000"),
        ("https://chat.example.com:443", "chat.example.com"),
        ("http://Chat.Example.com", "chat.example.com"),
        ("http://[::1]:8000", "[::1]:8000"),
    ],
)
def test_same_host_and_port_is_allowed(origin, host):
    assert origin_allowed(origin, host) is True


@override_settings(CORS_ALLOWED_ORIGINS=[APP])
@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://evil.example.com", "chat.example.com"),
        ("http://chat.example.com:9000", "chat.example.com:8000"),
        ("http://chat.example.com", "chat.example.com:8000"),
        ("http://chat.example.com.evil.com", "chat.example.com"),
        ("http://app.example.com", "chat.example.com"),  # listed only over https
        ("https://chat.example.com", None),
        ("https://chat.example.com", ""),
        ("http://127.0.0.1:8000", "127.0.0.1:8001"),
    ],
)
def test_other_origins_are_refused(origin, host):
    assert origin_allowed(origin, host) is False


def test_malformed_port_is_refused_not_an_error():
    assert origin_allowed("http://chat.example.com:99999", "chat.example.com:99999") is False
    assert origin_allowed("http://chat.example.com:abc", "chat.example.com") is False


async def _accepting_app(scope, receive, send):
    await receive()
    await send({"type": "websocket.accept"})


@pytest.mark.parametrize(
    ("headers", "accepted"),
    [
        ([], True),
        ([(b"origin", b"null")], False),
        ([(b"origin", b"https://evil.example.com"), (b"host", b"chat.example.com")], False),
        ([(b"origin", b"http://chat.example.com"), (b"host", b"chat.example.com")], True),
    ],
)
async def test_origin_validator_refuses_the_handshake(headers, accepted):
    from channels.testing import WebsocketCommunicator

    from gateway.auth import WebSocketOriginValidator

    communicator = WebsocketCommunicator(
        WebSocketOriginValidator(_accepting_app), "/api/ws/ada", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected is accepted
    await communicator.disconnect()
