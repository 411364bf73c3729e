"""Moderation tests drive the admin's pages and watch real sockets: the gateway's socket fixtures."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.gateway.conftest import fresh_layer_and_presence, ws_connect  # noqa: F401  (fixtures)


@pytest.fixture
def superuser(make_user):
    user = make_user("moderator")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def admin_client(superuser) -> Client:
    """Django's test client logged in as a superuser, as a moderator's browser would be."""
    client = Client()
    client.force_login(superuser)
    return client
