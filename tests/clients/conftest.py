"""Fixtures for the client tests: Debian's Chromium driven by Playwright, and real server processes.

Playwright downloads no browser here: it launches ``/usr/bin/chromium``
(``apt-get install chromium``; bin/test installs it in CI) with the flags a
closed network needs. Each test gets a fresh browser context (no cookies,
no storage) and, unless it needs its own settings, the module's server.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.servers import ServerProcess, bearer, running_server

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "img"

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module's tests."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def new_person(browser):
    """A fresh browser context (its own storage: one person), closed on the way out."""
    opened = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def context(browser):
    with new_person(browser) as opened:
        yield opened


@pytest.fixture
def other_context(browser):
    """A second person in the same test."""
    with new_person(browser) as opened:
        yield opened


@pytest.fixture(scope="module")
def module_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A real server for the module's tests that need no settings of their own."""
    with running_server(tmp_path_factory.mktemp("clients")) as server:
        yield server


def client_page(context, server: ServerProcess):
    """A page of the server's origin with ``window.ChatClient`` imported from the served module."""
    page = context.new_page()
    page.goto(f"{server.base_url}/api/health")
    page.evaluate(
        "async () => { const m = await import('/static/chat/chat-client.js');"
        " window.ChatClient = m.ChatClient; window.ChatError = m.ChatError; }"
    )
    return page


def post_message(server: ServerProcess, account: dict, channel: str | None, content: str) -> dict:
    """A message stored through REST (``POST /api/messages``), as another client would send it."""
    answer = requests.post(
        f"{server.base_url}/api/messages",
        json={"channel": channel, "content": content},
        headers=bearer(account),
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()
