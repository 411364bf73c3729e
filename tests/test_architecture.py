"""The layers in pyproject.toml hold, and import-linter would notice an import that points up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["chatsite", "web", "gateway", "messaging", "chatrooms", "accounts", "realtime", "core"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The packages and the contract, copied where an import can be added without touching the tree."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_tree_keeps_its_layers():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "upward_import"),
    [
        ("chatrooms/services.py", "from messaging.models import Message"),
        ("accounts/services.py", "from realtime import frames\nfrom chatrooms import selectors"),
        ("realtime/hub.py", "import accounts.presence"),
        ("core/errors.py", "from gateway import consumer"),
        ("messaging/services.py", "def later():\n    from gateway.delivery import MAX_BACKLOG"),
        ("gateway/consumer.py", "from web import views"),
    ],
)
def test_an_import_that_points_up_breaks_the_build(tree_copy: Path, module: str, upward_import: str):
    path = tree_copy / module
    path.write_text(path.read_text() + "\n" + upward_import + "\n")
    result = lint_imports(tree_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
