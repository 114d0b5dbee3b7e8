"""Thin git helpers (the git CLI with argument lists, never shell strings)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pyhelpers.errors import OperationFailed


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
    proc = git(root, "show", f"{rev}:{path}", check=False)
    return proc.stdout if proc.returncode == 0 else None


def rev_exists(root: Path, rev: str) -> bool:
    return git(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False).returncode == 0
