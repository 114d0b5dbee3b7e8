"""Commit rendered manifests to the GitOps repository and push them (git CLI, argument lists only).

- Local profile: the remote is a bare repository (``cfg.gitops_repo``, default ``.mlops/gitops.git``),
  created on first use.
- Idempotent: files identical to the branch's content make no commit ("changed": false).
- A rejected push because the branch moved (another pipeline pushed first) is answered with
  fetch, re-apply on the new tip and push again, at most ``cfg.gitops.push_retries`` times.
  Never a force-push.
- A token (``GITHUB_TOKEN``) reaches git only through ``GIT_ASKPASS`` and the environment of
  the git process: never the remote URL, ``.git/config``, arguments or messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pyhelpers.errors import BadInput, OperationFailed

TOKEN_ENV = "GITHUB_TOKEN"
# Inherited variables that would point git at another repository than the one we work in.
_GIT_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")
_ASKPASS = '#!/bin/sh\ncase "$1" in\n  Username*) echo x-access-token ;;\n  *) echo "$MLOPS_GIT_TOKEN" ;;\nesac\n'


def is_local_repo(url: str) -> bool:
    scheme = urlsplit(url).scheme
    scp_like = re.match(r"^[\w.-]+@[\w.-]+:", url)
    return scheme == "file" or (scheme == "" and not scp_like) or (len(scheme) == 1 and not scp_like)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    text = re.sub(r"(?<=://)[^/@\s]+@", "***@", str(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


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
    proc = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "core.hooksPath=/dev/null", *args],
        cwd=cwd, env=env, capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit code {proc.returncode}"
        raise OperationFailed(f"git {args[0]} failed: {redact(last, secrets)}")
    return proc


def _check_inputs(cfg, files: dict[str, str]) -> None:
    if urlsplit(cfg.gitops_repo).username or urlsplit(cfg.gitops_repo).password:
        raise BadInput(
            f"gitops.repo: {redact(cfg.gitops_repo)!r} carries credentials; use a plain URL and set {TOKEN_ENV}"
        )
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


def _apply(git: _Git, files: dict[str, str]) -> bool:
    """Write the files into the work tree and stage them; True when the index differs from HEAD."""
    from pyhelpers.fsutil import atomic_write_text

    for rel, text in files.items():
        atomic_write_text(git.workdir / rel, text)
    git("add", "--", *files)
    return git("diff", "--cached", "--quiet", check=False).returncode != 0


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


def push_manifests(cfg, files: dict[str, str], message: str) -> dict:
    """Commit ``files`` (GitOps path -> text) on ``cfg.gitops.branch`` and push; never force."""
    _check_inputs(cfg, files)
    remote, branch = cfg.gitops_repo, cfg.gitops.branch
    created = False
    if is_local_repo(remote):
        remote = str(_local_path(remote))
        created = ensure_bare_repo(Path(remote), branch)
    token = os.environ.get(TOKEN_ENV) if urlsplit(remote).scheme == "https" else None
    result = {"repo": redact(cfg.gitops_repo), "branch": branch, "paths": sorted(files), "created_repo": created}

    with tempfile.TemporaryDirectory(prefix="mlops-gitops-") as tmp:
        workdir = Path(tmp) / "work"
        git = _Git(cfg, workdir, token)
        heads = git("ls-remote", "--heads", remote, f"refs/heads/{branch}", cwd=Path(tmp)).stdout.strip()
        if heads:
            git("clone", "-q", "--no-tags", "--single-branch", "--branch", branch, remote, str(workdir), cwd=Path(tmp))
        else:  # empty repository or new branch: start it
            git("init", "-q", "-b", branch, str(workdir), cwd=Path(tmp))
            git("remote", "add", "origin", remote)
        tracking = f"refs/remotes/origin/{branch}"

        attempts = 0
        while True:
            attempts += 1
            base = _head(git)
            if not _apply(git, files):
                return {**result, "changed": False, "commit": base, "previous": base, "attempts": attempts}
            git("commit", "-q", "--no-verify", "-m", message)
            commit = _head(git)
            pushed = git("push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}", check=False)
            if pushed.returncode == 0:
                return {**result, "changed": True, "commit": commit, "previous": base, "attempts": attempts}
            # Rejected: retry only when the branch moved under us (a racing push), else report.
            git("fetch", "-q", "--no-tags", "origin", f"+refs/heads/{branch}:{tracking}", check=False)
            moved_to = _head(git, tracking)
            if moved_to is None or moved_to == base:
                lines = (pushed.stderr or pushed.stdout).strip().splitlines()
                why = redact(lines[-1] if lines else f"exit code {pushed.returncode}", git.secrets)
                raise OperationFailed(f"git push to {result['repo']} ({branch}) failed: {why}")
            if attempts > cfg.gitops.push_retries:
                raise OperationFailed(
                    f"git push to {result['repo']} ({branch}) rejected {attempts} times: the branch keeps "
                    f"moving (gitops.push_retries={cfg.gitops.push_retries})"
                )
            git("reset", "-q", "--hard", tracking)  # re-apply our files on the new tip
