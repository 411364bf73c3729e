"""Login and register are limited per client address; past the limit, 429 with Retry-After."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def assert_429(response) -> None:
    assert response.status_code == 429
    assert set(response.json()) == {"detail"}
    retry_after = response["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert int(retry_after) <= 60


@override_settings(CHAT_LOGIN_RATE="3/m")
def test_login_fourth_attempt_is_429_whatever_the_outcome(api, make_user):
    make_user("ada")
    attempts = [
        {"username": "ada", "password": DEFAULT_PASSWORD},  # success counts
        {"username": "ada", "password": "wrong-Password-1"},  # failure counts
        {"username": ""},  # invalid body counts
    ]
    assert [api.post("/api/auth/login", a, format="json").status_code for a in attempts] == [200, 401, 400]
    assert_429(api.post("/api/auth/login", {"username": "ada", "password": DEFAULT_PASSWORD}, format="json"))


@override_settings(CHAT_LOGIN_RATE="3/m")
def test_login_limit_is_per_client_address(api, make_user):
    make_user("ada")
    body = {"username": "ada", "password": DEFAULT_PASSWORD}
    for _ in range(3):
        api.post("/api/auth/login", body, format="json", REMOTE_ADDR="10.0.0.1")
    assert_429(api.post("/api/auth/login", body, format="json", REMOTE_ADDR="10.0.0.1"))
    assert api.post("/api/auth/login", body, format="json", REMOTE_ADDR="10.0.0.2").status_code == 200


@override_settings(CHAT_LOGIN_RATE="3/m")
def test_forwarded_for_is_ignored_unless_trusted(api, make_user):
    make_user("ada")
    body = {"username": "ada", "password": DEFAULT_PASSWORD}
    for n in range(3):
        api.post("/api/auth/login", body, format="json", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert_429(api.post("/api/auth/login", body, format="json", HTTP_X_FORWARDED_FOR="192.0.2.99"))


@override_settings(CHAT_LOGIN_RATE="3/m", CHAT_TRUST_X_FORWARDED_FOR=True)
def test_forwarded_for_counts_when_trusted(api, make_user):
    make_user("ada")
    body = {"username": "ada", "password": DEFAULT_PASSWORD}
    for _ in range(3):
        api.post("/api/auth/login", body, format="json", HTTP_X_FORWARDED_FOR="192.0.2.1, 10.0.0.1")
    assert_429(api.post("/api/auth/login", body, format="json", HTTP_X_FORWARDED_FOR="192.0.2.1"))
    assert (
        api.post("/api/auth/login", body, format="json", HTTP_X_FORWARDED_FOR="192.0.2.2").status_code == 200
    )


@override_settings(CHAT_REGISTER_RATE="3/m")
def test_register_fourth_attempt_is_429(api):
    statuses = []
    for n in range(3):
        body = {"username": f"user{n}", "email": f"u{n}@example.com", "password": DEFAULT_PASSWORD}
        if n == 1:
            body["email"] = "bad"  # a refused attempt counts too
        statuses.append(api.post("/api/auth/register", body, format="json").status_code)
    assert statuses == [201, 400, 201]
    body = {"username": "late", "email": "late@example.com", "password": DEFAULT_PASSWORD}
    assert_429(api.post("/api/auth/register", body, format="json"))


@override_settings(CHAT_REGISTER_RATE="3/m", CHAT_LOGIN_RATE="3/m")
def test_register_and_login_count_separately(api, make_user):
    make_user("ada")
    for n in range(3):
        api.post("/api/auth/register", {"username": f"u{n}"}, format="json")
    assert api.post("/api/auth/register", {}, format="json").status_code == 429
    body = {"username": "ada", "password": DEFAULT_PASSWORD}
    assert api.post("/api/auth/login", body, format="json").status_code == 200


@override_settings(CHAT_LOGIN_RATE="2/h")
def test_retry_after_is_at_most_the_window(api):
    for _ in range(2):
        api.post("/api/auth/login", {}, format="json")
    response = api.post("/api/auth/login", {}, format="json")
    assert_429_within(response, 3600)


def assert_429_within(response, window: int) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= window


def test_default_test_limits_do_not_throttle(api):
    for _ in range(15):
        assert api.post("/api/auth/login", {}, format="json").status_code == 400
