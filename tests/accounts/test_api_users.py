"""The Users routes: own profile, public profiles, lists, online list, status."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from accounts.models import LoginSession, User
from tests.accounts.helpers import (
    OWN_USER_KEYS,
    PUBLIC_USER_KEYS,
    TIMESTAMP,
    all_keys,
    assert_own_user,
    assert_public_user,
)
from tests.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db

ME = "/api/users/me"
NEW_PASSWORD = "another-Secret-phrase-7"


# --- /api/users/me -----------------------------------------------------------


def test_me_shows_own_user(auth_client, make_user):
    user = make_user("Ada")
    response = auth_client(user).get(ME)
    assert response.status_code == 200
    assert_own_user(response.json(), user)


@pytest.mark.parametrize("path", [ME, "/api/users/me/", "/api/users/", "/api/users/ada", "/api/users/online"])
def test_user_routes_need_a_token(api, make_user, path):
    make_user("ada")
    response = api.get(path)
    assert response.status_code == 401
    assert set(response.json()) == {"detail"}


def test_patch_email_with_current_password(auth_client, make_user):
    user = make_user("ada")
    client = auth_client(user)
    response = client.patch(
        ME, {"email": "new@Example.com", "current_password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["email"] == "new@example.com"
    user.refresh_from_db()
    assert user.email == "new@example.com"


@pytest.mark.parametrize("change", [{"email": "new@example.com"}, {"password": NEW_PASSWORD}])
@pytest.mark.parametrize("current", [None, "", "wrong-Password-1"])
def test_patch_needs_the_right_current_password(auth_client, make_user, change, current):
    user = make_user("ada")
    body = dict(change)
    if current is not None:
        body["current_password"] = current
    response = auth_client(user).patch(ME, body, format="json")
    assert response.status_code == 400
    assert "current_password" in response.json()
    user.refresh_from_db()
    assert user.email == "ada@example.com"
    assert user.check_password(DEFAULT_PASSWORD)


def test_patch_password_changes_it_and_ends_other_sessions(api, auth_client, make_user):
    user = make_user("ada")
    client = auth_client(user)
    other = auth_client(user)
    response = client.patch(
        ME, {"password": NEW_PASSWORD, "current_password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert set(response.json()) == OWN_USER_KEYS
    # the current session goes on
    assert client.get(ME).status_code == 200
    assert (
        api.post("/api/auth/refresh", {"refresh": client.tokens["refresh"]}, format="json").status_code == 200
    )
    # every other session ended
    assert other.get(ME).status_code == 401
    assert (
        api.post("/api/auth/refresh", {"refresh": other.tokens["refresh"]}, format="json").status_code == 401
    )
    ended = LoginSession.objects.get(pk=other.tokens["session"].pk)
    assert ended.end_reason == LoginSession.EndReason.PASSWORD_CHANGED
    # and the new password is the one that logs in
    login = api.post("/api/auth/login", {"username": "ada", "password": NEW_PASSWORD}, format="json")
    assert login.status_code == 200
    old = api.post("/api/auth/login", {"username": "ada", "password": DEFAULT_PASSWORD}, format="json")
    assert old.status_code == 401


def test_patch_email_does_not_end_other_sessions(auth_client, make_user):
    user = make_user("ada")
    client, other = auth_client(user), auth_client(user)
    client.patch(ME, {"email": "new@example.com", "current_password": DEFAULT_PASSWORD}, format="json")
    assert other.get(ME).status_code == 200


def test_patch_refuses_a_weak_new_password(auth_client, make_user):
    user = make_user("ada")
    response = auth_client(user).patch(
        ME, {"password": "123", "current_password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert "password" in response.json()
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_patch_email_is_unique_ignoring_case(auth_client, make_user):
    make_user("bob", email="Bob@Example.com")
    user = make_user("ada")
    response = auth_client(user).patch(
        ME, {"email": "BOB@example.COM", "current_password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert "email" in response.json()
    user.refresh_from_db()
    assert user.email == "ada@example.com"


def test_patch_own_email_in_other_case_is_allowed(auth_client, make_user):
    user = make_user("ada")
    response = auth_client(user).patch(
        ME, {"email": "ADA@example.com", "current_password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["email"] == "ADA@example.com"


def test_patch_refuses_a_bad_email(auth_client, make_user):
    user = make_user("ada")
    response = auth_client(user).patch(
        ME, {"email": "nope", "current_password": DEFAULT_PASSWORD}, format="json"
    )
    assert response.status_code == 400
    assert "email" in response.json()


def test_patch_ignores_every_other_field(auth_client, make_user):
    user = make_user("ada")
    before_id, before_joined = user.id, user.date_joined
    response = auth_client(user).patch(
        ME,
        {
            "username": "eve",
            "id": str(uuid.uuid4()),
            "is_staff": True,
            "is_superuser": True,
            "is_active": False,
            "status": "away",
            "last_seen": "2020-01-01T00:00:00.000Z",
            "date_joined": "2020-01-01T00:00:00.000Z",
            "current_password": DEFAULT_PASSWORD,
        },
        format="json",
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert (user.id, user.username, user.date_joined) == (before_id, "ada", before_joined)
    assert not user.is_staff and not user.is_superuser and user.is_active
    assert user.status == "online" and user.last_seen is None
    assert_own_user(response.json(), user)


def test_patch_with_nothing_to_change_needs_no_password(auth_client, make_user):
    user = make_user("ada")
    response = auth_client(user).patch(ME, {}, format="json")
    assert response.status_code == 200
    assert_own_user(response.json(), user)


@pytest.mark.parametrize("method", ["put", "post", "delete"])
def test_me_has_no_other_methods(auth_client, make_user, method):
    response = getattr(auth_client(make_user("ada")), method)(ME, {}, format="json")
    assert response.status_code == 405


# --- /api/users/{username} ---------------------------------------------------


def test_user_detail_is_case_insensitive_and_public(auth_client, make_user):
    ada = make_user("Ada")
    bob = make_user("bob")
    for spelling in ("Ada", "ada", "ADA"):
        response = auth_client(bob).get(f"/api/users/{spelling}")
        assert response.status_code == 200
        assert_public_user(response.json(), ada)
        assert response.json()["username"] == "Ada"


def test_user_detail_with_trailing_slash(auth_client, make_user):
    ada = make_user("ada")
    response = auth_client(ada).get("/api/users/ada/")
    assert response.status_code == 200


@pytest.mark.parametrize("name", ["nobody", "x", "a" * 300, "%00", "%ED%A0%80", "caf%C3%A9", "..."])
def test_unknown_user_is_404(auth_client, make_user, name):
    response = auth_client(make_user("ada")).get(f"/api/users/{name}")
    assert response.status_code == 404
    assert set(response.json()) == {"detail"}


def test_own_detail_is_public_shape(auth_client, make_user):
    ada = make_user("ada")
    response = auth_client(ada).get("/api/users/ada")
    assert set(response.json()) == PUBLIC_USER_KEYS


# --- /api/users/ -------------------------------------------------------------


def names(response) -> list[str]:
    return [row["username"] for row in response.json()["results"]]


def test_user_list_is_paginated_and_sorted_ignoring_case(auth_client, make_user):
    for name in ["charlie", "Bob", "alice", "Dave", "bea"]:
        make_user(name)
    client = auth_client(User.objects.get(username="alice"))
    response = client.get("/api/users/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"results", "next", "previous"}
    assert names(response) == ["alice", "bea", "Bob", "charlie", "Dave"]
    assert body["next"] is None and body["previous"] is None
    for row in body["results"]:
        assert set(row) == PUBLIC_USER_KEYS
    assert client.get("/api/users").status_code == 200


def test_user_list_pages_follow_next_and_previous(auth_client, make_user):
    for name in ["a1x", "B2x", "c3x"]:
        make_user(name)
    client = auth_client(User.objects.get(username="a1x"))
    seen = []
    url = "/api/users/?limit=1"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += names(response)
        url = response.json()["next"]
        pages += 1
        if url:
            assert parse_qs(urlsplit(url).query)["limit"] == ["1"]
    assert seen == ["a1x", "B2x", "c3x"]
    assert pages == 3
    last = client.get("/api/users/?limit=1&offset=2").json()
    assert last["next"] is None
    back = client.get(last["previous"])
    assert names(back) == ["B2x"]
    first = client.get(back.json()["previous"]).json()
    assert first["previous"] is None


def test_limit_above_200_is_served_as_200(auth_client, make_user):
    for n in range(203):
        User.objects.create(username=f"bulk{n:03d}", email=f"bulk{n}@example.com")
    client = auth_client(make_user("zed"))
    response = client.get("/api/users/?limit=201")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 200
    assert response.json()["next"] is not None
    default = client.get("/api/users/")
    assert len(default.json()["results"]) == 50


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "", "1.5", "%C2%B2", "99999999999999999999x"])
def test_limit_that_is_not_a_positive_integer_is_400(auth_client, make_user, limit):
    response = auth_client(make_user("ada")).get(f"/api/users/?limit={limit}")
    assert response.status_code == 400
    assert "limit" in response.json()


@pytest.mark.parametrize("path", ["/api/users/", "/api/users/online"])
def test_huge_limit_is_capped_not_an_error(auth_client, make_user, path):
    response = auth_client(make_user("ada")).get(f"{path}?limit=99999999999999999999999999")
    assert response.status_code == 200


@pytest.mark.parametrize("offset", ["-1", "abc", "9" * 40])
def test_bad_offset_is_400(auth_client, make_user, offset):
    response = auth_client(make_user("ada")).get(f"/api/users/?offset={offset}")
    assert response.status_code == 400


# --- presence: is_online, status, /api/users/online -----------------------------


def test_online_lists_connected_visible_users(auth_client, make_user, connections):
    ada, bob, cid, dan = (make_user(n) for n in ["ada", "Bob", "cid", "dan"])
    connections(bob)
    connections(ada)
    connections(cid)
    cid.status = "offline"  # invisible: connected but not shown
    cid.save()
    client = auth_client(dan)
    response = client.get("/api/users/online")
    assert response.status_code == 200
    assert names(response) == ["ada", "Bob"]
    assert all(row["is_online"] is True for row in response.json()["results"])
    assert set(response.json()) == {"results", "next", "previous"}
    assert client.get("/api/users/online/").status_code == 200
    paged = client.get("/api/users/online?limit=1").json()
    assert [r["username"] for r in paged["results"]] == ["ada"] and paged["next"]


def test_is_online_follows_connections(auth_client, make_user, connections):
    ada, bob = make_user("ada"), make_user("bob")
    client = auth_client(bob)
    assert client.get("/api/users/ada").json()["is_online"] is False
    assert client.get("/api/users/ada").json()["status"] == "offline"
    connections(ada)
    shown = client.get("/api/users/ada").json()
    assert shown["is_online"] is True and shown["status"] == "online"
    listed = {row["username"]: row for row in client.get("/api/users/").json()["results"]}
    assert listed["ada"]["is_online"] is True
    assert listed["bob"]["is_online"] is False


@pytest.mark.parametrize("status", ["online", "away", "offline"])
def test_set_status(auth_client, make_user, status):
    user = make_user("ada")
    response = auth_client(user).post(f"{ME}/status", {"status": status}, format="json")
    assert response.status_code == 200
    assert_own_user(response.json(), user)
    assert response.json()["status"] == status
    user.refresh_from_db()
    assert user.status == status


@pytest.mark.parametrize(
    "body", [{"status": "busy"}, {"status": "Online"}, {"status": ""}, {"status": None}, {}]
)
def test_set_status_refuses_other_values(auth_client, make_user, body):
    user = make_user("ada")
    response = auth_client(user).post(f"{ME}/status", body, format="json")
    assert response.status_code == 400
    assert "status" in response.json()
    user.refresh_from_db()
    assert user.status == "online"


def test_away_user_is_shown_away_while_connected(auth_client, make_user, connections):
    ada, bob = make_user("ada"), make_user("bob")
    connections(ada)
    auth_client(ada).post(f"{ME}/status", {"status": "away"}, format="json")
    shown = auth_client(bob).get("/api/users/ada").json()
    assert shown == {**shown, "status": "away", "is_online": True}


def test_away_user_without_connection_is_shown_offline(auth_client, make_user):
    ada, bob = make_user("ada"), make_user("bob")
    auth_client(ada).post(f"{ME}/status", {"status": "away"}, format="json")
    shown = auth_client(bob).get("/api/users/ada").json()
    assert (shown["status"], shown["is_online"]) == ("offline", False)


def test_invisible_user_looks_offline_to_others_but_sees_own_choice(auth_client, make_user, connections):
    ada, bob = make_user("ada"), make_user("bob")
    connections(ada)
    ada_client = auth_client(ada)
    own = ada_client.post(f"{ME}/status", {"status": "offline"}, format="json").json()
    assert (own["status"], own["is_online"]) == ("offline", False)
    shown = auth_client(bob).get("/api/users/ada").json()
    assert (shown["status"], shown["is_online"]) == ("offline", False)
    assert "ada" not in names(auth_client(bob).get("/api/users/online"))
    # back to away: others see them again, and own profile shows the choice
    own = ada_client.post(f"{ME}/status", {"status": "away"}, format="json").json()
    assert (own["status"], own["is_online"]) == ("away", True)
    assert ada_client.get(ME).json()["status"] == "away"


def test_own_profile_shows_chosen_status_even_when_not_connected(auth_client, make_user):
    ada = make_user("ada")
    client = auth_client(ada)
    client.post(f"{ME}/status", {"status": "away"}, format="json")
    own = client.get(ME).json()
    assert (own["status"], own["is_online"]) == ("away", False)


def test_going_invisible_while_online_sets_last_seen(auth_client, make_user, connections):
    ada, bob = make_user("ada"), make_user("bob")
    connections(ada)
    before = timezone.now()
    auth_client(ada).post(f"{ME}/status", {"status": "offline"}, format="json")
    ada.refresh_from_db()
    assert ada.last_seen is not None and ada.last_seen >= before.replace(microsecond=0)
    shown = auth_client(bob).get("/api/users/ada").json()
    assert TIMESTAMP.match(shown["last_seen"])


def test_invisible_comings_and_goings_change_nothing(auth_client, make_user):
    """Not connected: going invisible is not seen by anyone, so last_seen stays."""
    ada = make_user("ada")
    auth_client(ada).post(f"{ME}/status", {"status": "offline"}, format="json")
    ada.refresh_from_db()
    assert ada.last_seen is None


def test_status_change_broadcasts_only_visible_changes(auth_client, make_user, connections):
    from unittest import mock

    ada = make_user("ada")
    client = auth_client(ada)
    with mock.patch("accounts.presence.presence_broadcast_on_commit") as broadcast:
        client.post(f"{ME}/status", {"status": "away"}, format="json")  # not connected: invisible change
        assert broadcast.call_count == 0
        connections(ada)
        client.post(f"{ME}/status", {"status": "online"}, format="json")
        assert broadcast.call_count == 1
        assert broadcast.call_args.args[0]["status"] == "online"
        client.post(f"{ME}/status", {"status": "online"}, format="json")  # no change
        assert broadcast.call_count == 1
        client.post(f"{ME}/status", {"status": "offline"}, format="json")
        assert broadcast.call_count == 2
        view = broadcast.call_args.args[0]
        assert (view["status"], view["is_online"]) == ("offline", False)
        assert "email" not in view


# --- no email outside the own-user routes -----------------------------------------


def test_no_public_route_shows_an_email(auth_client, make_user, connections):
    ada, bob = make_user("ada"), make_user("bob")
    connections(ada)
    client = auth_client(bob)
    public = ["/api/users/", "/api/users/?limit=1", "/api/users/online", "/api/users/ada", "/api/users/bob"]
    for path in public:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "email" not in set(all_keys(response.json())), path
        assert "ada@example.com" not in response.content.decode()
        assert "password" not in set(all_keys(response.json())), path
    # control: the own-user routes do show it
    assert "email" in client.get(ME).json()
    assert "email" in client.post(f"{ME}/status", {"status": "away"}, format="json").json()
