"""Failed logins are limited per (username, address) and, only delaying, per username.

A stranger guessing from many addresses is slowed down, yet cannot lock the
real user out: the pair limit refuses only the guesser's own address, and the
username limit's window is short and never applies to an address the user
has logged in from. IPv6 clients count by /64 in every address-based limit.
"""

from __future__ import annotations

import time

import pytest
from django.test import override_settings

from core.client_address import address_bucket
from tests.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

WRONG = "wrong-Password-1"


def login(api, username: str, password: str, address: str):
    return api.post("/api/auth/login", {"username": username, "password": password}, REMOTE_ADDR=address)


def assert_429(response, window: int) -> int:
    assert response.status_code == 429, (response.status_code, response.content[:200])
    assert set(response.json()) == {"detail"}
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= window
    return retry_after


@override_settings(CHAT_LOGIN_FAILURE_RATE="3/m")
def test_failures_per_username_and_address_pair(api, make_user):
    make_user("ada")
    for _ in range(3):
        assert login(api, "ada", WRONG, "10.0.0.1").status_code == 401
    # The fourth attempt from that address is refused before the password is checked, right or wrong.
    assert_429(login(api, "ADA", DEFAULT_PASSWORD, "10.0.0.1"), 60)
    # The real user at another address is not affected.
    assert login(api, "ada", DEFAULT_PASSWORD, "10.0.0.2").status_code == 200
    # Nor is another account guessed from the first address.
    make_user("bob")
    assert login(api, "bob", DEFAULT_PASSWORD, "10.0.0.1").status_code == 200


@override_settings(CHAT_LOGIN_FAILURE_RATE="3/m", CHAT_LOGIN_USERNAME_RATE="3/m")
def test_successful_logins_do_not_count_as_failures(api, make_user):
    make_user("ada")
    for _ in range(6):
        assert login(api, "ada", DEFAULT_PASSWORD, "10.0.0.1").status_code == 200
    for _ in range(2):
        assert login(api, "ada", WRONG, "10.0.0.1").status_code == 401
    assert login(api, "ada", DEFAULT_PASSWORD, "10.0.0.1").status_code == 200


@override_settings(CHAT_LOGIN_FAILURE_RATE="100/m", CHAT_LOGIN_USERNAME_RATE="5/m")
def test_failures_from_many_addresses_slow_down_but_do_not_lock_out_the_user(api, make_user):
    make_user("ada")
    home = "198.51.100.7"
    assert login(api, "ada", DEFAULT_PASSWORD, home).status_code == 200  # the user's own address
    for n in range(5):
        assert login(api, "ada", WRONG, f"203.0.113.{n}").status_code == 401
    # Guessing from yet more addresses is now delayed, and only briefly.
    for n in range(5, 10):
        assert_429(login(api, "ada", WRONG, f"203.0.113.{n}"), 60)
    # The real user at their own address logs in straight away.
    assert login(api, "ada", DEFAULT_PASSWORD, home).status_code == 200
    assert login(api, "ada", DEFAULT_PASSWORD, "198.51.100.8").status_code == 429


@override_settings(CHAT_LOGIN_FAILURE_RATE="100/m", CHAT_LOGIN_USERNAME_RATE="3/2s")
def test_the_username_limit_only_delays_a_new_address(api, make_user):
    """From an address never used before, the real user waits at most the short window."""
    make_user("ada")
    for attempt in range(5):  # a window may end between the failures and the login: go again
        for n in range(3):
            assert login(api, "ada", WRONG, f"203.0.113.{n}").status_code == 401
        response = login(api, "ada", DEFAULT_PASSWORD, f"198.51.100.{attempt}")
        if response.status_code == 429:
            break
    retry_after = assert_429(response, 2)
    time.sleep(retry_after)
    assert login(api, "ada", DEFAULT_PASSWORD, f"198.51.100.{attempt}").status_code == 200


@override_settings(CHAT_LOGIN_FAILURE_RATE="100/m", CHAT_LOGIN_USERNAME_RATE="2/m")
def test_unknown_usernames_are_limited_alike(api):
    """Whether the account exists does not change the answers."""
    for n in range(2):
        assert login(api, "nobody", WRONG, f"203.0.113.{n}").status_code == 401
    assert_429(login(api, "nobody", WRONG, "203.0.113.9"), 60)


# --- IPv6 by /64 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::ffff", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2::1]", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("unknown", "unknown"),
    ],
)
def test_address_buckets(address, bucket):
    assert address_bucket(address) == bucket


@override_settings(CHAT_LOGIN_RATE="3/m")
def test_login_address_limit_counts_ipv6_by_64(api, make_user):
    make_user("ada")
    for n in range(1, 4):
        login(api, "ada", DEFAULT_PASSWORD, f"2001:db8:1:2::{n:x}")
    assert_429(login(api, "ada", DEFAULT_PASSWORD, "2001:db8:1:2:ffff:ffff:ffff:ffff"), 60)
    assert login(api, "ada", DEFAULT_PASSWORD, "2001:db8:1:3::1").status_code == 200


@override_settings(CHAT_REGISTER_RATE="2/m")
def test_register_address_limit_counts_ipv6_by_64(api):
    for n in range(2):
        api.post("/api/auth/register", {"username": f"u{n}"}, REMOTE_ADDR=f"2001:db8::{n + 1}")
    response = api.post("/api/auth/register", {"username": "u9"}, REMOTE_ADDR="2001:db8::abcd")
    assert_429(response, 60)
    assert api.post("/api/auth/register", {}, REMOTE_ADDR="2001:db8:0:1::1").status_code == 400


@override_settings(CHAT_LOGIN_FAILURE_RATE="2/m")
def test_pair_limit_counts_ipv6_by_64(api, make_user):
    make_user("ada")
    assert login(api, "ada", WRONG, "2001:db8:5:5::1").status_code == 401
    assert login(api, "ada", WRONG, "2001:db8:5:5::2").status_code == 401
    assert_429(login(api, "ada", DEFAULT_PASSWORD, "2001:db8:5:5::3"), 60)
    assert login(api, "ada", DEFAULT_PASSWORD, "2001:db8:5:6::1").status_code == 200


@override_settings(CHAT_LOGIN_FAILURE_RATE="100/m", CHAT_LOGIN_USERNAME_RATE="2/m")
def test_known_address_counts_by_64(api, make_user):
    """Logging in once from an IPv6 /64 makes the whole /64 the user's own."""
    make_user("ada")
    assert login(api, "ada", DEFAULT_PASSWORD, "2001:db8:7:7::10").status_code == 200
    for n in range(2):
        login(api, "ada", WRONG, f"203.0.113.{n}")
    assert login(api, "ada", DEFAULT_PASSWORD, "2001:db8:7:7::99").status_code == 200
    assert login(api, "ada", DEFAULT_PASSWORD, "2001:db8:7:8::1").status_code == 429
