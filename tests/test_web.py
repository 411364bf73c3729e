"""The web app's page and the client library are served by the server itself, under a strict CSP."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def anonymous() -> Client:
    return Client()


def test_the_page_at_the_root_loads_the_app_from_this_server(anonymous):
    response = anonymous.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert '<script type="module" src="/static/chat/app.js">' in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from elsewhere


def test_the_page_allows_scripts_styles_and_connections_from_its_own_origin_only(anonymous):
    policy = dict(
        part.strip().split(" ", 1) for part in anonymous.get("/")["Content-Security-Policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert policy["style-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"


def test_only_get_is_served_at_the_root(anonymous):
    assert anonymous.post("/").status_code == 405


def test_the_client_library_and_its_declarations_are_served(anonymous):
    module = anonymous.get("/static/chat/chat-client.js")
    assert module.status_code == 200
    assert module["Content-Type"].startswith("text/javascript")
    declarations = anonymous.get("/static/chat/chat-client.d.ts")
    assert declarations.status_code == 200
    assert declarations["Content-Type"].startswith("text/plain")
    assert b"export declare class ChatClient" in b"".join(declarations.streaming_content)
