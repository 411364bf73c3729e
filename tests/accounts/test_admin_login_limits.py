"""``/admin/login/`` is limited like the API's login: per address, per (username, address), per username."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from accounts.models import User
from tests.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "wrong-Password-1"


@pytest.fixture
def staff(make_user) -> User:
    user = make_user("boss")
    User.objects.filter(pk=user.pk).update(is_staff=True, is_superuser=True)
    return user


def admin_login(username: str, password: str, address: str = "10.0.0.1"):
    client = Client()
    response = client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=address
    )
    return response


def assert_429(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert b"Too many login attempts" in response.content


@override_settings(CHAT_ADMIN_LOGIN_RATE="3/m")
def test_admin_login_is_limited_per_address(staff):
    for _ in range(3):
        assert admin_login("someone", WRONG).status_code == 200  # the form again, with its error
    assert_429(admin_login("boss", DEFAULT_PASSWORD))
    assert admin_login("boss", DEFAULT_PASSWORD, "10.0.0.2").status_code == 302
    # Showing the form is not counted.
    assert Client().get("/admin/login/", REMOTE_ADDR="10.0.0.1").status_code == 200


@override_settings(CHAT_ADMIN_LOGIN_RATE="3/m")
def test_admin_login_counts_ipv6_by_64(staff):
    for n in range(3):
        admin_login("someone", WRONG, f"2001:db8:9:9::{n + 1}")
    assert_429(admin_login("boss", DEFAULT_PASSWORD, "2001:db8:9:9::ff"))
    assert admin_login("boss", DEFAULT_PASSWORD, "2001:db8:9:a::1").status_code == 302


@override_settings(CHAT_LOGIN_FAILURE_RATE="2/m")
def test_admin_login_failures_per_username_and_address(staff):
    for _ in range(2):
        assert admin_login("boss", WRONG).status_code == 200
    assert_429(admin_login("boss", DEFAULT_PASSWORD))
    assert admin_login("boss", DEFAULT_PASSWORD, "10.0.0.2").status_code == 302


@override_settings(CHAT_LOGIN_FAILURE_RATE="100/m", CHAT_LOGIN_USERNAME_RATE="3/m")
def test_admin_and_api_failures_count_against_the_same_username(staff, api):
    for n in range(2):
        assert admin_login("boss", WRONG, f"203.0.113.{n}").status_code == 200
    response = api.post("/api/auth/login", {"username": "boss", "password": WRONG}, REMOTE_ADDR="203.0.113.5")
    assert response.status_code == 401
    assert_429(admin_login("boss", DEFAULT_PASSWORD, "203.0.113.6"))


@override_settings(CHAT_ADMIN_LOGIN_RATE="3/m", CHAT_LOGIN_FAILURE_RATE="1/m")
def test_a_successful_admin_login_is_not_a_failure(staff):
    assert admin_login("boss", DEFAULT_PASSWORD).status_code == 302
    assert admin_login("boss", DEFAULT_PASSWORD).status_code == 302
