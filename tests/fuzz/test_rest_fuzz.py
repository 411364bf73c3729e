"""Schemathesis against a real server's live schema, every phase, a fixed seed: no 5xx, no schema violation.

The phases: examples (the schema's own), coverage (boundary and invalid
values of every parameter and body field), fuzzing (random cases) and
stateful (sequences following the schema's links). Run through the CLI in a
subprocess, authenticated as a fresh user, with a bounded number of examples
per operation; the run's JSON report gives the figures.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from tests.fuzz.conftest import server_failures
from tests.servers import ROOT, bearer, register_and_login

pytestmark = [pytest.mark.e2e, pytest.mark.services]

SEED = 12
MAX_EXAMPLES = 15  # per operation and phase: about a minute here
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
]


def test_every_phase_finds_no_server_error_and_no_schema_violation(postgres_server, tmp_path):
    server = postgres_server()
    account = register_and_login(server.base_url, prefix="st")
    # Something to find: a channel of the user's and a message in it and in the lobby.
    name = f"c{account['username']}"
    requests.post(
        f"{server.base_url}/api/channels/", json={"name": name}, headers=bearer(account), timeout=30
    )
    for channel in (None, name):
        requests.post(
            f"{server.base_url}/api/messages",
            json={"channel": channel, "content": "seed"},
            headers=bearer(account),
            timeout=30,
        )
    report = tmp_path / "schemathesis.json"
    run = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "schemathesis"),
            "run",
            f"{server.base_url}/api/schema/",
            "--header",
            f"Authorization: Bearer {account['access']}",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--seed",
            str(SEED),
            "--max-examples",
            str(MAX_EXAMPLES),
            "--checks",
            ",".join(CHECKS),
            # Logging out would end the session every later case depends on.
            "--exclude-path-regex",
            "^/api/auth/logout",
            "--request-timeout",
            "30",
            "--report-json-path",
            str(report),
            "--no-color",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    summary = json.loads(report.read_text())
    cases = summary["test_cases"]
    print(f"schemathesis: {cases['generated']} cases over {summary['operations']['tested']} operations")
    assert run.returncode == 0, run.stdout[-6000:]
    assert summary["complete"] and not summary["failures"] and not summary["errors"]
    assert summary["operations"]["tested"] >= 30
    assert {phase for phase, result in summary["phases"].items() if result["status"] == "success"} >= {
        "coverage",
        "fuzzing",
        "stateful",
    }
    assert server_failures(server) == []
