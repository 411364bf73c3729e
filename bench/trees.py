"""The source trees one ``bench/run`` measures: the work tree and, with ``--baseline REF``, REF.

The baseline is a plain copy of REF's files (``git archive REF | tar -x``) in a
temporary directory, not a ``git worktree``: it writes nothing into the
repository (no ``.git/worktrees`` entry left to prune after a crash, no
checkout hooks), so it cannot get in the way of someone committing in this
clone, and removing it is removing one directory. It has no ``.venv`` of its
own: ``.venv`` is a symlink to this tree's, since the dependencies are the
same (``requirements_differ`` warns when they are not).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ("requirements.txt", "requirements-dev.txt")


@dataclass(frozen=True)
class Tree:
    """Where ``manage.py`` and ``bin/server`` run from, and the label its rows carry.

    ``name`` is ``""`` for a plain run's only tree, whose rows then carry no
    ``tree`` at all, so a run without a baseline reads exactly as before.
    """

    name: str
    root: Path = ROOT

    @property
    def kind(self) -> str:
        """``baseline`` or ``current`` (or ``""``): for log file names."""
        return self.name.split(" ", 1)[0]


def git(*args: str, root: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False
    ).stdout.strip()


def git_commit(root: Path = ROOT) -> str:
    """The work tree's short commit, ``+dirty`` when tracked files differ from it."""
    commit = git("rev-parse", "--short", "HEAD", root=root) or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", root=root) else "")


def resolve(ref: str, root: Path = ROOT) -> str:
    """REF's full commit id, fixed once: HEAD may move while a long run goes on."""
    sha = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", root=root)
    if not sha:
        raise ValueError(f"not a commit in {root}: {ref!r}")
    return sha


def short(sha: str, root: Path = ROOT) -> str:
    return git("rev-parse", "--short", sha, root=root) or sha[:7]


def requirements_differ(sha: str, root: Path = ROOT) -> bool:
    """Whether the baseline pins other dependencies than the work tree's ``.venv`` was built from."""
    return bool(git("diff", "--name-only", sha, "--", *REQUIREMENTS, root=root))


def extract(sha: str, into: Path, root: Path = ROOT) -> None:
    archive = subprocess.Popen(["git", "archive", "--format=tar", sha], cwd=root, stdout=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=False)
    archive.stdout.close()
    if archive.wait() or untar.returncode:
        raise RuntimeError(f"could not extract {sha} into {into}")


@contextmanager
def baseline(sha: str, root: Path = ROOT) -> Iterator[Tree]:
    """The commit's files in a temporary directory with ``.venv`` linked; removed on the way out."""
    path = Path(tempfile.mkdtemp(prefix="chat-bench-baseline-"))
    try:
        extract(sha, path, root)
        (path / ".venv").symlink_to(root / ".venv")
        yield Tree(f"baseline {short(sha, root)}", path)
    finally:
        shutil.rmtree(path, ignore_errors=True)  # unlinks the .venv symlink, never follows it


@contextmanager
def measured(baseline_sha: str | None, root: Path = ROOT) -> Iterator[list[Tree]]:
    """The trees in the order each run measures them: the baseline first, then the work tree."""
    if baseline_sha is None:
        yield [Tree("", root)]
        return
    with baseline(baseline_sha, root) as before:
        yield [before, Tree(f"current {git_commit(root)}", root)]
