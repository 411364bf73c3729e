"""The lock files hold what the hand-written lists ask for, every package with its hashes.

An edit to requirements*.in without ``bin/lock`` would otherwise install the
old pin silently (bin/setup installs the lock files only).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def locked(path: Path) -> dict[str, list[str]]:
    """``{package: [hash lines]}`` of a pip-compile lock file."""
    entries: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonical(match.group(1))
            entries[current] = []
        elif current and line.strip().startswith("--hash=sha256:"):
            entries[current].append(line.strip())
    return entries


@pytest.mark.parametrize(
    ("wanted", "lock"),
    [("requirements.in", "requirements.txt"), ("requirements-dev.in", "requirements-dev.txt")],
)
def test_every_direct_pin_is_locked_at_its_version(wanted, lock):
    lock_pins = pins(ROOT / lock)
    asked = pins(ROOT / wanted)
    if wanted == "requirements-dev.in":
        asked |= pins(ROOT / "requirements.in")
    assert asked
    stale = {
        name: (version, lock_pins.get(name))
        for name, version in asked.items()
        if lock_pins.get(name) != version
    }
    assert not stale, f"run bin/lock: {stale}"


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_locked_package_has_hashes(lock):
    entries = locked(ROOT / lock)
    assert len(entries) > 20
    assert not [name for name, hashes in entries.items() if not hashes]


def test_the_development_lock_keeps_the_runtime_pins():
    runtime, development = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    assert {name: development.get(name) for name in runtime} == runtime
