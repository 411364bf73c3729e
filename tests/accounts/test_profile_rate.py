"""``PATCH /api/users/me`` checks a bcrypt hash: CHAT_PROFILE_RATE per user, then 429 with Retry-After."""

from __future__ import annotations

import pytest

from tests.conftest import DEFAULT_PASSWORD

pytestmark = pytest.mark.django_db


def test_profile_changes_past_the_rate_are_429(auth_client, make_user, rates):
    rates(CHAT_PROFILE_RATE="3/m")
    ada = auth_client(make_user("ada"))
    # Guessing current_password with a stolen token: each wrong guess counts.
    for n in range(3):
        response = ada.patch(
            "/api/users/me", {"email": f"x{n}@example.com", "current_password": f"guess-{n}"}
        )
        assert response.status_code == 400
    response = ada.patch(
        "/api/users/me", {"email": "right@example.com", "current_password": DEFAULT_PASSWORD}
    )
    assert response.status_code == 429
    assert set(response.json()) == {"detail"}
    assert 1 <= int(response["Retry-After"]) <= 60
    # Reading the profile is not limited, and the refused change did not happen.
    own = ada.get("/api/users/me")
    assert own.status_code == 200 and own.json()["email"] == "ada@example.com"


def test_profile_rate_is_per_user_across_sessions(auth_client, make_user, rates):
    rates(CHAT_PROFILE_RATE="1/m")
    ada = make_user("ada")
    first, second = auth_client(ada), auth_client(ada)
    assert first.patch("/api/users/me", {}).status_code == 200
    assert second.patch("/api/users/me", {}).status_code == 429  # another session of the same user
    bob = auth_client(make_user("bob"))
    assert bob.patch("/api/users/me", {}).status_code == 200
