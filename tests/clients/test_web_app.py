"""The web app at ``/``, used in headless Chromium as a person would, against a real server process.

Actions go through the page only (clicks, typing, keys); REST is used only to set up what other
people did. Each test can fail: the assertions read what the page shows.
"""

from __future__ import annotations

import json
import uuid
from contextlib import ExitStack

import pytest
import requests
from playwright.sync_api import Page, expect
from websockets.sync.client import connect as ws_connect

from tests.clients.conftest import SCREENSHOTS, needs_chromium, new_person, post_message
from tests.conftest import DEFAULT_PASSWORD
from tests.servers import bearer, register_and_login, running_server

pytestmark = [pytest.mark.e2e, needs_chromium]

SLOW = 20_000  # ms: how long a page may take to show what the server sent (a loaded CI machine)
XSS_PAYLOADS = [
    "<script>window.__pwned=1</script>",
    '<img src=x onerror="window.__pwned=1">',
]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:6]}"


def open_app(context, server) -> Page:
    """A page at ``/`` whose console errors, page errors and off-origin requests are collected."""
    page = context.new_page()
    page.problems = []
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(f"console: {msg.text}"))
    page.on("pageerror", lambda error: page.problems.append(f"pageerror: {error}"))
    page.on(
        "request",
        lambda request: (
            request.url.startswith(("data:", server.base_url, server.ws_base))
            or page.problems.append(f"off-origin request: {request.url}")
        ),
    )
    page.on(
        "response",
        lambda response: (
            response.status < 400
            or page.problems.append(f"HTTP {response.status}: {response.request.method} {response.url}")
        ),
    )
    page.goto(f"{server.base_url}/")
    return page


def expect_connected(page: Page) -> None:
    connection = page.get_by_test_id("connection")
    expect(connection).to_have_attribute("data-state", "open", timeout=SLOW)
    expect(connection).to_have_text("Connected")


def register_in_page(page: Page, username: str) -> None:
    page.get_by_test_id("tab-register").click()
    page.get_by_test_id("auth-username").fill(username)
    page.get_by_test_id("auth-email").fill(f"{username}@example.com")
    page.get_by_test_id("auth-password").fill(DEFAULT_PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect_connected(page)
    expect(page.get_by_test_id("current-user")).to_have_text(username)


def log_in_page(page: Page, username: str) -> None:
    page.get_by_test_id("auth-username").fill(username)
    page.get_by_test_id("auth-password").fill(DEFAULT_PASSWORD)
    page.get_by_test_id("auth-password").press("Enter")
    expect_connected(page)
    expect(page.get_by_test_id("current-user")).to_have_text(username)


def channel_item(page: Page, name: str):
    return page.locator(f'[data-testid="channel-item"][data-channel="{name}"]')


def open_channel(page: Page, name: str) -> None:
    channel_item(page, name).click()
    expect(channel_item(page, name)).to_have_attribute("aria-current", "page")


def message_with(page: Page, text: str):
    """The message item whose text is exactly ``text``."""
    return page.get_by_test_id("message").filter(
        has=page.get_by_test_id("message-text").get_by_text(text, exact=True)
    )


def send(page: Page, text: str) -> None:
    composer = page.get_by_test_id("composer")
    composer.click()
    composer.press_sequentially(text)
    composer.press("Enter")
    expect(composer).to_have_value("")
    expect(message_with(page, text)).to_have_count(1, timeout=SLOW)


def message_action(page: Page, text: str, action: str) -> None:
    """Hover a message, as a mouse does, and click one of its toolbar's buttons."""
    message = message_with(page, text)
    message.hover()
    message.get_by_test_id(action).click()


def reaction(message, emoji: str):
    return message.locator(f'[data-testid="reaction"][data-emoji="{emoji}"]')


def direct_name(*usernames: str) -> str:
    return "@" + "+".join(sorted(usernames, key=str.lower))


def test_a_person_registers_chats_reacts_edits_deletes_and_reads_a_direct_message(browser, module_server):
    ada_name, bob_name, channel = unique("ada"), unique("bob"), unique("design-")
    with ExitStack() as stack:
        ada_context = stack.enter_context(new_person(browser))
        bob_context = stack.enter_context(new_person(browser))
        ada = open_app(ada_context, module_server)
        register_in_page(ada, ada_name)

        # A channel, created through its dialog, opens at once and is listed.
        ada.get_by_test_id("create-channel").click()
        ada.get_by_test_id("channel-name-input").fill(channel)
        ada.get_by_test_id("channel-description-input").fill("Mockups and reviews")
        ada.get_by_test_id("create-channel-submit").click()
        expect(ada.get_by_test_id("channel-title")).to_have_text(channel)
        expect(ada.get_by_test_id("channel-description")).to_have_text("Mockups and reviews")
        expect(channel_item(ada, channel)).to_have_attribute("aria-current", "page", timeout=SLOW)
        expect(ada.get_by_test_id("empty-state")).to_be_visible()

        send(ada, "First draft of the new header")
        expect(ada.get_by_test_id("empty-state")).to_have_count(0)

        # React from the picker; clicking the reaction takes it back; react again.
        message_action(ada, "First draft of the new header", "react-button")
        ada.locator('[data-testid="emoji-option"][data-emoji="🎉"]').click()
        party = reaction(message_with(ada, "First draft of the new header"), "🎉")
        expect(party).to_have_attribute("aria-pressed", "true", timeout=SLOW)
        expect(party.get_by_test_id("reaction-count")).to_have_text("1")
        party.click()
        expect(party).to_have_count(0, timeout=SLOW)
        message_action(ada, "First draft of the new header", "react-button")
        ada.locator('[data-testid="emoji-option"][data-emoji="👍"]').click()
        thumbs = reaction(message_with(ada, "First draft of the new header"), "👍")
        expect(thumbs.get_by_test_id("reaction-count")).to_have_text("1", timeout=SLOW)

        # Escape cancels an edit; Enter saves one, which shows "(edited)" and keeps the reaction.
        message_action(ada, "First draft of the new header", "edit-button")
        editor = ada.get_by_test_id("edit-input")
        expect(editor).to_be_focused()
        editor.fill("not this")
        editor.press("Escape")
        expect(editor).to_have_count(0)
        expect(message_with(ada, "First draft of the new header")).to_have_count(1)
        message_action(ada, "First draft of the new header", "edit-button")
        ada.get_by_test_id("edit-input").fill("Second draft of the new header")
        ada.get_by_test_id("edit-input").press("Enter")
        edited = message_with(ada, "Second draft of the new header")
        expect(edited).to_have_count(1, timeout=SLOW)
        expect(edited.get_by_test_id("edited-marker")).to_be_visible()
        expect(reaction(edited, "👍")).to_have_count(1)
        expect(message_with(ada, "First draft of the new header")).to_have_count(0)

        # A reply quotes its parent above it.
        message_action(ada, "Second draft of the new header", "reply-button")
        expect(ada.get_by_test_id("reply-bar")).to_contain_text("Second draft of the new header")
        send(ada, "Spacing looks better now")
        reply = message_with(ada, "Spacing looks better now")
        expect(reply.get_by_test_id("reply-quote")).to_contain_text("Second draft of the new header")
        expect(ada.get_by_test_id("reply-bar")).to_be_hidden()

        # Deleting asks first, then leaves a tombstone in the message's place.
        send(ada, "typo, ignore")
        doomed = message_with(ada, "typo, ignore")
        doomed_id = doomed.get_attribute("data-message-id")
        message_action(ada, "typo, ignore", "delete-button")
        ada.get_by_test_id("confirm-delete").click()
        tombstone = ada.locator(f'[data-message-id="{doomed_id}"]')
        expect(tombstone.get_by_test_id("message-text")).to_have_text("message deleted", timeout=SLOW)
        expect(message_with(ada, "typo, ignore")).to_have_count(0)
        expect(tombstone.get_by_test_id("delete-button")).to_have_count(0)

        # A second person registers in their own browser; ada opens a direct message with them.
        bob = open_app(bob_context, module_server)
        register_in_page(bob, bob_name)
        dm = direct_name(ada_name, bob_name)
        ada.get_by_test_id("new-dm").click()
        ada.get_by_test_id("dm-username").fill(bob_name)
        ada.get_by_test_id("dm-submit").click()
        expect(ada.get_by_test_id("channel-title")).to_have_text(bob_name)
        expect(channel_item(ada, dm)).to_have_attribute("aria-current", "page", timeout=SLOW)
        send(ada, "Can you review the header?")
        open_channel(ada, channel)

        # Bob sees the conversation appear with an unread badge, which clears once he opens it.
        expect(channel_item(bob, dm).get_by_test_id("unread-badge")).to_have_text("1", timeout=SLOW)
        open_channel(bob, dm)
        expect(message_with(bob, "Can you review the header?")).to_have_count(1, timeout=SLOW)
        expect(channel_item(bob, dm).get_by_test_id("unread-badge")).to_have_count(0, timeout=SLOW)
        send(bob, "On it, @" + ada_name)

        # Ada, reading her channel, sees the badge appear; opening the conversation clears it.
        badge = channel_item(ada, dm).locator('[data-testid="unread-badge"], [data-testid="mention-badge"]')
        expect(badge).to_have_count(1, timeout=SLOW)
        expect(badge).to_have_text("@1")  # bob's message names ada: a mention
        expect(ada).to_have_title(f"(1) #{channel} · Chat")
        open_channel(ada, dm)
        mention = message_with(ada, f"On it, @{ada_name}").get_by_test_id("mention")
        expect(mention).to_have_text(f"@{ada_name}")
        expect(badge).to_have_count(0, timeout=SLOW)
        expect(ada).to_have_title(f"{bob_name} · Chat")

        # Typing shows on the other side, and bob shows as online there.
        # (typed slowly, as a person types: the server forwards one typing event per 2 s)
        bob.get_by_test_id("composer").press_sequentially("one more thing", delay=200)
        expect(ada.get_by_test_id("typing")).to_have_text(f"{bob_name} is typing…", timeout=SLOW)
        expect(channel_item(ada, dm).locator(".presence")).to_have_attribute("data-presence", "online")

        # A reload stays logged in, on the same conversation; logging out shows the sign-in form.
        ada.reload()
        expect_connected(ada)
        expect(ada.get_by_test_id("channel-title")).to_have_text(bob_name)
        expect(message_with(ada, "On it, @" + ada_name)).to_have_count(1, timeout=SLOW)
        ada.get_by_test_id("logout").click()
        expect(ada.get_by_test_id("auth-form")).to_be_visible()
        ada.reload()
        expect(ada.get_by_test_id("auth-form")).to_be_visible()

        assert ada.problems == [] and bob.problems == [], ada.problems + bob.problems


def test_a_wrong_password_is_refused_on_the_form(context, module_server):
    account = register_and_login(module_server.base_url, "forgetful")
    page = open_app(context, module_server)
    page.get_by_test_id("auth-username").fill(account["username"])
    page.get_by_test_id("auth-password").fill("not-the-password")
    page.get_by_test_id("auth-submit").click()
    expect(page.get_by_test_id("auth-status")).to_have_text("Wrong username or password.")
    expect(page.get_by_test_id("auth-password")).to_be_visible()
    log_in_page(page, account["username"])
    expect(page).to_have_title("lobby · Chat")


def test_browsing_joining_and_leaving_channels_and_a_private_one(context, module_server):
    owner = register_and_login(module_server.base_url, "owner")
    public, secret, mine = unique("garden-"), unique("secret-"), unique("plans-")
    for name, private in ((public, False), (secret, True)):
        created = requests.post(
            f"{module_server.base_url}/api/channels/",
            json={"name": name, "description": f"about {name}", "private": private},
            headers=bearer(owner),
            timeout=30,
        )
        assert created.status_code == 201, created.text

    page = open_app(context, module_server)
    register_in_page(page, unique("walker"))
    page.get_by_test_id("browse-channels").click()
    page.get_by_test_id("browse-search").fill(public[:-3])
    listed = page.get_by_test_id("browse-item")
    expect(listed).to_have_count(1)
    expect(listed).to_have_attribute("data-channel", public)
    page.get_by_test_id("browse-search").fill(secret)
    expect(listed).to_have_count(0)  # a private channel is invisible to others
    page.get_by_test_id("browse-search").fill(public)
    listed.get_by_test_id("join-channel").click()
    expect(page.get_by_test_id("channel-title")).to_have_text(public)
    expect(page.get_by_test_id("channel-description")).to_have_text(f"about {public}")
    expect(page.get_by_test_id("member-count")).to_have_text("2", timeout=SLOW)
    expect(channel_item(page, public)).to_be_visible(timeout=SLOW)

    page.get_by_test_id("leave-channel").click()
    expect(page.get_by_test_id("channel-title")).to_have_text("lobby")
    expect(channel_item(page, public)).to_have_count(0, timeout=SLOW)

    page.get_by_test_id("create-channel").click()
    page.get_by_test_id("channel-name-input").fill(mine)
    page.get_by_test_id("channel-private-input").check()
    page.get_by_test_id("create-channel-submit").click()
    expect(page.get_by_test_id("channel-title")).to_have_text(mine)
    expect(page.get_by_test_id("channel-header")).to_contain_text("Private")
    expect(channel_item(page, mine)).to_have_attribute("data-kind", "private", timeout=SLOW)
    assert page.problems == [], page.problems


def test_scrolling_up_loads_older_messages(context, module_server):
    author = register_and_login(module_server.base_url, "talker")
    channel = unique("long-")
    requests.post(
        f"{module_server.base_url}/api/channels/", json={"name": channel}, headers=bearer(author), timeout=30
    ).raise_for_status()
    with requests.Session() as session:
        session.headers.update(bearer(author))
        for n in range(1, 131):
            posted = session.post(
                f"{module_server.base_url}/api/messages",
                json={"channel": channel, "content": f"line {n}"},
                timeout=30,
            )
            assert posted.status_code == 201, posted.text

    page = open_app(context, module_server)
    log_in_page(page, author["username"])
    open_channel(page, channel)
    messages = page.get_by_test_id("message")
    expect(message_with(page, "line 130")).to_be_visible(timeout=SLOW)
    assert messages.count() < 130
    expect(message_with(page, "line 1")).to_have_count(0)
    page.get_by_test_id("message-list").hover()
    for _ in range(60):
        if message_with(page, "line 1").count():
            break
        page.mouse.wheel(0, -3000)
        page.wait_for_timeout(250)
    expect(message_with(page, "line 1")).to_have_count(1, timeout=SLOW)
    expect(page.get_by_test_id("channel-intro")).to_be_visible()
    texts = page.get_by_test_id("message-text").all_text_contents()
    assert texts == [f"line {n}" for n in range(1, 131)]
    assert page.problems == [], page.problems


def test_message_content_is_shown_as_text_never_as_html(context, module_server):
    author = register_and_login(module_server.base_url, "mallory")
    reader = register_and_login(module_server.base_url, "reader")
    channel = unique("xss-")
    created = requests.post(
        f"{module_server.base_url}/api/channels/",
        json={"name": channel, "description": XSS_PAYLOADS[1]},
        headers=bearer(author),
        timeout=30,
    )
    assert created.status_code == 201, created.text
    requests.post(
        f"{module_server.base_url}/api/channels/{channel}/join", headers=bearer(reader), timeout=30
    ).raise_for_status()
    ids = [post_message(module_server, author, channel, payload)["id"] for payload in XSS_PAYLOADS]
    replied = requests.post(
        f"{module_server.base_url}/api/messages",
        json={"channel": channel, "content": "a reply", "reply_to": ids[1]},
        headers=bearer(author),
        timeout=30,
    )
    assert replied.status_code == 201, replied.text

    page = open_app(context, module_server)
    log_in_page(page, reader["username"])
    open_channel(page, channel)
    for message_id, payload in zip(ids, XSS_PAYLOADS, strict=True):
        text = page.locator(f'[data-message-id="{message_id}"] [data-testid="message-text"]')
        expect(text).to_have_count(1, timeout=SLOW)
        assert text.evaluate("el => el.textContent") == payload
    expect(page.get_by_test_id("reply-quote")).to_contain_text(XSS_PAYLOADS[1])
    expect(page.get_by_test_id("channel-description")).to_have_text(XSS_PAYLOADS[1])
    # The reader sends one too, through the composer.
    send(page, XSS_PAYLOADS[0] + " again")
    assert page.get_by_test_id("message-list").locator("img, script").count() == 0
    assert page.locator("header img, header script").count() == 0
    assert page.evaluate("() => window.__pwned") is None


def test_the_connection_indicator_shows_reconnecting_and_offline(browser, tmp_path):
    with running_server(tmp_path) as server:
        account = register_and_login(server.base_url, "conn")
        with new_person(browser) as context:
            page = open_app(context, server)
            log_in_page(page, account["username"])
            connection = page.get_by_test_id("connection")

            server.stop()
            expect(connection).to_have_attribute("data-state", "reconnecting", timeout=SLOW)
            expect(connection).to_contain_text("Reconnecting")
            expect(page.get_by_test_id("connection-banner")).to_be_visible()
            # Written while the server is away: kept, and delivered once it is back.
            composer = page.get_by_test_id("composer")
            composer.fill("sent while the server was down")
            composer.press("Enter")
            expect(page.get_by_test_id("pending")).to_have_text("1 waiting to send")

            server.start()
            expect(connection).to_have_attribute("data-state", "open", timeout=60_000)
            expect(connection).to_have_text("Connected")
            expect(page.get_by_test_id("connection-banner")).to_be_hidden()
            expect(message_with(page, "sent while the server was down")).to_have_count(1, timeout=SLOW)
            expect(page.get_by_test_id("pending")).to_have_text("")

            # The browser reports no network: "Offline", then connected again once it is back.
            context.set_offline(True)
            expect(connection).to_have_attribute("data-state", "offline", timeout=SLOW)
            expect(connection).to_have_text("Offline")
            context.set_offline(False)
            expect(connection).to_have_attribute("data-state", "open", timeout=60_000)
            expect(connection).to_have_text("Connected")


SCREENSHOT_USERS = ["maya", "sam", "priya", "leo", "nora"]


def test_a_screenshot_of_the_app_in_use(browser, tmp_path):
    """docs/img/web-app.png, for the README: channels, a private one, direct messages, badges,
    a conversation with replies, reactions and an edit, presence and typing."""
    with running_server(tmp_path) as server, ExitStack() as stack:
        base = server.base_url
        people = {}
        for name in SCREENSHOT_USERS:
            body = {"username": name, "email": f"{name}@example.com", "password": DEFAULT_PASSWORD}
            assert requests.post(f"{base}/api/auth/register", json=body, timeout=30).status_code == 201
            login = requests.post(
                f"{base}/api/auth/login", json={"username": name, "password": DEFAULT_PASSWORD}, timeout=30
            )
            people[name] = {"username": name, **login.json()}

        def call(who, method, path, **body):
            answer = requests.request(
                method, f"{base}{path}", json=body or None, headers=bearer(people[who]), timeout=30
            )
            assert answer.status_code < 300, answer.text
            return answer.json() if answer.content else None

        def post(who, channel, content, **extra):
            return call(who, "POST", "/api/messages", channel=channel, content=content, **extra)

        for owner, name, description, private in [
            ("maya", "launch", "Shipping v2.0 on Thursday", True),
            ("sam", "design", "Mockups, reviews and the design system", False),
            ("leo", "random", "Anything goes", False),
        ]:
            call(owner, "POST", "/api/channels/", name=name, description=description, private=private)
        for name in ("sam", "priya", "leo"):
            call("maya", "POST", "/api/channels/launch/members", username=name)
        for name in ("maya", "priya", "nora"):
            call(name, "POST", "/api/channels/design/join")
        for name in ("maya", "sam", "nora"):
            call(name, "POST", "/api/channels/random/join")
        post("maya", None, "Morning everyone! Release notes draft is in #launch")

        checklist = post(
            "maya", "launch", "Checklist for Thursday: changelog, migration dry run, status page."
        )
        post("sam", "launch", "Migration dry run finished on staging: 4 min 12 s, no locks held.")
        dry_run = post("priya", "launch", "Load test at 2x last peak is green. p99 stays under 80 ms.")
        post("leo", "launch", "I'll take the status page and the customer email.", reply_to=checklist["id"])
        edited = post("maya", "launch", "Great work all. Let's freeze main Wednesday noon.")
        fixed = "Great work all. Let's freeze main Wednesday at 5pm."
        call("maya", "PATCH", f"/api/messages/{edited['id']}", content=fixed)
        question = post("sam", "launch", "@maya do we announce the new API limits in the same email?")
        answer = "Yes, with a link to the docs. @leo can you add a short section?"
        post("maya", "launch", answer, reply_to=question["id"])
        post("leo", "launch", "Done, draft is in the doc.")
        reactions = [("sam", "🎉", dry_run), ("maya", "🎉", dry_run), ("leo", "🎉", dry_run)]
        reactions += [("maya", "🚀", dry_run), ("priya", "👍", edited), ("sam", "👍", edited)]
        reactions += [("leo", "✅", checklist)]
        for who, emoji, target in reactions:
            call(who, "POST", f"/api/messages/{target['id']}/reactions", emoji=emoji)

        post("sam", "design", "New icon set is up for review, feedback welcome")
        post("nora", "design", "@maya the empty states need your eyes before Thursday")
        post("leo", "random", "Who's in for lunch at the new ramen place?")
        post("nora", "random", "Me! 12:30?")
        post("sam", "random", "Count me in")
        call("sam", "POST", "/api/dms/maya")
        post("sam", "@maya+sam", "Got a minute to go over the rollout plan?")
        post("sam", "@maya+sam", "Mostly the feature flags for the new composer")
        call("priya", "POST", "/api/dms/maya")
        post("maya", "@maya+priya", "Thanks for the load test report!")
        post("priya", "@maya+priya", "Anytime")

        # Others online (sam, leo and priya, who is away), and sam typing in the channel shown.
        sockets = {}
        for name in ("sam", "leo", "priya"):
            sockets[name] = stack.enter_context(
                ws_connect(f"{server.ws_base}/api/ws/{name}?token={people[name]['access']}", max_size=None)
            )
        call("priya", "POST", "/api/users/me/status", status="away")

        context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
        stack.callback(context.close)
        page = open_app(context, server)
        log_in_page(page, "maya")
        open_channel(page, "launch")
        expect(page.get_by_test_id("message")).to_have_count(8, timeout=SLOW)
        expect(page.get_by_test_id("reply-quote")).to_have_count(2)
        expect(page.get_by_test_id("edited-marker")).to_have_count(1)
        expect(reaction(page, "🎉").get_by_test_id("reaction-count")).to_have_text("3")
        expect(channel_item(page, "random").get_by_test_id("unread-badge")).to_have_text("3", timeout=SLOW)
        expect(channel_item(page, "design").get_by_test_id("mention-badge")).to_have_text("@1")
        expect(channel_item(page, "@maya+sam").get_by_test_id("unread-badge")).to_have_text("2")
        away = channel_item(page, "@maya+priya").locator(".presence")
        expect(away).to_have_attribute("data-presence", "away")
        sockets["sam"].send(json.dumps({"type": "typing", "channel": "launch"}))
        expect(page.get_by_test_id("typing")).to_contain_text("sam is typing", timeout=SLOW)
        page.mouse.move(900, 20)  # no hover toolbar in the picture
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "web-app.png"))
        assert (SCREENSHOTS / "web-app.png").stat().st_size > 10_000
        assert page.problems == [], page.problems


def test_the_page_is_served_with_its_policy_and_loads_without_errors(context, module_server):
    answer = requests.get(f"{module_server.base_url}/", timeout=30)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "connect-src 'self'" in policy
    assert "<script>" not in answer.text and "style=" not in answer.text  # nothing inline

    page = open_app(context, module_server)
    expect(page.get_by_test_id("auth-form")).to_be_visible()
    name = unique("visitor")
    register_in_page(page, name)
    send(page, "hello from the lobby")
    page.get_by_test_id("browse-channels").click()
    expect(page.get_by_test_id("browse-dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("browse-dialog")).to_have_count(0)
    assert page.problems == [], page.problems
