"""Capture the envelopes services publish after commit."""

from __future__ import annotations

import pytest


@pytest.fixture
def published(monkeypatch, django_capture_on_commit_callbacks):
    """``(group, envelope)`` pairs published by on-commit callbacks run in the block.

    Use as ``with published.capture(): service(...)`` then read ``published.calls``.
    """

    class Published:
        calls: list[tuple[str, dict]] = []

        def capture(self):
            return django_capture_on_commit_callbacks(execute=True)

    recorder = Published()
    recorder.calls = []
    monkeypatch.setattr(
        "realtime.publish.publish", lambda group, event: recorder.calls.append((group, event))
    )
    return recorder
