"""Commit rendered manifests to the GitOps repository and push them (git CLI, argument lists only).

- Local profile: the remote is a bare repository (``cfg.gitops_repo``, default ``.mlops/gitops.git``),
  created on first use.
- Idempotent: files identical to the branch's content make no commit ("changed": false).
- A rejected push because the branch moved (another pipeline pushed first) is answered with
  fetch, re-apply on the new tip and push again, at most ``cfg.gitops.push_retries`` times.
  Never a force-push.
- A token (``GITHUB_TOKEN``) reaches git only through ``GIT_ASKPASS`` and the environment of
  the git process: never the remote URL, ``.git/config``, arguments or messages. It is offered to
  ``https://`` remotes (and ``http://`` on the loopback interface: tests, port-forwards), and git's
  credential helpers are switched off so no helper stores it.
- ``revert_commit`` undoes one GitOps commit with a new revert commit pushed the same way (a
  deployment that failed in Argo CD is rolled back by history, never by rewriting it).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pyhelpers.errors import BadInput, OperationFailed
from pyhelpers.fsutil import scratch_dir
from pyhelpers.redaction import redact_url

TOKEN_ENV = "GITHUB_TOKEN"
# Inherited variables that would point git at another repository than the one we work in.
_GIT_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_ASKPASS = '#!/bin/sh\ncase "$1" in\n  Username*) echo x-access-token ;;\n  *) echo "$MLOPS_GIT_TOKEN" ;;\nesac\n'


def is_local_repo(url: str) -> bool:
    scheme = urlsplit(url).scheme
    scp_like = re.match(r"^[\w.-]+@[\w.-]+:", url)
    return scheme == "file" or (scheme == "" and not scp_like) or (len(scheme) == 1 and not scp_like)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    text = redact_url(str(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def token_for(remote: str) -> str | None:
    """GITHUB_TOKEN when ``remote`` may receive it: https, or plain http on this machine only."""
    parts = urlsplit(remote)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return os.environ.get(TOKEN_ENV) or None
    return None


def _local_path(url: str) -> Path:
    return Path(url[len("file://"):] if url.startswith("file://") else url).resolve()


class _Git:
    """Runs git in one work tree with a controlled environment; errors come back redacted."""

    def __init__(self, cfg, workdir: Path, token: str | None):
        self.workdir = workdir
        self.secrets = (token,) if token else ()
        env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTS}
        env.update({
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": cfg.gitops.author_name,
            "GIT_AUTHOR_EMAIL": cfg.gitops.author_email,
            "GIT_COMMITTER_NAME": cfg.gitops.author_name,
            "GIT_COMMITTER_EMAIL": cfg.gitops.author_email,
        })
        env.pop("MLOPS_GIT_TOKEN", None)
        if token:
            askpass = workdir.parent / "askpass.sh"
            askpass.write_text(_ASKPASS, encoding="utf-8")
            askpass.chmod(0o700)
            env.update({"GIT_ASKPASS": str(askpass), "MLOPS_GIT_TOKEN": token})
        self.env = env

    def __call__(self, *args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return _git(list(args), cwd or self.workdir, self.env, check, self.secrets)


def _git(args: list[str], cwd: Path, env: dict, check: bool, secrets: tuple[str, ...]) -> subprocess.CompletedProcess:
    # credential.helper= empties the helper list: a user's "store" helper would save the token to disk
    proc = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", "-c", "credential.helper=", *args],
        cwd=cwd, env=env, capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit code {proc.returncode}"
        raise OperationFailed(f"git {args[0]} failed: {redact(last, secrets)}{auth_hint(last, env)}")
    return proc


def auth_hint(message: str, env: dict) -> str:
    """What to check when the remote refused the credentials (never the token itself)."""
    if not re.search(r"Authentication failed|could not read (Username|Password)|\b40[13]\b", message):
        return ""
    if "MLOPS_GIT_TOKEN" not in env:
        return f" ({TOKEN_ENV} is not set, or the remote is not https)"
    return f" (the remote refused {TOKEN_ENV}: check that it is valid and may write to the repository)"


def _check_repo_url(cfg) -> None:
    if urlsplit(cfg.gitops_repo).username or urlsplit(cfg.gitops_repo).password:
        raise BadInput(
            f"gitops.repo: {redact(cfg.gitops_repo)!r} carries credentials; use a plain URL and set {TOKEN_ENV}"
        )


def _check_inputs(cfg, files: dict[str, str]) -> None:
    _check_repo_url(cfg)
    if not files:
        raise BadInput("nothing to push: no manifest files")
    for rel in files:
        p = PurePosixPath(rel)
        if p.is_absolute() or ".." in p.parts or not p.parts or rel.startswith(".git/") or p.parts[0] == ".git":
            raise BadInput(f"gitops path {rel!r} must be relative and stay inside the repository")


def ensure_bare_repo(path: Path, branch: str) -> bool:
    """Create the local GitOps remote on first use; True when it was created."""
    if (path / "HEAD").is_file():
        return False
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(path)], check=True, capture_output=True)
    return True


def _apply(git: _Git, files: dict[str, str], remove=(), removable=None) -> tuple[bool, list[str], list[str]]:
    """Write the files into the work tree and stage them, and stage the removal of each ``remove`` path
    present whose text ``removable(text)`` accepts (all when None).

    Returns (index differs from HEAD, removed paths, present paths that were kept).
    """
    from pyhelpers.fsutil import atomic_write_text

    for rel, text in files.items():
        atomic_write_text(git.workdir / rel, text)
    git("add", "--", *files)
    removed, kept = [], []
    for rel in remove:
        path = git.workdir / rel
        if rel in files or not path.is_file():
            continue
        if removable is None or removable(path.read_text(encoding="utf-8", errors="replace")):
            git("rm", "-q", "--", rel)
            removed.append(rel)
        else:
            kept.append(rel)
    return git("diff", "--cached", "--quiet", check=False).returncode != 0, removed, kept


def _head(git: _Git, ref: str = "HEAD") -> str | None:
    proc = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return proc.stdout.strip() or None


def commit_message(champion: dict) -> str:
    data = champion.get("data_version") or "unknown"
    return (
        f"Deploy {champion['name']} version {champion['version']} (data {data})\n\n"
        f"model: {champion.get('model_uri') or ''}\nrun: {champion.get('run_id') or ''}\n"
        f"git commit: {champion.get('git_commit') or ''}\n"
    )


def _remote(cfg, create: bool) -> tuple[str, bool]:
    """The URL or absolute path git talks to; a local bare repository is created when ``create``."""
    remote = cfg.gitops_repo
    if not is_local_repo(remote):
        return remote, False
    remote = str(_local_path(remote))
    return remote, ensure_bare_repo(Path(remote), cfg.gitops.branch) if create else False


def _checkout(git: _Git, remote: str, branch: str, tmp: Path) -> bool:
    """Clone ``branch`` into ``git.workdir``, or start it when the remote has no such branch (False)."""
    heads = git("ls-remote", "--heads", remote, f"refs/heads/{branch}", cwd=tmp).stdout.strip()
    if heads:
        git("clone", "-q", "--no-tags", "--single-branch", "--branch", branch, remote, str(git.workdir), cwd=tmp)
        return True
    git("init", "-q", "-b", branch, str(git.workdir), cwd=tmp)  # empty repository or new branch: start it
    git("remote", "add", "origin", remote)
    return False


def _push(git: _Git, cfg, where: str, base: str | None, attempts: int) -> bool:
    """Push HEAD to the branch; False when the branch moved meanwhile (reset onto the new tip: re-apply)."""
    branch = cfg.gitops.branch
    tracking = f"refs/remotes/origin/{branch}"
    pushed = git("push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}", check=False)
    if pushed.returncode == 0:
        return True
    # Rejected: retry only when the branch moved under us (a racing push), else report.
    git("fetch", "-q", "--no-tags", "origin", f"+refs/heads/{branch}:{tracking}", check=False)
    moved_to = _head(git, tracking)
    if moved_to is None or moved_to == base:
        lines = (pushed.stderr or pushed.stdout).strip().splitlines()
        last = lines[-1] if lines else f"exit code {pushed.returncode}"
        raise OperationFailed(f"git push to {where} ({branch}) failed: {redact(last, git.secrets)}"
                              f"{auth_hint(last, git.env)}")
    if attempts > cfg.gitops.push_retries:
        raise OperationFailed(
            f"git push to {where} ({branch}) rejected {attempts} times: the branch keeps "
            f"moving (gitops.push_retries={cfg.gitops.push_retries})"
        )
    git("reset", "-q", "--hard", tracking)
    return False


def push_manifests(cfg, files: dict[str, str], message: str, remove=(), removable=None) -> dict:
    """Commit ``files`` (GitOps path -> text) on ``cfg.gitops.branch`` and push; never force.

    ``remove``: paths deleted in the same commit when present and ``removable(text)`` (default: always)
    accepts them (``removed``); present ones it refuses are reported as ``kept``.
    """
    remove = list(remove)
    _check_inputs(cfg, {**files, **dict.fromkeys(remove, "")})
    remote, created = _remote(cfg, create=True)
    branch = cfg.gitops.branch
    result = {"repo": redact(cfg.gitops_repo), "branch": branch, "paths": sorted(files), "created_repo": created}

    with scratch_dir(cfg.state, "gitops") as tmp:
        git = _Git(cfg, Path(tmp) / "work", token_for(remote))
        _checkout(git, remote, branch, Path(tmp))
        attempts = 0
        while True:
            attempts += 1
            base = _head(git)
            changed, removed, kept = _apply(git, files, remove, removable)
            if not changed:
                return {**result, "changed": False, "commit": base, "previous": base, "attempts": attempts,
                        "removed": [], "kept": kept}
            git("commit", "-q", "--no-verify", "-m", message)
            commit = _head(git)
            if _push(git, cfg, result["repo"], base, attempts):
                return {**result, "changed": True, "commit": commit, "previous": base, "attempts": attempts,
                        "removed": removed, "kept": kept}


def branch_head(cfg) -> str | None:
    """The commit the GitOps branch points at on the remote (None: no such branch yet)."""
    _check_repo_url(cfg)
    remote, _ = _remote(cfg, create=False)
    if is_local_repo(cfg.gitops_repo) and not Path(remote).exists():
        return None
    with scratch_dir(cfg.state, "gitops") as tmp:
        git = _Git(cfg, Path(tmp) / "work", token_for(remote))
        out = git("ls-remote", "--heads", remote, f"refs/heads/{cfg.gitops.branch}", cwd=Path(tmp)).stdout.split()
    return out[0] if out else None


@contextlib.contextmanager
def _branch_checkout(cfg):
    """A throw-away checkout of the GitOps branch: yields its git runner, or None when there is none."""
    _check_repo_url(cfg)
    remote, _ = _remote(cfg, create=False)
    with scratch_dir(cfg.state, "gitops") as tmp:
        git = _Git(cfg, Path(tmp) / "work", token_for(remote))
        missing = is_local_repo(cfg.gitops_repo) and not Path(remote).exists()
        yield None if missing or not _checkout(git, remote, cfg.gitops.branch, Path(tmp)) else git


@contextlib.contextmanager
def fetched_branch(cfg):
    """A throw-away repository holding the tip of the remote GitOps branch as FETCH_HEAD (depth 1),
    fetched with GITHUB_TOKEN as a push is: yields its folder."""
    _check_repo_url(cfg)
    with scratch_dir(cfg.state, "gitops") as tmp:
        git = _Git(cfg, Path(tmp) / "work", token_for(cfg.gitops_repo))
        git("init", "-q", str(git.workdir), cwd=Path(tmp))
        try:
            git("fetch", "-q", "--depth", "1", "--no-tags", cfg.gitops_repo, f"refs/heads/{cfg.gitops.branch}")
        except OperationFailed as exc:
            raise OperationFailed(f"cannot fetch {redact(cfg.gitops_repo)} ({cfg.gitops.branch}): {exc}") from None
        yield git.workdir


def is_ancestor(cfg, ancestor: str, descendant: str) -> bool:
    """Whether commit ``descendant`` of the GitOps branch contains commit ``ancestor``."""
    with _branch_checkout(cfg) as git:
        return git is not None and git("merge-base", "--is-ancestor", ancestor, descendant,
                                       check=False).returncode == 0


def file_at(cfg, rev: str, path: str) -> str | None:
    """The text of ``path`` at commit ``rev`` of the GitOps branch (None when the file is not there)."""
    with _branch_checkout(cfg) as git:
        shown = git("show", f"{rev}:{path}", check=False) if git is not None else None
        return shown.stdout if shown is not None and shown.returncode == 0 else None


def revert_commit(cfg, sha: str, message: str) -> dict:
    """Undo commit ``sha`` of the GitOps branch with a new revert commit, pushed normally (never forced).

    Idempotent: when the files ``sha`` changed already hold their content from before it (reverted
    earlier, or changed back by hand), nothing is committed ("changed": false). A racing push is
    answered as in ``push_manifests``: fetch, revert again on the new tip, push again.
    """
    _check_repo_url(cfg)
    if not re.fullmatch(r"[0-9a-fA-F]{7,40}", sha or ""):
        raise BadInput(f"revision {sha!r}: expected a commit SHA (7 to 40 hex digits)")
    remote, _ = _remote(cfg, create=False)
    branch = cfg.gitops.branch
    result = {"repo": redact(cfg.gitops_repo), "branch": branch}
    with scratch_dir(cfg.state, "gitops") as tmp:
        git = _Git(cfg, Path(tmp) / "work", token_for(remote))
        missing = is_local_repo(cfg.gitops_repo) and not Path(remote).exists()
        if missing or not _checkout(git, remote, branch, Path(tmp)):
            raise OperationFailed(f"nothing to revert: {result['repo']} has no branch {branch!r}")
        full = _head(git, sha)
        if full is None or git("merge-base", "--is-ancestor", full, "HEAD", check=False).returncode != 0:
            raise OperationFailed(f"commit {sha} is not on {branch} of {result['repo']}")
        parent = _head(git, f"{full}^")
        if parent is None:
            raise OperationFailed(f"commit {full[:12]} is the first of {branch}: there is no earlier state to return to")
        paths = [p for p in git("diff", "--name-only", "--no-renames", parent, full).stdout.splitlines() if p]
        result.update(reverted=full, paths=paths)
        attempts = 0
        while True:
            attempts += 1
            base = _head(git)
            # already back to the parent's content for every file the commit touched: nothing to do
            if not paths or git("diff", "--quiet", parent, "HEAD", "--", *paths, check=False).returncode == 0:
                return {**result, "changed": False, "commit": base, "previous": base, "attempts": attempts}
            if git("revert", "--no-commit", full, check=False).returncode != 0:
                git("revert", "--abort", check=False)
                raise OperationFailed(f"cannot revert {full[:12]} on {branch}: later commits changed the same files "
                                      f"({', '.join(paths)}); revert it by hand")
            git("commit", "-q", "--no-verify", "-m", message)
            commit = _head(git)
            if _push(git, cfg, result["repo"], base, attempts):
                return {**result, "changed": True, "commit": commit, "previous": base, "attempts": attempts}
