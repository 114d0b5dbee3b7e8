"""GitHub pull requests through PyGithub: open or update, never duplicate.

The token comes from ``GITHUB_TOKEN`` only and is never printed. 5xx answers are retried a
bounded number of times (urllib3 ``Retry``); a 422 "A pull request already exists" (another job
opened it between our lookup and our create) finds that pull request and updates it instead.
"""

from __future__ import annotations

from typing import Any

from pyhelpers.errors import BadInput, OperationFailed

RETRIES = 3  # extra attempts on 5xx / connection errors
BACKOFF = 0.2  # seconds, doubled per attempt


def _message(exc) -> str:
    data = exc.data if isinstance(getattr(exc, "data", None), dict) else {}
    parts = [str(data.get("message") or "")]
    parts += [str(e.get("message") or e.get("code") or "") for e in data.get("errors") or [] if isinstance(e, dict)]
    return "; ".join(p for p in parts if p) or f"HTTP {exc.status}"


def _already_exists(exc) -> bool:
    return exc.status == 422 and "already exists" in _message(exc).lower()


def client(api_url: str, token: str):
    from github import Auth, Github
    from urllib3.util import Retry

    retry = Retry(total=RETRIES, backoff_factor=BACKOFF, status_forcelist=(500, 502, 503, 504),
                  allowed_methods=None,  # POST too: a duplicate create comes back as 422 "already exists"
                  raise_on_status=False)  # the last 5xx reaches PyGithub, which raises GithubException
    return Github(auth=Auth.Token(token), base_url=api_url.rstrip("/"), retry=retry, timeout=30,
                  seconds_between_requests=None, seconds_between_writes=None)


def open_or_update(api_url: str, token: str, repo_name: str, head: str, base: str, title: str, body: str,
                   config_source: str | None = None) -> dict[str, Any]:
    from github import BadCredentialsException, GithubException, UnknownObjectException
    from urllib3.exceptions import HTTPError

    gh = client(api_url, token)
    owner = repo_name.split("/", 1)[0]
    try:
        try:
            repo = gh.get_repo(repo_name)
        except UnknownObjectException:
            raise BadInput(f"github.repo: {repo_name!r} not found at {api_url} (or GITHUB_TOKEN cannot see it)",
                           source=config_source) from None
        existing = _find_open(repo, owner, head, base)
        if existing is None:
            try:
                pr = repo.create_pull(base=base, head=head, title=title, body=body)
                return _result(pr, "created")
            except GithubException as exc:
                if not _already_exists(exc):
                    raise
                existing = _find_open(repo, owner, head, base)
                if existing is None:
                    raise OperationFailed(f"GitHub says a pull request for {head} already exists, "
                                          f"but none is open from {owner}:{head} into {base}") from None
        if existing.title == title and (existing.body or "") == body:
            return _result(existing, "unchanged")
        existing.edit(title=title, body=body)
        return _result(existing, "updated")
    except BadCredentialsException as exc:
        raise OperationFailed(f"GitHub rejected GITHUB_TOKEN ({exc.status} {_message(exc)}); "
                              "set a valid token with pull-request access to " + repo_name) from None
    except GithubException as exc:
        raise OperationFailed(f"GitHub API error {exc.status} for {repo_name}: {_message(exc)}") from None
    except HTTPError as exc:
        raise OperationFailed(f"GitHub API at {api_url} unreachable: {type(exc).__name__}") from None
    finally:
        gh.close()


def _find_open(repo, owner: str, head: str, base: str):
    for pr in repo.get_pulls(state="open", head=f"{owner}:{head}", base=base):
        return pr
    return None


def _result(pr, action: str) -> dict[str, Any]:
    return {"action": action, "number": pr.number, "url": pr.html_url}
