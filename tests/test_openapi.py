"""The OpenAPI schema: valid, warning-free, accurate, and confirmed against a real server."""

from __future__ import annotations

from io import StringIO

import hypothesis
import pytest
import requests
import schemathesis
import yaml
from django.core.management import call_command
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig

from tests.servers import bearer as bearer_header
from tests.servers import register_and_login

# Generated cases per operation: enough to find shape errors, bounded well under two minutes.
MAX_EXAMPLES = 25
# What the issue asks: no 5xx, and answers that match the schema. Not
# "positive data accepted": a schema cannot say that a password is too
# common or a name taken, so valid-looking input may rightly get a 400. Not
# "negative data rejected" either: a malformed multipart body parses as an
# empty form, which an all-optional PATCH rightly accepts.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]


def generated_schema() -> dict:
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


def test_schema_validates_without_warnings():
    generated_schema()


def test_every_route_documents_its_statuses():
    paths = generated_schema()["paths"]
    expected = {
        ("/api/users/", "get"): {"200", "400", "401"},
        ("/api/channels/", "get"): {"200", "400", "401"},
        ("/api/channels/", "post"): {"201", "400", "401", "429"},
        ("/api/channels/me/", "get"): {"200", "400", "401"},
        ("/api/channels/{name}/", "get"): {"200", "401", "404"},
        ("/api/channels/{name}/", "delete"): {"204", "400", "401", "403", "404"},
        ("/api/channels/{name}/join/", "post"): {"200", "400", "401", "403", "404", "429"},
        ("/api/channels/{name}/members/", "post"): {"200", "400", "401", "403", "404", "429"},
        ("/api/channels/{name}/members/{username}/", "delete"): {"204", "400", "401", "403", "404", "429"},
        ("/api/channels/{name}/bans/", "get"): {"200", "400", "401", "403", "404"},
        ("/api/channels/{name}/bans/", "post"): {"200", "201", "400", "401", "403", "404", "429"},
        ("/api/channels/{name}/bans/{username}/", "delete"): {"204", "400", "401", "403", "404", "429"},
        ("/api/dms/{username}/", "post"): {"200", "201", "401", "404", "429"},
        ("/api/channels/{name}/leave/", "post"): {"200", "400", "401", "404", "429"},
        ("/api/messages/", "get"): {"200", "400", "401", "403", "404", "429"},
        ("/api/messages/me/", "get"): {"200", "400", "401", "403", "404", "429"},
        ("/api/messages/", "post"): {"200", "201", "400", "401", "403", "404", "429"},
        ("/api/messages/search/", "get"): {"200", "400", "401", "403", "404", "429"},
        ("/api/messages/{id}/", "get"): {"200", "401", "404"},
        ("/api/messages/{id}/", "patch"): {"200", "400", "401", "403", "404", "429"},
        ("/api/messages/{id}/", "delete"): {"204", "401", "403", "404", "429"},
        ("/api/messages/{id}/reactions/", "post"): {"200", "400", "401", "404", "429"},
        ("/api/messages/{id}/reactions/{emoji}/", "delete"): {"200", "400", "401", "404", "429"},
    }
    for (path, method), statuses in expected.items():
        operation = paths[path][method]
        assert set(operation["responses"]) == statuses, (path, method)
        assert operation["security"] == [{"bearerAuth": []}]
    page_params = {p["name"] for p in paths["/api/messages/"]["get"]["parameters"]}
    assert page_params == {"channel", "before", "after", "limit", "reply_to"}
    search_params = {p["name"] for p in paths["/api/messages/search/"]["get"]["parameters"]}
    assert search_params == {"q", "channel", "before", "after", "limit"}


def test_message_and_channel_shapes():
    schemas = generated_schema()["components"]["schemas"]
    assert set(schemas["Message"]["properties"]) == {
        "id",
        "seq",
        "channel",
        "username",
        "user_id",
        "content",
        "created_at",
        "client_id",
        "rev",
        "reply_to",
        "edited_at",
        "deleted",
        "reactions",
        "mentions",
    }
    assert schemas["Message"]["properties"]["channel"]["nullable"] is True
    assert set(schemas["Reaction"]["properties"]) == {"emoji", "usernames"}
    assert set(schemas["Channel"]["properties"]) == {
        "id",
        "name",
        "description",
        "kind",
        "owner",
        "member_count",
        "created_at",
    }
    assert set(schemas["ChannelDetail"]["properties"]) == set(schemas["Channel"]["properties"]) | {"members"}
    assert set(schemas["MessagePage"]["required"]) == {"results", "next", "previous"}


# --- schemathesis against a real server -------------------------------------------


@pytest.fixture(scope="session")
def bearer(live_server_proc) -> dict[str, str]:
    """A logged-in user on the live server, with a channel and messages to find."""
    base = live_server_proc.base_url
    account = register_and_login(base, prefix="fuzz")
    username = account["username"]
    headers = bearer_header(account)
    requests.post(f"{base}/api/channels/", json={"name": f"c{username}"}, headers=headers, timeout=30)
    for target in (None, f"c{username}"):
        requests.post(
            f"{base}/api/messages", json={"channel": target, "content": "seed"}, headers=headers, timeout=30
        )
    return headers


@pytest.mark.e2e
def test_api_conforms_to_its_schema(live_server_proc, bearer):
    """No 5xx, and every answer matches the schema: status, content type, headers and body.

    Each operation gets a few generated cases, valid and invalid. (Looping here
    rather than ``schemathesis.pytest.from_fixture``, whose node-id rewriting
    breaks on pytest 9.)
    """
    config = SchemathesisConfig.from_dict({"headers": bearer})
    schema = schemathesis.openapi.from_url(f"{live_server_proc.base_url}/api/schema/", config=config)
    # Logging out would end the session every later case depends on.
    schema = schema.exclude(path_regex=r"^/api/auth/logout")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
            GenerationMode.NEGATIVE
        )

        @hypothesis.given(case=strategy)
        @hypothesis.settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def check(case):
            case.call_and_validate(headers=bearer, checks=CHECKS)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # report every operation's failures together
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    assert operations >= 16
    assert not failures, "\n\n".join(f"{label}\n{detail}" for label, detail in failures.items())
