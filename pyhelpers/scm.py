"""Thin git helpers (the git CLI with argument lists, never shell strings)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pyhelpers.errors import BadInput, OperationFailed


def checked_rev(rev: str) -> str:
    """A git revision from the user: never an option (``--output=FILE`` makes `git show` write a file)."""
    if not isinstance(rev, str) or not rev or rev.startswith("-") or "\x00" in rev or len(rev) > 256:
        shown = rev[:40] if isinstance(rev, str) else type(rev).__name__
        raise BadInput(f"invalid git revision {shown!r}")
    return rev


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        raise OperationFailed("git is not installed") from None
    if check and proc.returncode != 0:
        raise OperationFailed(f"git {args[0]} failed: {' '.join(proc.stderr.split())}")
    return proc


def is_repo(root: Path) -> bool:
    return git(root, "rev-parse", "--git-dir", check=False).returncode == 0


def head(root: Path) -> str | None:
    """The commit checked out, or None outside a repository / before the first commit."""
    proc = git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def show(root: Path, rev: str, path: str) -> str | None:
    """A file's content at a revision, or None when it does not exist there."""
    proc = git(root, "show", f"{checked_rev(rev)}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def rev_exists(root: Path, rev: str) -> bool:
    return git(root, "rev-parse", "--verify", "-q", f"{checked_rev(rev)}^{{commit}}", check=False).returncode == 0
