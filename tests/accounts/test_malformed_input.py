"""No request, however malformed, gets a 500: each gets a 4xx with a reason."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

JSON = "application/json"
BODY_ROUTES = ["/api/auth/register", "/api/auth/login", "/api/auth/refresh"]


def assert_refused(response, statuses=(400,)) -> dict:
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    body = response.json()
    assert isinstance(body, dict) and body
    return body


@pytest.fixture
def client_for(auth_client, make_user):
    """An authenticated client, for the routes that need a token."""
    return auth_client(make_user("owner"))


@pytest.mark.parametrize("route", BODY_ROUTES)
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000,
        b"{" * 5000,
        b'{"a":' * 5000,
        b"\xff\xfe\xfd",
        b'{"username": "\xc3\x28"}',
        b"{broken",
        b"",
        b"null",
        b'"a string"',
        b"42",
        b"[]",
        b'[{"username": "ada"}]',
        b'{"username": "\\ud800", "email": "a@example.com", "password": "x-Pass-1", "refresh": "\\udfff"}',
        b'{"username": "ada", "password": "\\udc00\\ud800"}',
        b"\x00\x00",
    ],
)
def test_malformed_json_bodies_are_400(api, route, raw):
    body = assert_refused(api.generic("POST", route, raw, content_type=JSON))
    assert (
        "detail" in body
        or "non_field_errors" in body
        or set(body)
        <= {
            "username",
            "email",
            "password",
            "refresh",
        }
    )


@pytest.mark.parametrize("path", ["/api/users/me", "/api/users/me/status"])
@pytest.mark.parametrize(
    "raw", [b"[" * 5000, b"\xff", b'"x"', b"[1]", b'{"status": "\\ud800", "email": "\\udc00"}']
)
def test_malformed_bodies_on_authenticated_routes_are_400(client_for, path, raw):
    method = "PATCH" if path.endswith("me") else "POST"
    assert_refused(client_for.generic(method, path, raw, content_type=JSON))


def test_lone_surrogate_in_a_choice_is_400_not_500(client_for):
    # the error message would echo the value back; it must never reach the renderer
    response = client_for.generic("POST", "/api/users/me/status", b'{"status": "\\ud800"}', content_type=JSON)
    assert_refused(response)


@pytest.mark.parametrize("field", ["username", "email", "password"])
@pytest.mark.parametrize("value", ["ada\x00", "\x00", "a\x00da@example.com"])
def test_nul_characters_are_400(api, field, value):
    body = {"username": "ada", "email": "ada@example.com", "password": DEFAULT_PASSWORD, field: value}
    response = api.post("/api/auth/register", body, format="json")
    assert field in assert_refused(response)
    assert not User.objects.exists()


@pytest.mark.parametrize("field", ["username", "password"])
def test_nul_characters_at_login_are_refused(api, make_user, field):
    make_user("ada")
    body = {"username": "ada", "password": DEFAULT_PASSWORD, field: "ada\x00"}
    assert_refused(api.post("/api/auth/login", body, format="json"), statuses=(400, 401))


def test_nul_in_patch_is_400(client_for):
    response = client_for.patch(
        "/api/users/me", {"email": "a\x00@example.com", "current_password": DEFAULT_PASSWORD}, format="json"
    )
    assert "email" in assert_refused(response)


@pytest.mark.parametrize("field", ["username", "email", "password"])
def test_huge_strings_are_400(api, field):
    body = {"username": "ada", "email": "ada@example.com", "password": DEFAULT_PASSWORD, field: "a" * 100_000}
    response = api.post("/api/auth/register", body, format="json")
    assert field in assert_refused(response)


def test_huge_strings_at_login_and_refresh(api):
    assert_refused(
        api.post("/api/auth/login", {"username": "a" * 100_000, "password": "b"}, format="json"),
        statuses=(400, 401),
    )
    assert_refused(
        api.post("/api/auth/refresh", {"refresh": "a" * 100_000}, format="json"), statuses=(400, 401)
    )


@pytest.mark.parametrize("field", ["username", "email", "password"])
@pytest.mark.parametrize("value", [123, True, None, ["ada"], {"a": 1}])
def test_wrong_json_types_are_400(api, field, value):
    body = {"username": "ada", "email": "ada@example.com", "password": DEFAULT_PASSWORD, field: value}
    response = api.post("/api/auth/register", body, format="json")
    assert response.status_code in (201, 400)  # DRF coerces numbers to strings
    if response.status_code == 400:
        assert field in response.json()


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "application/octet-stream", "nonsense"]
)
def test_wrong_content_type_is_refused_with_a_reason(api, content_type):
    response = api.generic(
        "POST", "/api/auth/login", b'{"username": "ada", "password": "x"}', content_type=content_type
    )
    body = assert_refused(response)
    assert "detail" in body


@pytest.mark.parametrize("kind", ["multipart", "form"])
def test_form_and_multipart_bodies_are_refused(api, kind):
    """The API reads JSON only: no form parser (the contract has no 415, so 400 saying why)."""
    fields = {"username": "ada", "email": "ada@example.com", "password": DEFAULT_PASSWORD}
    if kind == "multipart":
        response = api.post("/api/auth/register", fields, format="multipart")
    else:
        body = "&".join(f"{k}={v}" for k, v in fields.items())
        response = api.generic(
            "POST", "/api/auth/register", body, content_type="application/x-www-form-urlencoded"
        )
    body = assert_refused(response)
    assert "Unsupported media type" in body["detail"] and "application/json" in body["detail"]
    assert not User.objects.filter(username="ada").exists()


def test_profile_change_by_form_is_refused(client_for):
    response = client_for.generic(
        "PATCH", "/api/users/me", "email=x%40example.com", content_type="application/x-www-form-urlencoded"
    )
    assert "application/json" in assert_refused(response)["detail"]


def test_invalid_utf8_in_a_form_body_is_not_a_500(api):
    response = api.generic(
        "POST",
        "/api/auth/register",
        b"username=%ff%fe&email=a%40b.c&password=x",
        content_type="application/x-www-form-urlencoded",
    )
    assert_refused(response)


def test_unknown_api_route_is_404_json_or_html_not_500(api):
    assert api.get("/api/nothing-here").status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("route", BODY_ROUTES + ["/api/auth/logout"])
def test_wrong_method_is_405_or_401(api, method, route):
    response = api.generic(method, route)
    assert response.status_code in (401, 405)
    assert "detail" in response.json()


def test_body_over_the_upload_limit_is_400(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b'{"username": "ada", "password": "' + b"x" * 2000 + b'"}'
    response = api.generic("POST", "/api/auth/login", body, content_type=JSON)
    assert assert_refused(response) == {"detail": "Request body is too large."}
    small = api.generic("POST", "/api/auth/login", b'{"username": "ada", "password": "x"}', content_type=JSON)
    assert small.status_code == 401


def test_too_many_form_fields_is_a_json_400(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{n}=x" for n in range(50))
    response = api.generic("POST", "/api/auth/login", body, content_type="application/x-www-form-urlencoded")
    assert "detail" in assert_refused(response)
